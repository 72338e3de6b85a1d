"""PyTorch-style state dicts (name → array) to Flax variables for the SalGAN, GazeGAN and DenseSal
saliency models.

Pretrained saliency weights cannot be downloaded here, so they arrive as name-mapped arrays in an
``.npz`` or ``.safetensors`` file (or a dict). Layouts (verified numerically in the tests against
loops written in PyTorch's convention):

* ``Conv2d.weight`` is ``(out, in, kh, kw)``; Flax's kernel is ``(kh, kw, in, out)``;
* ``ConvTranspose2d.weight`` is ``(in, out, kh, kw)``, and a transposed convolution scatters
  each input pixel through the kernel, i.e. correlates the stride-dilated input with the
  *spatially flipped* kernel: the Flax kernel of ``TorchConvTranspose`` (and of Flax's
  ``ConvTranspose`` with ``transpose_kernel=False``) is ``weight[:, :, ::-1, ::-1]`` transposed to
  ``(kh, kw, in, out)``;
* GazeGAN's ``InstanceNorm2d(affine=False)`` layers have no parameters; neither model has batch
  norm. (Classifier batch norm is converted by ``jaxadv.models.from_torch_state_dict``.)

Keys are the PyTorch module paths joined with dots plus ``.weight``/``.bias``; a ``module.``
prefix on every key (``nn.DataParallel``) is dropped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxadv.models._checkpoint import abstract_variables, describe_module
from jaxadv.models._converters import from_torch_state_dict
from jaxadv.models.saliency._densesal import DenseSal
from jaxadv.models.saliency._gazegan import GazeGAN
from jaxadv.models.saliency._salgan import SalGAN

# GazeGAN state-dict entries the published forward pass never uses (see the GazeGAN docstring):
# the constant-1 "spatial attention" branches and the residual blocks res_3, res_4.
GAZEGAN_UNUSED_PREFIXES = (
    "s_attention_conv_1.",
    "s_attention_conv_2.",
    "s_attention_conv_3.",
    "s_attention_conv_4.",
    "res_3.",
    "res_4.",
)


def torch_conv_to_hwio(weight: np.ndarray) -> np.ndarray:
    """PyTorch ``Conv2d`` weight ``(out, in, kh, kw)`` → Flax kernel ``(kh, kw, in, out)``.

    Args:
      weight: a numpy array ``(out, in, kh, kw)``.

    Returns:
      The ``(kh, kw, in, out)`` transpose (a numpy view, same dtype).
    """
    return np.transpose(weight, (2, 3, 1, 0))


def torch_conv_transpose_to_hwio(weight: np.ndarray) -> np.ndarray:
    """PyTorch ``ConvTranspose2d`` weight ``(in, out, kh, kw)`` → the ``(kh, kw, in, out)`` kernel
    of :class:`TorchConvTranspose` (flipped spatially: see the module docstring).

    Args:
      weight: a numpy array ``(in, out, kh, kw)``.

    Returns:
      ``weight[:, :, ::-1, ::-1]`` transposed to ``(kh, kw, in, out)`` (a numpy view, same
      dtype).
    """
    return np.transpose(weight[:, :, ::-1, ::-1], (2, 3, 0, 1))


def load_state_dict(source: Mapping[str, Any] | str | os.PathLike) -> dict[str, np.ndarray]:
    """Name → numpy array from a mapping (numpy arrays or CPU torch tensors), or the path of an
    ``.npz`` or ``.safetensors`` file. A ``module.`` prefix on every key is dropped.

    Args:
      source: a mapping from names to numpy arrays, array-likes or CPU torch tensors, or the
        path of an existing ``.npz`` or ``.safetensors`` file (the latter needs ``safetensors``).

    Returns:
      A new dict from string names to numpy arrays, without the ``module.`` prefix when every
      key has it.

    Raises:
      ValueError: if the path is not a file or has another extension, or ``source`` is neither
        a mapping nor a path.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise ValueError(f"`state_dict` path {path!r} is not a file.")
        if path.endswith(".safetensors"):
            from safetensors.numpy import load_file  # optional dependency, needed only here

            arrays = dict(load_file(path))
        elif path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
        else:
            raise ValueError(
                f"`state_dict` path {path!r} must end in .npz or .safetensors (the formats read)."
            )
    elif isinstance(source, Mapping):
        arrays = {}
        for name, value in source.items():
            if hasattr(value, "detach"):  # a torch.Tensor, without importing torch
                value = value.detach().cpu().numpy()
            arrays[str(name)] = np.asarray(value)
    else:
        raise ValueError(
            "`state_dict` must be a mapping from names to arrays or the path of an .npz or "
            f".safetensors file; got {type(source).__name__}."
        )
    if arrays and all(k.startswith("module.") for k in arrays):
        arrays = {k[len("module.") :]: v for k, v in arrays.items()}
    return arrays


def _layers(tree: Mapping, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Mapping]:
    """Each layer's path → its dict of leaves (``{"kernel": ..., "bias": ...}``)."""
    out: dict[tuple[str, ...], Mapping] = {}
    if any(not isinstance(v, Mapping) for v in tree.values()):
        out[prefix] = tree
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_layers(value, prefix + (key,)))
    return out


def _convert(
    source: Any,
    module: nn.Module,
    input_shape: tuple[int, ...],
    torch_prefix: Callable[[tuple[str, ...]], tuple[str, bool]],
    *,
    ignored_prefixes: tuple[str, ...],
    strict: bool,
) -> dict[str, Any]:
    """Reads every conv layer of ``module`` from ``source``; ``torch_prefix(flax_path)`` gives
    the PyTorch module path and whether the layer is a transposed convolution."""
    arrays = load_state_dict(source)
    abstract = abstract_variables(module, tuple(input_shape))
    used: set[str] = set()
    missing: list[str] = []
    mismatched: list[str] = []
    params: dict[str, Any] = {}
    for path, leaves in sorted(_layers(abstract["params"]).items()):
        prefix, transposed = torch_prefix(path)
        flax_name = "/".join(path)
        kh, kw, cin, cout = leaves["kernel"].shape
        expected = {
            "weight": (cin, cout, kh, kw) if transposed else (cout, cin, kh, kw),
            "bias": (cout,),
        }
        new = {}
        for torch_leaf, flax_leaf in (("weight", "kernel"), ("bias", "bias")):
            key = f"{prefix}.{torch_leaf}"
            if key not in arrays:
                missing.append(f"{key} (for {flax_name}/{flax_leaf})")
                continue
            used.add(key)
            value = arrays[key]
            if value.shape != expected[torch_leaf]:
                mismatched.append(
                    f"{key} has shape {value.shape}, expected {expected[torch_leaf]} for "
                    f"{flax_name}/{flax_leaf}"
                )
                continue
            if torch_leaf == "weight":
                value = (
                    torch_conv_transpose_to_hwio(value) if transposed else torch_conv_to_hwio(value)
                )
            new[flax_leaf] = jnp.asarray(value, jnp.float32)
        node = params
        for key in path:
            node = node.setdefault(key, {})
        node.update(new)
    unused = sorted(k for k in set(arrays) - used if not k.startswith(ignored_prefixes))
    problems = []
    if missing:
        problems.append("missing entries: " + ", ".join(missing))
    if mismatched:
        problems.append("shape mismatches: " + "; ".join(mismatched))
    if strict and unused:
        problems.append("entries no layer reads: " + ", ".join(unused))
    if problems:
        raise ValueError(
            f"`state_dict` does not fit {describe_module(module)} on images of shape "
            f"{tuple(input_shape)}: " + "; ".join(problems) + "."
        )
    return {"params": params}


def _check_module(module: Any, cls: type) -> None:
    if not isinstance(module, cls):
        raise ValueError(
            f"`module` must be a {cls.__name__} (the layout this converter maps); got "
            f"{type(module).__name__}."
        )


def salgan_from_torch_state_dict(
    state_dict: Mapping[str, Any] | str | os.PathLike,
    module: SalGAN,
    input_shape: tuple[int, ...],
    *,
    strict: bool = True,
) -> dict[str, Any]:
    """Flax variables for :class:`SalGAN` from a PyTorch-style state dict.

    The published SalGAN is Lasagne code (imatge-upc/salgan), which has no PyTorch names; this
    layout uses its Lasagne layer names as module names, one ``Conv2d`` each:

    ==========================  ========================================  =====================
    Flax path                   state-dict keys                           weight shape
    ==========================  ========================================  =====================
    ``encoder/conv{b}_{i}``     ``conv{b}_{i}.weight``, ``.bias``         ``(out, in, 3, 3)``
    ``uconv{b}_{i}``            ``uconv{b}_{i}.weight``, ``.bias``        ``(out, in, 3, 3)``
    ``output``                  ``output.weight``, ``output.bias``        ``(1, width, 1, 1)``
    ==========================  ========================================  =====================

    with ``b, i`` as in VGG-16 (``conv1_1``..``conv5_3``; decoder ``uconv5_3``..``uconv1_1``).
    Exporting from the Lasagne weights: Lasagne stores ``W`` as ``(out, in, kh, kw)`` too, but the
    decoder layers use Lasagne's default ``flip_filters=True`` (true convolution) while the VGG
    encoder uses ``flip_filters=False``; flip the ``uconv*`` kernels spatially
    (``W[:, :, ::-1, ::-1]``) when writing them under these names. Use
    ``SalGAN(caffe_preprocess=True)`` for published weights.

    Args:
      state_dict: mapping from names to arrays (or CPU torch tensors), or an ``.npz`` /
        ``.safetensors`` path.
      module: the :class:`SalGAN` to build variables for (its ``width`` must match the weights).
      input_shape: shape of ONE image, e.g. ``(192, 256, 3)``.
      strict: raise on entries no layer reads.

    Returns:
      ``{"params": ...}`` with float32 leaves.

    Raises:
      ValueError: on a missing entry, a wrongly shaped one, or (``strict``) an unused one; the
        message names them.
    """
    _check_module(module, SalGAN)

    def torch_prefix(path: tuple[str, ...]) -> tuple[str, bool]:
        return path[-1], False  # "encoder/conv1_1" -> "conv1_1"

    return _convert(
        state_dict, module, input_shape, torch_prefix, ignored_prefixes=(), strict=strict
    )


def gazegan_from_torch_state_dict(
    state_dict: Mapping[str, Any] | str | os.PathLike,
    module: GazeGAN,
    input_shape: tuple[int, ...],
    *,
    strict: bool = True,
) -> dict[str, Any]:
    """Flax variables for :class:`GazeGAN` from the state dict of CZHQuality/Sal-CFS-GAN's
    ``GlobalUNet`` (``GazeGAN_using_CSC/models/networks.py``; pix2pixHD saves ``netG``'s
    ``state_dict()``, so keys have no prefix).

    ==================================  ===================================  ==============
    Flax path                           keys (``.weight``, ``.bias``)        PyTorch layer
    ==================================  ===================================  ==============
    ``en_conv{k}``, ``en_conv{k}_g``    ``en_conv{k}[_g].conv.0``            Conv2d 4×4
    ``res_1|res_2|res_g/conv_a``        ``res_*.conv_block.1``               Conv2d 3×3
    ``res_1|res_2|res_g/conv_b``        ``res_*.conv_block.5``               Conv2d 3×3
    ``de_conv{k}``, ``de_conv{k}_g``    ``de_conv{k}[_g].conv.0``            ConvTranspose2d
    ``de_conv{1,2}[_g]_csc``            ``de_conv{1,2}[_g]_csc``             Conv2d 1×1
    ``dimr_conv1``                      ``dimr_conv1.conv.0``                Conv2d 3×3
    ==================================  ===================================  ==============

    Entries starting with ``GAZEGAN_UNUSED_PREFIXES`` (the constant-1 attention convolutions,
    ``res_3``, ``res_4``) are skipped: the published forward pass does not use them.

    Args:
      state_dict: mapping from names to arrays (or CPU torch tensors), or an ``.npz`` /
        ``.safetensors`` path.
      module: the :class:`GazeGAN` to build variables for (its ``width`` must match the weights).
      input_shape: shape of ONE image, e.g. ``(480, 640, 3)``.
      strict: raise on entries no layer reads (those under ``GAZEGAN_UNUSED_PREFIXES`` aside).

    Returns:
      ``{"params": ...}`` with float32 leaves.

    Raises:
      ValueError: on a missing entry, a wrongly shaped one, or (``strict``) an unused one; the
        message names them.
    """
    _check_module(module, GazeGAN)

    def torch_prefix(path: tuple[str, ...]) -> tuple[str, bool]:
        if path[0].startswith("res_"):
            return f"{path[0]}.conv_block.{1 if path[1] == 'conv_a' else 5}", False
        if path[0].endswith("_csc"):
            return path[0], False
        return f"{path[0]}.conv.0", path[0].startswith("de_conv")

    return _convert(
        state_dict,
        module,
        input_shape,
        torch_prefix,
        ignored_prefixes=GAZEGAN_UNUSED_PREFIXES,
        strict=strict,
    )


def densesal_from_torch_state_dict(
    state_dict: Mapping[str, Any] | str | os.PathLike,
    module: DenseSal,
    input_shape: tuple[int, ...],
    *,
    readout: Mapping[str, Any] | None = None,
    strict: bool = True,
) -> dict[str, Any]:
    """Flax variables for :class:`DenseSal` from a torchvision-layout state dict.

    The backbone reads torchvision's DenseNet names unchanged (``features.conv0.weight``,
    ``features.denseblock1.denselayer1.norm1.running_mean``, ...: the Flax layer paths joined
    with dots), the readout ``readout1.*`` and ``readout2.*``; an ImageNet ``classifier.*`` is
    ignored and ``num_batches_tracked`` skipped. Conversion itself is
    ``jaxadv.models.from_torch_state_dict`` (OIHW → HWIO, batch norm into ``batch_stats``).
    With ``readout`` (variables of the same module, e.g. from ``saliency_model``), a
    backbone-only state dict such as a torchvision ImageNet checkpoint is read and the readout
    taken from ``readout``: the usual start for fine-tuning.

    Args:
      state_dict: mapping from names to arrays (or CPU torch tensors), or an ``.npz`` /
        ``.safetensors`` path.
      module: the :class:`DenseSal` the weights are for (``width`` and ``block_config`` must
        match them: DenseNet-121 is ``width=64, block_config=(6, 12, 24, 16)``).
      input_shape: shape of ONE image, e.g. ``(224, 224, 3)``.
      readout: variables of ``module`` supplying the readout when the state dict has none, or
        None (the state dict then holds the readout too).
      strict: raise on entries no layer reads.

    Returns:
      ``{"params": ..., "batch_stats": ...}`` with float32 leaves.

    Raises:
      ValueError: if ``module`` is not a :class:`DenseSal`, or on a missing, wrongly shaped or
        (``strict``) unused entry; the message names them.
    """
    _check_module(module, DenseSal)
    arrays = {
        k: v for k, v in load_state_dict(state_dict).items() if not k.startswith("classifier.")
    }
    if readout is None:
        return from_torch_state_dict(arrays, module, input_shape, strict=strict)
    if not isinstance(readout, Mapping) or not {"params", "batch_stats"} <= set(readout):
        raise ValueError(
            "`readout` must be the variables of the DenseSal module ({'params': ..., "
            f"'batch_stats': ...}}); got {type(readout).__name__}."
        )
    backbone = {
        k[len("features.") :] if k.startswith("features.") else k: v for k, v in arrays.items()
    }
    converted = from_torch_state_dict(backbone, module.backbone(), input_shape, strict=strict)
    variables = {name: dict(tree) for name, tree in readout.items()}
    for collection in ("params", "batch_stats"):
        variables[collection]["features"] = converted[collection]
    return variables
