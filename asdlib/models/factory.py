"""``create_model``: one entry point (timm-like) for every backbone of the study.

The same code path builds the full networks for GPU runs and tiny ones for CPU smoke
runs: ``width`` scales all channel counts, ``depths`` overrides the stage depths,
``embedding_dim`` sets the embedding size (``num_features``).
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..core.errors import ConfigError
from .heads import HEADS
from .iresnet import iresnet50
from .mobilenetv2 import mobilenetv2
from .resnet import resnet50

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "resnet50": resnet50,
    "iresnet50": iresnet50,
    "mobilenetv2": mobilenetv2,
}

# Dropout when the caller does not choose: the ArcFace paper's 0.4 inside the IR
# embedding head, torchvision's 0.2 before the MobileNetV2 classifier, none for ResNet50
# (torchvision has none; mixup and label smoothing already regularise).
_DEFAULT_DROPOUT = {"resnet50": 0.0, "iresnet50": 0.4, "mobilenetv2": 0.2}


def available_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_REGISTRY)


def create_model(
    name: str,
    num_classes: int,
    *,
    width: float = 1.0,
    depths: tuple[int, ...] | None = None,
    embedding_dim: int = 2048,
    head: str = "linear",
    scale: float = 30.0,
    dropout: float | None = None,
    in_chans: int = 1,
    **kwargs,
) -> nn.Module:
    """Build a classifier over log-mel input (B, in_chans, n_mels, T) of any size.

    Args:
        name: "resnet50" (bottleneck, softmax row), "iresnet50" (IR units + BN-Dropout-FC-BN
            embedding head, margin-loss rows) or "mobilenetv2".
        num_classes: number of machine IDs (41 for the integrated model).
        width: channel multiplier (e.g. 0.125 for smoke runs).
        depths: stage depths; 4 for the ResNets, 7 for MobileNetV2. None: the paper's.
        embedding_dim: size of the embedding that ``forward_head(f, pre_logits=True)``
            returns (2048 as in the study; ResNet50 projects its pooled features when
            they differ, MobileNetV2 sizes its last conv to it).
        head: "linear" or "cosine" (use :func:`asdlib.classify.losses.needs_cosine_head`).
        scale: logit scale of the cosine head (ArcFace s = 30).
        dropout: None gives the model's default (resnet50 0.0, iresnet50 0.4, mobilenetv2 0.2).
        **kwargs: model-specific options (``zero_init_residual``, ``norm_layer``,
            ``pool_grid``, ``stem_stride``).
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    if head not in HEADS:
        raise ConfigError(f"unknown head {head!r}; choose one of {HEADS}")
    if embedding_dim < 1:
        raise ConfigError(f"embedding_dim must be >= 1, got {embedding_dim}")
    return _REGISTRY[name](
        num_classes,
        width=width,
        depths=depths,
        embedding_dim=embedding_dim,
        head=head,
        scale=scale,
        dropout=_DEFAULT_DROPOUT[name] if dropout is None else dropout,
        in_chans=in_chans,
        **kwargs,
    )
