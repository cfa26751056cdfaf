"""Classifier heads, the input normalisation, and the API every backbone shares.

Two heads, one contract: ``head(embedding)`` returns logits whose softmax is the
inference probability (the anomaly score is ``1 - softmax[own ID]``).

* ``LinearHead``: a plain fully connected layer (softmax cross-entropy, E4 "softmax").
* ``CosineHead``: ``scale * cos(embedding, w_c)``, clamped to [-1, 1] before scaling.
  The margin (CosFace, ArcFace) is *not* applied here: it belongs to the loss and to
  training only (see :mod:`asdlib.classify.losses`), so evaluation never sees a margin. The head
  exposes ``scale`` so that the loss can recover ``cos = logits / scale``.

``EmbeddingClassifier`` is the timm-like base class of all backbones: subclasses write
``forward_features`` (input -> feature map) and ``forward_embedding`` (feature map ->
embedding); the base class adds the classifier, ``forward_head``, ``reset_classifier``
(which is all that transfer learning, E5, needs) and ``get_classifier``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import ConfigError

HEADS = ("linear", "cosine")


class InputNorm(nn.Module):
    """Standardise log-mel input with one BatchNorm over the (single) input channel, optionally
    after a fixed per-mel-bin standardisation.

    Log-mel values are in dB, roughly -100..+40, so something must bring them to unit
    scale before the first convolution. Choices considered:

    * per-clip standardisation: removes each clip's loudness, which can itself be a sign
      of an anomaly (a louder bearing), so it throws information away;
    * a BatchNorm over the mel axis (one statistic per mel bin): fixes ``n_mels`` at
      construction, which the "any input size" contract forbids;
    * **one BatchNorm2d over the input channel** (chosen): a dataset-wide running mean and
      variance, so relative loudness between clips and between mel bins survives, and
      any ``n_mels`` and any number of frames work.

    Per-mel statistics (``TrainConfig.input_norm="per_mel"``): :meth:`set_mel_stats` stores a
    mean and standard deviation per mel bin (of the normal training clips) as buffers, and
    :meth:`forward` then computes ``bn((x - mean) / std)``: quiet high bands get the scale of loud
    low ones, while each clip's loudness relative to the training clips survives. The buffers
    are absent until set (a model without them is unchanged, its ``state_dict`` too), and a
    state dict that holds them brings them along on ``load_state_dict``, so a checkpoint
    restores them with the weights.
    """

    _MEL_BUFFERS = ("mel_mean", "mel_std")

    def __init__(self, in_chans: int = 1) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_chans)
        self.register_buffer("mel_mean", None)  # (M,) once set
        self.register_buffer("mel_std", None)  # (M,) once set

    @property
    def per_mel(self) -> bool:
        """Whether per-mel statistics are set."""
        return self.mel_mean is not None

    def set_mel_stats(self, mean, std) -> None:
        """Store the per-mel-bin mean and standard deviation ``(M,)`` (any array-like)."""
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean.shape != std.shape or not bool((std > 0).all()) or not bool(torch.isfinite(mean).all()):
            raise ConfigError(f"per-mel statistics need equal shapes, finite means and std > 0; got {tuple(mean.shape)}, "
                              f"{tuple(std.shape)}")
        device = self.bn.running_mean.device
        self.mel_mean, self.mel_std = mean.to(device), std.to(device)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, M, T) -> (B, C, M, T)
        if self.mel_mean is not None:
            if x.shape[-2] != self.mel_mean.shape[0]:
                raise ConfigError(f"this model standardises {self.mel_mean.shape[0]} mel bins; the input has {x.shape[-2]}")
            x = (x - self.mel_mean[:, None]) / self.mel_std[:, None]
        return self.bn(x)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        for name in self._MEL_BUFFERS:  # make room for statistics the state dict brings
            key = prefix + name
            if key in state_dict and getattr(self, name) is None:
                setattr(self, name, torch.empty_like(state_dict[key], device=self.bn.running_mean.device))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


class LinearHead(nn.Module):
    """Plain FC classifier; ``scale`` is None because its logits are not cosines."""

    scale: float | None = None

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.num_classes = num_classes
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:  # (B, D) -> (B, C)
        return self.fc(x)


class CosineHead(nn.Module):
    """``scale * clamp(normalize(x) @ normalize(W).T, -1, 1)``: the first of the three
    margin-loss steps (cosine logits, then margin on the target, then criterion).

    No bias: a bias would break the reading of logits as scaled cosines.
    """

    def __init__(self, in_features: int, num_classes: int, scale: float = 30.0) -> None:
        super().__init__()
        if scale <= 0:
            raise ConfigError(f"cosine head scale must be > 0, got {scale}")
        self.in_features = in_features
        self.num_classes = num_classes
        self.scale = float(scale)
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        # Any direction is as good as another; a uniform init like nn.Linear's keeps the
        # class centres spread at the start.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def cosine(self, x: Tensor) -> Tensor:  # (B, D) -> (B, C)
        # Always in float32, even under autocast: bfloat16 resolves cosines only to ~0.004,
        # coarser than the ArcFace margin of 0.05 needs for a smooth loss. The layer is tiny.
        with torch.autocast(device_type=x.device.type, enabled=False):
            cos = F.linear(F.normalize(x.float(), dim=1), F.normalize(self.weight.float(), dim=1))
        return cos.clamp(-1.0, 1.0)

    def forward(self, x: Tensor) -> Tensor:  # (B, D) -> (B, C)
        return self.scale * self.cosine(x)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.num_classes}, scale={self.scale}"


def create_head(kind: str, in_features: int, num_classes: int, scale: float = 30.0) -> nn.Module:
    """Build a classifier head by name ("linear" or "cosine")."""
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    if kind == "linear":
        return LinearHead(in_features, num_classes)
    if kind == "cosine":
        return CosineHead(in_features, num_classes, scale)
    raise ConfigError(f"unknown head {kind!r}; choose one of {HEADS}")


class EmbeddingClassifier(nn.Module):
    """timm-like API shared by every backbone in :mod:`asdlib.models`.

    Subclasses set ``self.num_features`` (the embedding size) and implement
    ``forward_features`` and ``forward_embedding``; then call ``_init_classifier``.
    """

    num_features: int

    def _init_classifier(self, num_classes: int, head: str, scale: float, dropout: float) -> None:
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        self.head_kind = head
        self.head_scale = float(scale)
        self.head_drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = create_head(head, self.num_features, num_classes, scale)

    @property
    def num_classes(self) -> int:
        return self.classifier.num_classes

    @property
    def scale(self) -> float | None:
        """The head's logit scale (None for a linear head)."""
        return self.classifier.scale

    def forward_features(self, x: Tensor) -> Tensor:  # (B, 1, M, T) -> (B, C', M', T')
        raise NotImplementedError

    def forward_embedding(self, f: Tensor) -> Tensor:  # (B, C', M', T') -> (B, D)
        raise NotImplementedError

    def forward_head(self, f: Tensor, pre_logits: bool = False) -> Tensor:
        """Feature map -> embedding (``pre_logits=True``, (B, D)) or logits (B, C)."""
        emb = self.forward_embedding(f)  # (B, D)
        if pre_logits:
            return emb
        return self.classifier(self.head_drop(emb))  # (B, C)

    def forward(self, x: Tensor) -> Tensor:  # (B, 1, M, T) -> (B, C)
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, head: str | None = None) -> None:
        """Replace only the classifier (fresh weights), keeping the head kind and scale.

        The E5 transfer step: freeze the rest, train this on one machine type.
        """
        kind = head or self.head_kind
        self.head_kind = kind
        device = next(self.parameters()).device
        self.classifier = create_head(kind, self.num_features, num_classes, self.head_scale).to(device)
