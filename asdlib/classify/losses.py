"""Losses of the ID classifier, in three small steps (after insightface's arcface_torch).

1. **Cosine logits** come from the model's :class:`~asdlib.models.heads.CosineHead`
   (``scale * cos``); the loss recovers ``cos = logits / scale``.
2. **Margin** edits only the target logit: none, CosFace ``cos - m``, or ArcFace
   ``cos(theta + m)``. ArcFace is computed in the *differentiable* form
   ``cos*cos(m) - sin*sin(m)`` (current insightface applies its margin under
   ``torch.no_grad()``, so the margin gets no gradient). When ``theta + m > pi`` the
   angle would wrap round and the "penalised" logit would grow again, so the usual
   fallback ``cos - m*sin(m)`` (a CosFace-like margin, monotone in theta) is used there.
3. **Criterion**: cross-entropy with label smoothing, or focal loss (alpha, gamma) with
   the same label smoothing.

Soft targets (from mixup, ``t = lam * e_a + (1 - lam) * e_b``) meet a margin in one of two
forms, ``LossConfig.mixup_margin``:

* ``"pair"`` (default, the usual form): ``lam * L(x, a) + (1 - lam) * L(x, b)``, each term
  with the **full** margin on its own class and its own (smoothed) one-hot target; in
  general ``sum_c t_c * L(x, c)`` over the classes a target row holds;
* ``"shared"`` (asdlib's first form, kept for comparison): one pass in which the edited
  cosine of class c is ``cos_c + t_c * (margin(cos_c) - cos_c)``, i.e. each class receives
  its target *share* of the margin; with lam ~ Beta(1, 1) the margin on the main class is
  then about 0.75 m on average.

Without mixup (one-hot targets) both are the standard margin. Smoothing:
``t' = (1 - eps) * t + eps / C``, then ``-sum_c t'_c log p_c`` (equal to
``F.cross_entropy(..., label_smoothing=eps)`` for one-hot targets); focal:
``-sum_c t'_c * alpha * (1 - p_c)**gamma * log p_c`` (gamma 0, alpha 1 gives cross-entropy).

Kinds: "softmax" (plain CE on a linear head; E4 softmax row), "cosface", "arcface"
(cosine head + margin), "focal". ``LossConfig.focal_margin`` says which margin focal loss
runs on: ``"none"`` (default; the E4 focal row) or ``"arcface"`` (the pairing of the widely
used ArcFace code, focal loss on ArcFace-margin logits). The E4 row uses no margin because
the study's loss ablation changes one thing per row: softmax changes the backbone and
head, CosFace the margin, and focal the criterion on the same cosine head, so "focal vs
ArcFace" compares criteria, not criterion plus margin.

Margins: ArcFace 0.05 (the study; 0.5 gave almost the same). CosFace uses the same
``margin`` field; the CosFace paper's 0.35 is common, but the study does not state its
value, so the default is the study's single margin 0.05 and a run may set 0.35.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import ConfigError

LOSS_KINDS = ("softmax", "cosface", "arcface", "focal")
MIXUP_MARGINS = ("pair", "shared")
PAIR_CLASSES = 2  # classes a soft target row may hold in the pair form (mixup of two one-hot rows)


@dataclass
class LossConfig:
    kind: str = field(default="arcface", metadata={"help": "softmax | cosface | arcface | focal"})
    scale: float = field(default=30.0, metadata={"help": "cosine-logit scale s (also the cosine head's)"})
    margin: float = field(default=0.05, metadata={"help": "additive margin m (ArcFace angle, CosFace cosine)"})
    label_smoothing: float = 0.05
    focal_alpha: float = 1.0
    focal_gamma: float = 1.0
    focal_margin: str = field(default="none", metadata={"help": "margin under focal loss: none | arcface"})
    mixup_margin: str = field(default="pair", metadata={
        "help": "margins with mixup: pair (lam*L(a) + (1-lam)*L(b), full margin each) | shared (margin shared out)"})

    def __post_init__(self) -> None:
        if self.kind not in LOSS_KINDS:
            raise ConfigError(f"unknown loss {self.kind!r}; choose one of {LOSS_KINDS}")
        if self.focal_margin not in ("none", "arcface"):
            raise ConfigError(f"focal_margin must be 'none' or 'arcface', got {self.focal_margin!r}")
        if self.mixup_margin not in MIXUP_MARGINS:
            raise ConfigError(f"mixup_margin must be one of {MIXUP_MARGINS}, got {self.mixup_margin!r}")
        if self.scale <= 0:
            raise ConfigError(f"loss scale must be > 0, got {self.scale}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.margin < 0 or (self.kind == "arcface" and self.margin >= math.pi / 2):
            raise ConfigError(f"margin must be >= 0 (ArcFace: < pi/2), got {self.margin}")
        if self.focal_gamma < 0 or self.focal_alpha <= 0:
            raise ConfigError(f"focal needs gamma >= 0 and alpha > 0, got {self.focal_gamma}, {self.focal_alpha}")


def needs_cosine_head(kind: str) -> bool:
    """Whether the loss ``kind`` expects the model's cosine head (all but "softmax")."""
    if kind not in LOSS_KINDS:
        raise ConfigError(f"unknown loss {kind!r}; choose one of {LOSS_KINDS}")
    return kind != "softmax"


# --- step 2: margins on the cosine of the target ------------------------------------


def cosface_margin(cos: Tensor, m: float) -> Tensor:
    return cos - m


def arcface_margin(cos: Tensor, m: float) -> Tensor:
    """``cos(theta + m)`` with a gradient through the margin; fallback past ``pi - m``."""
    # Clamp only inside the sine: the linear term keeps its gradient even at |cos| = 1
    # (logits / scale can overshoot 1 by a rounding error). The tiny floor keeps
    # d(sin)/d(cos) = -cos/sin finite at theta = 0 and theta = pi.
    c = cos.clamp(-1.0, 1.0)
    sin = torch.sqrt((1.0 - c * c).clamp_min(1e-6))
    phi = cos * math.cos(m) - sin * math.sin(m)
    # theta + m > pi  <=>  cos < cos(pi - m): keep the logit decreasing in theta.
    return torch.where(c > math.cos(math.pi - m), phi, cos - m * math.sin(m))


def apply_margin(cos: Tensor, target: Tensor, kind: str, m: float) -> Tensor:
    """Edit the target entries of ``cos`` (B, C); ``target`` is (B,) ints or (B, C) soft."""
    if kind in ("softmax", "focal") or m == 0.0:
        return cos
    edited = arcface_margin(cos, m) if kind == "arcface" else cosface_margin(cos, m)
    weight = to_soft_targets(target, cos.shape[1]).to(cos.dtype)  # (B, C), one-hot or soft
    return cos + weight * (edited - cos)


# --- step 3: criteria with label smoothing ------------------------------------------


def to_soft_targets(target: Tensor, num_classes: int) -> Tensor:
    """(B,) int labels -> (B, C) one-hot; (B, C) targets are returned as they are."""
    if target.dim() == 1:
        return F.one_hot(target.long(), num_classes).float()
    if target.dim() != 2 or target.shape[1] != num_classes:
        raise ConfigError(f"targets must be (B,) or (B, {num_classes}), got {tuple(target.shape)}")
    return target


def smoothed_targets(target: Tensor, num_classes: int, eps: float) -> Tensor:
    t = to_soft_targets(target, num_classes)
    return (1.0 - eps) * t + eps / num_classes  # (B, C)


def soft_cross_entropy(logits: Tensor, target: Tensor, eps: float = 0.0, reduce: bool = True) -> Tensor:
    """Mean over the batch (per row with ``reduce=False``) of ``-sum_c t'_c log softmax(logits)_c``."""
    t = smoothed_targets(target, logits.shape[1], eps)
    per_row = -(t * F.log_softmax(logits, dim=1)).sum(dim=1)  # (B,)
    return per_row.mean() if reduce else per_row


def focal_loss(logits: Tensor, target: Tensor, alpha: float = 1.0, gamma: float = 1.0, eps: float = 0.0,
               reduce: bool = True) -> Tensor:
    """Focal loss over (smoothed, possibly soft) targets; gamma 0 and alpha 1 give CE."""
    t = smoothed_targets(target, logits.shape[1], eps)
    logp = F.log_softmax(logits, dim=1)  # (B, C)
    modulator = (1.0 - logp.exp()).clamp_min(0.0).pow(gamma)
    per_row = -(alpha * t * modulator * logp).sum(dim=1)  # (B,)
    return per_row.mean() if reduce else per_row


class MarginLoss(nn.Module):
    """Cosine logits -> margin on the target -> criterion (steps 2 and 3).

    Args:
        margin_kind: "none", "cosface" or "arcface".
        criterion: "ce" or "focal".
        mixup_margin: how a margin meets soft targets: "pair" or "shared" (module docstring).
    """

    def __init__(
        self,
        scale: float = 30.0,
        margin: float = 0.0,
        margin_kind: str = "none",
        criterion: str = "ce",
        label_smoothing: float = 0.0,
        focal_alpha: float = 1.0,
        focal_gamma: float = 1.0,
        mixup_margin: str = "pair",
    ) -> None:
        super().__init__()
        if margin_kind not in ("none", "cosface", "arcface") or criterion not in ("ce", "focal"):
            raise ConfigError(f"bad margin kind {margin_kind!r} or criterion {criterion!r}")
        if mixup_margin not in MIXUP_MARGINS:
            raise ConfigError(f"mixup_margin must be one of {MIXUP_MARGINS}, got {mixup_margin!r}")
        self.mixup_margin = mixup_margin
        self.scale, self.margin, self.margin_kind = float(scale), float(margin), margin_kind
        self.criterion, self.label_smoothing = criterion, float(label_smoothing)
        self.focal_alpha, self.focal_gamma = float(focal_alpha), float(focal_gamma)

    def margin_logits(self, logits: Tensor, target: Tensor) -> Tensor:
        """Scaled cosines with the margin applied to the target (training logits)."""
        if self.margin_kind == "none":
            return logits
        cos = logits / self.scale  # (B, C), in [-1, 1]
        return self.scale * apply_margin(cos, target, self.margin_kind, self.margin)

    def _criterion(self, z: Tensor, target: Tensor, reduce: bool = True) -> Tensor:
        if self.criterion == "focal":
            return focal_loss(z, target, self.focal_alpha, self.focal_gamma, self.label_smoothing, reduce)
        return soft_cross_entropy(z, target, self.label_smoothing, reduce)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if target.dim() == 2 and self.margin_kind != "none" and self.mixup_margin == "pair":
            return self._pair_loss(logits, target)
        return self._criterion(self.margin_logits(logits, target), target)  # (B, C) logits

    def _pair_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """``mean_b sum_c t_bc * L(x_b, c)``: each class of a soft target row with the full margin
        and its own one-hot target. Only the ``PAIR_CLASSES`` largest entries of a row are visited
        (mixup mixes two one-hot rows: a row holds one or two classes; a second entry of weight 0
        adds exactly 0). The count is fixed rather than read from the targets, so the step never
        waits for the device; a row holding more classes trips a device-side assert."""
        k = min(PAIR_CLASSES, target.shape[1])
        weights, classes = target.topk(min(k + 1, target.shape[1]), dim=1)  # (B, k + 1)
        if weights.shape[1] > k:
            torch._assert_async((weights[:, k] == 0).all(), "pair-form margin loss: a soft target row holds "
                                f"more than {PAIR_CLASSES} classes; raise losses.PAIR_CLASSES")
        total = logits.new_zeros(logits.shape[0])
        for j in range(k):
            c = classes[:, j]  # (B,)
            total = total + weights[:, j] * self._criterion(self.margin_logits(logits, c), c, reduce=False)
        return total.mean()

    def extra_repr(self) -> str:
        return (
            f"scale={self.scale}, margin={self.margin}, margin_kind={self.margin_kind}, "
            f"criterion={self.criterion}, label_smoothing={self.label_smoothing}, mixup_margin={self.mixup_margin}"
        )


def build_loss(cfg: LossConfig) -> MarginLoss:
    """The loss of one ablation row, called as ``loss(logits, target)``."""
    margin_kind = {"softmax": "none", "focal": cfg.focal_margin}.get(cfg.kind, cfg.kind)
    return MarginLoss(
        scale=cfg.scale,
        margin=cfg.margin,
        margin_kind=margin_kind,
        criterion="focal" if cfg.kind == "focal" else "ce",
        label_smoothing=cfg.label_smoothing,
        focal_alpha=cfg.focal_alpha,
        focal_gamma=cfg.focal_gamma,
        mixup_margin=cfg.mixup_margin,
    )
