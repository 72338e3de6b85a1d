"""The four-layer MNIST classifier of the smooth adversarial examples paper.

Zhang, Avrithis, Furon & Amsaleg, "Smooth adversarial examples", EURASIP J. on Information Security
2020: their MNIST victim is the basic CNN of cleverhans (Papernot et al., "Technical report on the
CleverHans v2.1.0 adversarial examples library", 2018), three convolutions and one linear layer.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from jaxadv.models._strided_conv import Stride2Conv


class C4Net(nn.Module):
    """conv64 k8 s2 SAME - conv128 k6 s2 VALID - conv128 k5 s1 VALID - fc (ReLU after each conv).

    On 28×28 inputs the feature maps are 14×14 → 5×5 → 1×1. The SAME padding of the first layer
    is symmetric on even sizes (3 pixels each side on 28×28 or 32×32), so there PyTorch's
    ``padding=3`` is the same layer and converted weights give the same logits.

    The stride-2 layers are :class:`Stride2Conv` (the same parameters and values as ``nn.Conv``,
    about 4× faster to differentiate on CPU).

    Layers are named ``conv1``..``conv3`` and ``fc``; the feature map before the flatten is sown
    as ``intermediates/features``.

    Attributes:
      num_classes: number of output logits.
    """

    num_classes: int = 10

    # The Dense layer right after the NHWC flatten (the converters reorder its input rows).
    flatten_dense = "fc"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits ``[b, num_classes]`` of a batch ``x: [b, h, w, c]``; ``train`` is unused."""
        del train  # no dropout or batch norm: the same function in training and inference
        x = nn.relu(Stride2Conv(64, (8, 8), padding="SAME", name="conv1")(x))
        x = nn.relu(Stride2Conv(128, (6, 6), padding="VALID", name="conv2")(x))
        x = nn.relu(nn.Conv(128, (5, 5), strides=1, padding="VALID", name="conv3")(x))
        self.sow("intermediates", "features", x)
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(self.num_classes, name="fc")(x)
