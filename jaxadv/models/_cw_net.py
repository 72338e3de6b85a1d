"""The Carlini–Wagner MNIST/CIFAR classifier.

Carlini & Wagner, "Towards evaluating the robustness of neural networks", IEEE S&P 2017, Table 1:
the same seven-layer net serves MNIST (28×28×1) and CIFAR-10 (32×32×3), which is also the victim of
the repository's CPU benchmarks (``benchmarks/``).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from jaxadv.models._layers import Conv2D, max_pool_2x2


class CWNet(nn.Module):
    """conv32-conv32-pool-conv64-conv64-pool-fc200-fc200-fc (3×3 VALID convs, ReLU).

    Carlini & Wagner (2017), Table 1. The paper trains with dropout 0.5 on the two hidden fully
    connected layers; ``dropout_rate`` reproduces it (off by default, and always off when
    ``train=False``, which is how every ``Victim`` applies the model). With dropout on, training
    must pass a ``"dropout"`` rng.

    Layers are named (``conv1``..``conv4``, ``fc1``..``fc3``) so that
    ``apply(..., capture_intermediates=True)`` and the weight converters can address them; the
    feature map before the flatten is sown as ``intermediates/features``.

    The first convolution's input gradient is computed as a matmul and a col2im
    (``conv1_input_grad="matmul"``, :class:`~jaxadv.models._layers.Conv2D`): the same values and
    parameters as ``nn.Conv``, and 1.16× / 1.18× the throughput of 10 forward+backward passes at
    batch 128 / 512 on a 2-core CPU (``benchmarks/conv_forms.py``). ``"autodiff"`` is the plain
    form. The field chooses how, not what, is computed: it is left out of
    :func:`~jaxadv.models.describe_module` (``form_fields``), so cached trained victims still match.

    Attributes:
      num_classes: number of output logits.
      dropout_rate: dropout after ``fc1`` and ``fc2`` in training; 0 disables it.
      conv1_input_grad: ``"matmul"`` or ``"autodiff"``, how ``conv1``'s input gradient is computed.
    """

    num_classes: int = 10
    dropout_rate: float = 0.0
    conv1_input_grad: str = "matmul"

    # Fields that choose how, not what, the module computes (describe_module leaves them out).
    form_fields = ("conv1_input_grad",)

    # The Dense layer right after the NHWC flatten (the converters reorder its input rows).
    flatten_dense = "fc1"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits ``[b, num_classes]`` of a batch ``x: [b, h, w, c]``."""
        for i, features in enumerate((32, 32, 64, 64)):
            grad = self.conv1_input_grad if i == 0 else "autodiff"
            conv = Conv2D(features, (3, 3), padding="VALID", input_grad=grad, name=f"conv{i + 1}")
            x = nn.relu(conv(x))
            if i % 2 == 1:
                x = max_pool_2x2(x)
        self.sow("intermediates", "features", x)
        x = x.reshape(x.shape[0], -1)
        for i in range(2):
            x = nn.relu(nn.Dense(200, name=f"fc{i + 1}")(x))
            if self.dropout_rate > 0:
                x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="fc3")(x)
