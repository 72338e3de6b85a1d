"""PyTorch twins of the digits zoo (C&W net, C4 net, small ResNet) holding a jaxadv victim's weights.

Module and parameter names equal the Flax layers' dot-joined paths (``conv1``, ``layer2_0.bn1``,
...), so ``jaxadv.models.from_torch_state_dict`` maps a twin's state dict onto the Flax variables
with no name map, and ``_peer_libs.torch_state_dict_from_flax`` inverts it. :func:`twin` checks
that the twin's logits equal the victim's on the given images.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _modules():
    import torch
    from torch import nn

    class C4Net(nn.Module):
        def __init__(self, channels=1, classes=10):
            super().__init__()
            self.conv1 = nn.Conv2d(channels, 64, 8, stride=2, padding=3)
            self.conv2 = nn.Conv2d(64, 128, 6, stride=2)
            self.conv3 = nn.Conv2d(128, 128, 5)
            self.fc = nn.Linear(128, classes)

        def forward(self, x):
            x = torch.relu(self.conv3(torch.relu(self.conv2(torch.relu(self.conv1(x))))))
            return self.fc(torch.flatten(x, 1))

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.project = stride != 1 or cin != cout
            if self.project:
                self.downsample_conv = nn.Conv2d(cin, cout, 1, stride, bias=False)
                self.downsample_bn = nn.BatchNorm2d(cout)

        def forward(self, x):
            y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            if self.project:
                x = self.downsample_bn(self.downsample_conv(x))
            return torch.relu(x + y)

    class ResNet(nn.Module):  # stage_sizes (1, 1, 1), width 16: jaxadv's classifier("resnet")
        def __init__(self, channels=1, classes=10, width=16):
            super().__init__()
            self.conv1 = nn.Conv2d(channels, width, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.layer1_0 = Block(width, width, 1)
            self.layer2_0 = Block(width, 2 * width, 2)
            self.layer3_0 = Block(2 * width, 4 * width, 2)
            self.fc = nn.Linear(4 * width, classes)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = self.layer3_0(self.layer2_0(self.layer1_0(x)))
            return self.fc(x.mean(dim=(2, 3)))

    return {"c4": C4Net, "resnet": ResNet}


def twin(arch: str, victim: Any, images: np.ndarray) -> Any:
    """The PyTorch twin of the jaxadv digits victim ``victim`` of architecture ``arch`` (``cw``,
    ``c4``, ``resnet``), in eval mode, its logits checked against the victim's on ``images``."""
    import torch
    from _peer_libs import torch_state_dict_from_flax, torch_twin

    from jaxadv.models import classifier

    side, channels = victim.input_shape[0], victim.input_shape[-1]
    if arch == "cw":
        model = torch_twin(0, channels=channels, side=side)
    else:
        model = _modules()[arch](channels=channels)
    state = torch_state_dict_from_flax(
        victim.variables, classifier(arch), tuple(victim.input_shape), model.state_dict()
    )
    model.load_state_dict(state, strict=False)  # num_batches_tracked stays the twin's own
    model.eval()
    with torch.no_grad():
        ours = model(torch.from_numpy(np.transpose(images, (0, 3, 1, 2)).copy())).numpy()
    theirs = np.asarray(victim.batch(images))
    gap = float(np.max(np.abs(ours - theirs)))
    if gap > 1e-3 * max(1.0, float(np.max(np.abs(theirs)))):
        raise AssertionError(f"the {arch} twin's logits differ from jaxadv's by {gap}")
    return model
