"""The meta attacker of the Meta Attack: a convolutional autoencoder from an image to a gradient.

Du, Zhang, Zhou, Yang & Feng, "Query-efficient Meta Attack to Deep Neural Networks", ICLR 2020
(thesis chapter 2, Table 2.1): the meta attacker maps an image to an estimate of the attack
loss's gradient at that image, of the same shape. The published network (dydjw9/
MetaAttack_ICLR2020, ``cifar_train.py``: 32×32×3) is four convolutions then four transposed
convolutions, each but the last followed by ReLU then batch norm: a 3×3 stride-1 convolution to
32 channels, three 4×4 stride-2 ones (64, 128, 256 channels; 32 → 16 → 8 → 4), three 4×4 stride-2
transposed ones back up (128, 64, 32) and a 3×3 stride-1 one to the image's channels. (Its MNIST
network, 16-32-64-64 channels, reaches 28 → 14 → 7 → 3 and back with a 3×3 transposed layer.)

Here the widths are a parameter (``features``: the encoder's channels; its length is the depth):
the first convolution has stride 1 and each further one halves the size, the decoder mirrors it.
An image whose height or width is not a multiple of ``2**(len(features) − 1)`` is zero-padded at
the bottom/right to one and the output cropped back, so every size works (28×28×1 digits with the
default four levels pad to 32×32). The output channels are the input's.

Normalisation: the attack runs the meta attacker on one image at a time, and batch norm on a
batch of one image in training mode (as the published attack fine-tunes it) normalises each
channel over the spatial positions — instance norm. We use that (``nn.GroupNorm`` with one
channel per group, with a learnt scale and bias): it needs no running statistics, so the
variables are ``{"params": ...}`` only, and meta-training on batches gives each image the same
function as the attack. The last layer is linear (a gradient is signed).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxadv.models._carrier import Carrier

class MetaAttacker(nn.Module):
    """Image ``(H, W, C)`` (or a batch ``(b, H, W, C)``) → gradient estimate of the same shape.

    Attributes:
      features: the encoder's channels per level (the published ``(32, 64, 128, 256)``); the
        decoder mirrors them. The first level keeps the size, each further one halves it.
    """

    features: Sequence[int] = (32, 64, 128, 256)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        single = x.ndim == 3
        if single:
            x = x[None]
        if x.ndim != 4:
            raise ValueError(f"`x` must be an image (H, W, C) or a batch of them; got {x.shape}.")
        if not self.features:
            raise ValueError("`features` must name at least one level; got none.")
        _, height, width, channels = x.shape
        factor = 2 ** (len(self.features) - 1)
        pad_h, pad_w = -height % factor, -width % factor
        h = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))

        def block(h):  # the published ReLU then BN (module docstring: instance norm here)
            return nn.GroupNorm(num_groups=None, group_size=1)(nn.relu(h))

        for level, width_ in enumerate(self.features):
            if level == 0:
                conv = nn.Conv(width_, (3, 3), strides=1, padding="SAME")
            else:
                conv = nn.Conv(width_, (4, 4), strides=2, padding="SAME")
            h = block(conv(h))
        for width_ in reversed(self.features[:-1]):
            h = nn.ConvTranspose(width_, (4, 4), strides=(2, 2), padding="SAME")(h)
            h = block(h)
        h = nn.ConvTranspose(channels, (3, 3), strides=(1, 1), padding="SAME")(h)
        h = h[:, :height, :width, :]
        return h[0] if single else h


def _is_victim(obj: Any) -> bool:
    return callable(obj) and hasattr(obj, "input_shape") and hasattr(obj, "bounds")


@jax.tree_util.register_pytree_node_class
class WithMetaAttacker(Carrier):
    """``victim`` for queries, plus a meta attacker (``module`` and its ``variables``).

    Attributes:
      victim: the attacked model (typically a ``score_only`` view); every attribute not listed
        here is read from it, so attacks, checks and metrics see the victim itself.
      module: the meta attacker's Flax module (static: part of the tree's structure).
      variables: its variables (dynamic leaves: a new checkpoint does not recompile).
    """

    own = ("victim", "module", "variables")

    def __init__(self, victim: Any, module: nn.Module, variables: Any):
        self.victim = victim
        self.module = module
        self.variables = variables

    def with_victim(self, victim: Any) -> WithMetaAttacker:
        return WithMetaAttacker(victim, self.module, self.variables)

    def predict(self, variables: Any, x: jax.Array) -> jax.Array:
        """The meta attacker's gradient estimate at one input ``x`` with ``variables``."""
        return self.module.apply(variables, x)

    def tree_flatten(self):
        return (self.victim, self.variables), self.module

    @classmethod
    def tree_unflatten(cls, module, children):
        victim, variables = children
        return cls(victim, module, variables)

    def __repr__(self) -> str:
        return f"WithMetaAttacker({type(self.victim).__name__}, {type(self.module).__name__})"


def with_meta_attacker(victim: Any, module: nn.Module, variables: Any) -> WithMetaAttacker:
    """``victim`` (queried) with the attacker's meta attacker ``module`` and its ``variables``.

    Args:
      victim: the black-box victim (e.g. ``models.score_only(model)``) with image inputs.
      module: a Flax module mapping one input of the victim's shape to a gradient estimate of the
        same shape (e.g. :class:`MetaAttacker`; trained ones come from
        ``training.default_meta_attacker`` or ``training.restore_meta_attacker``).
      variables: the module's variables.

    Returns:
      A :class:`WithMetaAttacker` pytree that ``attacks.meta_attack`` takes as the victim.
    """
    if isinstance(victim, WithMetaAttacker):
        raise ValueError("`victim` already carries a meta attacker; pass the plain victim.")
    if not _is_victim(victim):
        raise ValueError(f"`victim` must be a jaxadv victim; got {type(victim).__name__}.")
    if not isinstance(module, nn.Module):
        raise ValueError(f"`module` must be a Flax module; got {type(module).__name__}.")
    shape = tuple(victim.input_shape)
    try:
        out = jax.eval_shape(module.apply, variables, jax.ShapeDtypeStruct(shape, jnp.float32))
    except Exception as error:  # noqa: BLE001  (any failure: the variables do not fit the input)
        raise ValueError(
            f"`module` with `variables` must accept one input of the victim's shape {shape}; "
            f"applying it failed: {error}"
        ) from error
    if tuple(getattr(out, "shape", ())) != shape:
        raise ValueError(
            f"`module` must map an input of the victim's shape {shape} to a gradient of the same "
            f"shape; got output shape {tuple(getattr(out, 'shape', ()))}."
        )
    return WithMetaAttacker(victim, module, variables)


def meta_attacker_of(victim: Any) -> WithMetaAttacker | None:
    """The victim itself if it carries a meta attacker, else None.

    Args:
      victim: any victim; one made by :func:`with_meta_attacker` carries a meta attacker.

    Returns:
      ``victim`` if it is a :class:`WithMetaAttacker`, else None.
    """
    return victim if isinstance(victim, WithMetaAttacker) else None
