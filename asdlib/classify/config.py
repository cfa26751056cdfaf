"""The settings of an ID-classification run, saved in every checkpoint, and the model they describe."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..core import config
from ..core.errors import ConfigError
from ..models import create_model
from .losses import LossConfig, needs_cosine_head
from .schedule import ScheduleConfig

CRITERIA = ("dev_auc_pauc", "val_loss")
# Settings that say how a run executes, not what it computes (up to float rounding): they are
# left out of run keys, and a run may be resumed with other values.
EXECUTION_SETTINGS = ("device", "log_every", "compile")
SAMPLINGS = ("shuffle", "balanced")
INPUT_NORMS = ("global", "per_mel")


@dataclass
class TrainConfig:
    """Every setting of a training run; defaults are the study's Method 1 (E2, ArcFace).

    Loss and learning-rate schedule are sections (``cfg.loss.kind``, ``cfg.schedule.max_lr``);
    overrides name them with dots (``{"loss.kind": "cosface"}``), see :mod:`asdlib.core.config`.

    ``epochs=70``: the study does not state it; with T_0=10, T_mult=2 the restarts end at
    epochs 10, 30, 70, 150, and stopping at a cycle's end leaves the learning rate at its
    minimum (a converged point) instead of mid-cycle.

    ``crop_frames=None`` (whole clips): the study feeds 128 x 313 log-mel images, and the
    cache stores one fixed-length clip per row; training and scoring then see exactly the
    same input and mixup already regularises. Set an int (e.g. 64) to train on random time
    crops (cheaper steps, time-shift augmentation); scoring then averages logits over
    sliding windows (see :mod:`asdlib.classify.inference`).

    ``val_fraction``: a stratified share of the normal *training* clips held out for the
    label-free ``val_loss`` selection criterion and for threshold calibration.

    ``compile``: ``torch.compile`` the model the training steps call (evaluation runs the
    plain model); an execution setting (:data:`EXECUTION_SETTINGS`), like ``device``.
    ``sampling``: ``"shuffle"`` (the study's: every training clip once per epoch) or
    ``"balanced"`` (each epoch draws as many clips, with replacement, every ID equally likely:
    an ID with 21 clips is seen as often as one with 210; see
    :func:`asdlib.classify.train.balanced_epoch_indices`).

    ``input_norm``: ``"global"`` (the study's: the model's input BatchNorm, one mean and variance
    over all mel bins, see :class:`asdlib.models.heads.InputNorm`) or ``"per_mel"`` (each mel bin
    first standardised by its mean and standard deviation over the training clips; the
    statistics are buffers of the model, so checkpoints, ``asdlib score`` and every inference
    path apply them).
    """

    model: str = field(default="iresnet50", metadata={"help": "backbone: resnet50 | iresnet50 | mobilenetv2"})
    width: float = field(default=1.0, metadata={"help": "channel width multiplier"})
    depths: tuple[int, ...] | None = field(default=None, metadata={"help": "blocks per stage (none: the model's)"})
    embedding_dim: int = field(default=2048, metadata={"help": "embedding size"})
    dropout: float | None = field(default=None, metadata={"help": "head dropout (none: the model's default)"})
    loss: LossConfig = field(default_factory=LossConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    mixup_alpha: float = field(default=1.0, metadata={"help": "mixup lambda ~ Beta(alpha, alpha); 0 disables"})
    batch_size: int = 64
    weight_decay: float = field(default=0.0, metadata={"help": "Adam weight decay"})
    epochs: int = field(default=70, metadata={"help": "epochs (70: the end of the third cosine cycle)"})
    eval_every: int = field(default=2, metadata={"help": "score the eval sets every N epochs"})
    crop_frames: int | None = field(default=None, metadata={
        "help": "train on random crops of N frames and score with sliding windows (none: whole clips)"})
    val_fraction: float = field(default=0.1, metadata={"help": "share of normal training clips held out"})
    sampling: str = field(default="shuffle", metadata={
        "help": "shuffle (each training clip once per epoch) | balanced (as many draws with replacement, IDs equally likely)"})
    input_norm: str = field(default="global", metadata={
        "help": "global (input BatchNorm only) | per_mel (standardise each mel bin by training-clip statistics first)"})
    select: tuple[str, ...] = field(default=CRITERIA, metadata={"help": "checkpoint selection criteria"})
    eval_scorer: str = field(default="softmax", metadata={"help": "scorer of the training-time evaluation"})
    seed: int = 0
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda[:k]"})
    amp: bool = field(default=True, metadata={"help": "bf16 autocast on CUDA"})
    channels_last: bool = field(default=True, metadata={"help": "channels_last memory format on CUDA"})
    deterministic: bool = field(default=False, metadata={"help": "torch.use_deterministic_algorithms"})
    compile: bool = field(default=False, metadata={
        "help": "torch.compile the training step's model (CUDA; the first steps pay the compilation)"})
    log_every: int = field(default=50, metadata={"help": "progress-bar update every N steps"})

    def __post_init__(self) -> None:
        if self.depths is not None:
            self.depths = tuple(int(d) for d in self.depths)
        self.select = tuple(self.select)
        bad = set(self.select) - set(CRITERIA)
        if bad:
            raise ConfigError(f"unknown selection criteria {sorted(bad)}; choose from {CRITERIA}")
        if self.batch_size < 2:
            raise ConfigError("batch_size must be >= 2 (batch norm needs two clips)")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.sampling not in SAMPLINGS:
            raise ConfigError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if self.input_norm not in INPUT_NORMS:
            raise ConfigError(f"input_norm must be one of {INPUT_NORMS}, got {self.input_norm!r}")

    def to_dict(self) -> dict:
        """Nested plain dict, as saved in checkpoints and hashed into run keys."""
        return config.to_dict(self)

    @classmethod
    def from_dict(cls, d: dict, strict: bool = False) -> TrainConfig:
        """Rebuild from a nested dict and/or dotted keys; a checkpoint's dict ignores keys a
        newer version might add (``strict=False``), user settings name unknown keys."""
        d = dict(d)
        if isinstance(d.get("loss"), str):  # checkpoints before loss/schedule were sections
            d = _from_flat_layout(d)
        return config.from_dict(cls, d, strict=strict)

    def replace(self, overrides: dict | None = None, **kw) -> TrainConfig:
        """A copy with dotted overrides (``{"loss.kind": "cosface"}``) and/or top-level keywords."""
        return config.override(self, {**(overrides or {}), **kw})


_FLAT_LOSS = ("scale", "margin", "label_smoothing", "focal_alpha", "focal_gamma")
_FLAT_SCHEDULE = ("max_lr", "T_up", "T_0", "T_mult")


def _from_flat_layout(d: dict) -> dict:
    """The flat layout of checkpoints written before loss and schedule became sections."""
    out = {k: v for k, v in d.items() if k not in _FLAT_LOSS + _FLAT_SCHEDULE + ("loss",)}
    out["loss"] = {"kind": d["loss"], **{k: d[k] for k in _FLAT_LOSS if k in d}}
    out["schedule"] = {k: d[k] for k in _FLAT_SCHEDULE if k in d}
    return out


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """The backbone + head a config describes; margin losses get the cosine head."""
    kw = dict(width=cfg.width, depths=cfg.depths, embedding_dim=cfg.embedding_dim,
              head="cosine" if needs_cosine_head(cfg.loss.kind) else "linear", scale=cfg.loss.scale, in_chans=1)
    if cfg.dropout is not None:
        kw["dropout"] = cfg.dropout
    return create_model(cfg.model, num_classes, **kw)
