"""The settings of an ID-classification run, saved in every checkpoint, and the model they describe."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from torch import nn

from ..core.errors import ConfigError
from ..models import create_model
from .losses import LossConfig, needs_cosine_head
from .schedule import ScheduleConfig

CRITERIA = ("dev_auc_pauc", "val_loss")


@dataclass
class TrainConfig:
    """Every setting of a training run; defaults are the study's Method 1 (E2, ArcFace).

    ``epochs=70``: the study does not state it; with T_0=10, T_mult=2 the restarts end at
    epochs 10, 30, 70, 150, and stopping at a cycle's end leaves the learning rate at its
    minimum (a converged point) instead of mid-cycle.

    ``crop_frames=None`` (whole clips): the study feeds 128 x 313 log-mel images, and the
    cache stores one fixed-length clip per row; training and scoring then see exactly the
    same input and mixup already regularises. Set an int (e.g. 64) to train on random time
    crops (cheaper steps, time-shift augmentation); scoring then averages logits over
    sliding windows (see :mod:`asdlib.classify.evaluate`).

    ``val_fraction``: a stratified share of the normal *training* clips held out for the
    label-free ``val_loss`` selection criterion and for threshold calibration.
    """

    model: str = "iresnet50"
    width: float = 1.0
    depths: tuple[int, ...] | None = None
    embedding_dim: int = 2048
    dropout: float | None = None  # None: the model's default
    loss: str = "arcface"  # softmax | cosface | arcface | focal
    scale: float = 30.0
    margin: float = 0.05
    label_smoothing: float = 0.05
    focal_alpha: float = 1.0
    focal_gamma: float = 1.0
    mixup_alpha: float = 1.0  # lambda ~ Beta(alpha, alpha); 0 disables mixup
    batch_size: int = 64
    weight_decay: float = 0.0  # Adam without weight decay
    max_lr: float = 2e-4
    T_up: int = 2
    T_0: int = 10
    T_mult: int = 2
    epochs: int = 70
    eval_every: int = 2
    crop_frames: int | None = None
    val_fraction: float = 0.1
    select: tuple[str, ...] = CRITERIA
    eval_scorer: str = "softmax"
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    deterministic: bool = False
    log_every: int = 50

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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["select"] = list(self.select)
        d["depths"] = None if self.depths is None else list(self.depths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Rebuild from a checkpoint's dict, ignoring keys a newer version might add."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def loss_config(self):
        return LossConfig(kind=self.loss, scale=self.scale, margin=self.margin,
                          label_smoothing=self.label_smoothing, focal_alpha=self.focal_alpha,
                          focal_gamma=self.focal_gamma)

    def schedule_config(self):
        return ScheduleConfig(max_lr=self.max_lr, T_up=self.T_up, T_0=self.T_0, T_mult=self.T_mult)


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """The backbone + head a config describes; margin losses get the cosine head."""
    kw = dict(width=cfg.width, depths=cfg.depths, embedding_dim=cfg.embedding_dim,
              head="cosine" if needs_cosine_head(cfg.loss) else "linear", scale=cfg.scale, in_chans=1)
    if cfg.dropout is not None:
        kw["dropout"] = cfg.dropout
    return create_model(cfg.model, num_classes, **kw)
