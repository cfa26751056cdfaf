"""MobileNetV2 for log-mel spectrograms: the backbone of many DCASE2020 Task 2 entries.

Inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 linear projection; residual
only when shape is unchanged) as in Sandler et al. (2018). Choices:

* the block table is the paper's (expansion t, channels c, repeats n, stride s); its
  seven repeat counts [1, 2, 3, 4, 3, 3, 1] can be overridden with ``depths``;
* ``width`` multiplies every channel count, rounded to a multiple of 8 (the paper's
  rule, which keeps channel counts friendly to hardware);
* the final 1x1 conv outputs ``embedding_dim`` channels directly (the paper's 1280 when
  ``embedding_dim`` is None): that conv is a free choice of size anyway, and it lets the
  study's 2048-d embedding come out without an extra projection;
* global average pooling over (mel, time), so any input size works; dropout before the
  classifier (torchvision uses 0.2; here the ``dropout`` argument, default 0.2).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..core.errors import ConfigError
from .heads import EmbeddingClassifier, InputNorm

# (expansion t, output channels c, repeats n, first stride s), from the paper's Table 2.
BLOCKS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor`` without going more than 10% below ``v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def conv_bn_act(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 (carries the stride) -> linear 1x1 projection.

    The projection has no activation: a ReLU in the narrow space would destroy
    information (the paper's "linear bottleneck" argument).
    """

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn_act(cin, hidden, kernel=1))
        layers += [
            conv_bn_act(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:  # (B, Cin, M, T) -> (B, Cout, M/s, T/s)
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(EmbeddingClassifier):
    """MobileNetV2 trunk + global average pooling + shared classifier API."""

    def __init__(
        self,
        num_classes: int = 41,
        *,
        in_chans: int = 1,
        width: float = 1.0,
        depths: Sequence[int] | None = None,
        embedding_dim: int | None = None,
        head: str = "linear",
        scale: float = 30.0,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if width <= 0:
            raise ConfigError(f"width must be > 0, got {width}")
        depths = tuple(depths) if depths is not None else tuple(b[2] for b in BLOCKS)
        if len(depths) != len(BLOCKS) or min(depths) < 1:
            raise ConfigError(f"mobilenetv2 needs {len(BLOCKS)} stage depths >= 1, got {depths}")
        cin = make_divisible(32 * width)
        self.input_norm = InputNorm(in_chans)
        layers: list[nn.Module] = [conv_bn_act(in_chans, cin, stride=2)]
        for (t, c, _, s), n in zip(BLOCKS, depths):
            cout = make_divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        self.num_features = embedding_dim or 1280
        layers.append(conv_bn_act(cin, self.num_features, kernel=1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self._init_classifier(num_classes, head, scale, dropout)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.input_norm(x)  # (B, 1, M, T)
        return self.features(x)  # (B, embedding_dim, M/32, T/32)

    def forward_embedding(self, f: Tensor) -> Tensor:
        return torch.flatten(self.avgpool(f), 1)  # (B, embedding_dim)


def mobilenetv2(num_classes: int = 41, **kwargs) -> MobileNetV2:
    """MobileNetV2 with the paper's block table; see :class:`MobileNetV2`."""
    return MobileNetV2(num_classes, **kwargs)
