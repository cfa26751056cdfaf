"""Bottleneck ResNet50 for log-mel spectrograms: the study's softmax backbone (E4 "softmax").

Written in the house style of torchvision's ``resnet.py`` (``conv3x3``/``conv1x1``
helpers, ``expansion``, one ``_make_layer``, injectable ``norm_layer``,
``zero_init_residual``) but not copied from it. Differences, all for spectrograms:

* ``in_chans=1`` and an :class:`~asdlib.models.heads.InputNorm` before the stem, since
  log-mel dB values are far from unit scale;
* ``width`` scales every channel count (0.125 gives a 2048/8 = 256-d network for CPU
  smoke runs on the same code path);
* global average pooling over (mel, time) makes any ``n_mels`` and any number of frames
  work; the pooled vector is the embedding (2048-d at ``width=1``), or a
  Linear-BN projection of it when ``embedding_dim`` differs.

Depths are torchvision's ResNet50, [3, 4, 6, 3]: the study names ResNet50 and found
ResNet101 worse. A 128 x 313 log-mel ends as a 4 x 10 map (stride 32).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ..core.errors import ConfigError
from .heads import EmbeddingClassifier, InputNorm

NormLayer = Callable[[int], nn.Module]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding; no bias because a norm layer follows."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def scaled(channels: int, width: float) -> int:
    """Channel count times the width multiplier, never below 1."""
    return max(1, int(round(channels * width)))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4). The stride sits on the 3x3 conv (ResNet v1.5):
    striding a 1x1 conv would simply drop three quarters of the positions."""

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = norm_layer(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:  # (B, Cin, M, T) -> (B, 4P, M/s, T/s)
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(EmbeddingClassifier):
    """Generic bottleneck ResNet with the shared classifier API (see ``heads.py``)."""

    def __init__(
        self,
        layers: Sequence[int] = (3, 4, 6, 3),
        num_classes: int = 41,
        *,
        in_chans: int = 1,
        width: float = 1.0,
        embedding_dim: int | None = None,
        head: str = "linear",
        scale: float = 30.0,
        dropout: float = 0.0,
        zero_init_residual: bool = False,
        norm_layer: NormLayer | None = None,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise ConfigError(f"resnet needs 4 stage depths >= 1, got {tuple(layers)}")
        if width <= 0:
            raise ConfigError(f"width must be > 0, got {width}")
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self.inplanes = scaled(64, width)

        self.input_norm = InputNorm(in_chans)
        self.conv1 = nn.Conv2d(in_chans, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(scaled(64, width), layers[0])
        self.layer2 = self._make_layer(scaled(128, width), layers[1], stride=2)
        self.layer3 = self._make_layer(scaled(256, width), layers[2], stride=2)
        self.layer4 = self._make_layer(scaled(512, width), layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)

        pooled = self.inplanes  # 512 * width * expansion
        if embedding_dim is None or embedding_dim == pooled:
            self.proj: nn.Module = nn.Identity()
            self.num_features = pooled
        else:
            self.proj = nn.Sequential(nn.Linear(pooled, embedding_dim, bias=False), nn.BatchNorm1d(embedding_dim))
            self.num_features = embedding_dim
        self._init_classifier(num_classes, head, scale, dropout)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            # Each block then starts as the identity, which helps early training.
            for m in self.modules():
                if isinstance(m, Bottleneck) and m.bn3.weight is not None:
                    nn.init.zeros_(m.bn3.weight)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * Bottleneck.expansion, stride),
                self._norm_layer(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample, self._norm_layer)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes, norm_layer=self._norm_layer) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.input_norm(x)  # (B, 1, M, T)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64w, M/4, T/4)
        x = self.layer1(x)  # (B, 256w, M/4, T/4)
        x = self.layer2(x)  # (B, 512w, M/8, T/8)
        x = self.layer3(x)  # (B, 1024w, M/16, T/16)
        return self.layer4(x)  # (B, 2048w, M/32, T/32)

    def forward_embedding(self, f: Tensor) -> Tensor:
        x = torch.flatten(self.avgpool(f), 1)  # (B, 2048w)
        return self.proj(x)  # (B, embedding_dim)


def resnet50(num_classes: int = 41, **kwargs) -> ResNet:
    """Bottleneck ResNet50, [3, 4, 6, 3]; ``depths=`` overrides the stage depths."""
    layers = kwargs.pop("depths", None) or (3, 4, 6, 3)
    return ResNet(layers, num_classes, **kwargs)
