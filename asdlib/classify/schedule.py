"""Linear warm-up + cosine annealing with warm restarts, exactly as the study intends.

The study: max_lr 2e-4, T_up 2, T_0 10, T_mult 2 (epochs). Cycle ``i`` lasts
``T_i = T_0 * T_mult**i`` epochs, so cycles end at epochs 10, 30, 70, 150, ... Within a
cycle that starts at ``S_i`` (``t = epoch - S_i``, fractional epochs):

* ``t < T_up``: linear warm-up from ``min_lr`` to ``max_i``;
* otherwise: half cosine from ``max_i`` down to ``min_lr`` at ``t = T_i``;

with ``max_i = max_lr * gamma**i`` (``gamma`` 1.0: no decay). ``min_lr`` defaults to 0:
the lr is then exactly 0 at each restart, which costs one update per restart and makes
the cycle ends unmistakable in the plot; set a small fraction (e.g. ``max_lr / 100``) to
avoid it. :class:`WarmupCosineRestarts` steps once per *iteration*, so the curve is smooth
rather than a staircase of per-epoch values.

What the study's own scheduler most likely got wrong. The popular
"CosineAnnealingWarmUpRestarts" recipe (katsura-jp's, copied widely in Korean tutorials)
differs from the intent in three ways:

1. its lower bound is the optimizer's *initial* lr and its peak is a separate
   ``eta_max``: the recipe needs the optimizer created with lr ~ 0. Created with
   lr = max_lr (as one naturally does with Adam(lr=2e-4)), the lower bound equals the
   peak and the lr barely moves (or starts at the maximum, not after a warm-up);
2. when stepped without an epoch, it lengthens cycles as ``T_i <- (T_i - T_up) * T_mult
   + T_up``, so with T_0 10, T_up 2, T_mult 2 the cycles last 10, 18, 34, 66 epochs and end
   at 10, 28, 62, 128, not 10, 30, 70, 150 (its ``step(epoch)`` branch uses
   ``T_0 * T_mult**n`` instead: the two paths disagree);
3. stepped once per epoch, warm-up is a 2-step staircase and the lr never reaches the
   minimum inside a cycle.

Here there is one closed form, :func:`lr_at`, and the scheduler class only evaluates it.

``cycle="one"`` makes the whole run one cycle (warm-up, then one half cosine to ``min_lr``
at the last epoch), whatever the run's length: ``T_0`` and ``T_mult`` are then ignored and
:func:`for_run` turns the config into the equivalent ``T_0 = epochs, T_mult = 1``. A setting
that names the shape, not the length, so one registry line works for every profile.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ..core.errors import ConfigError

CYCLES = ("restarts", "one")


@dataclass
class ScheduleConfig:
    max_lr: float = field(default=2e-4, metadata={"help": "peak learning rate of each cycle"})
    T_up: float = field(default=2.0, metadata={"help": "warm-up epochs at the start of every cycle"})
    T_0: float = field(default=10.0, metadata={"help": "first cycle length, epochs"})
    T_mult: float = field(default=2.0, metadata={"help": "cycle length multiplier"})
    min_lr: float = 0.0
    gamma: float = field(default=1.0, metadata={"help": "max_lr decay per cycle"})
    cycle: str = field(default="restarts", metadata={
        "help": "restarts (cycles of T_0 * T_mult**i epochs) | one (one warm-up + cosine cycle over the whole run)"})

    def __post_init__(self) -> None:
        if self.cycle not in CYCLES:
            raise ConfigError(f"schedule cycle must be one of {CYCLES}, got {self.cycle!r}")
        if self.T_0 <= 0 or self.T_mult < 1:
            raise ConfigError(f"need T_0 > 0 and T_mult >= 1, got {self.T_0}, {self.T_mult}")
        if self.T_up < 0 or (self.cycle == "restarts" and self.T_up >= self.T_0):
            raise ConfigError(f"need 0 <= T_up < T_0, got T_up={self.T_up}, T_0={self.T_0}")
        if not 0 <= self.min_lr <= self.max_lr:
            raise ConfigError(f"need 0 <= min_lr <= max_lr, got {self.min_lr}, {self.max_lr}")
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"gamma must be in (0, 1], got {self.gamma}")


def for_run(cfg: ScheduleConfig, epochs: float) -> ScheduleConfig:
    """The schedule of a run of ``epochs`` epochs: ``cfg`` itself for restarts; for ``cycle="one"``
    the equivalent restarts config with one cycle as long as the run (``T_0 = epochs, T_mult = 1``)."""
    if cfg.cycle == "restarts":
        return cfg
    if not 0 <= cfg.T_up < epochs:
        raise ConfigError(f"one-cycle schedule: need 0 <= T_up < epochs, got T_up={cfg.T_up}, epochs={epochs}")
    return replace(cfg, T_0=float(epochs), T_mult=1.0, cycle="restarts")


def _restarts(cfg: ScheduleConfig) -> ScheduleConfig:
    if cfg.cycle != "restarts":
        raise ConfigError("a one-cycle schedule depends on the run's length: resolve it with for_run(cfg, epochs)")
    return cfg


def cycle_of(epoch: float, cfg: ScheduleConfig) -> tuple[int, float, float]:
    """(cycle index i, cycle start S_i, cycle length T_i) of a (fractional) epoch."""
    if epoch < 0:
        raise ConfigError(f"epoch must be >= 0, got {epoch}")
    cfg = _restarts(cfg)
    i, start, length = 0, 0.0, float(cfg.T_0)
    # A loop, not a logarithm: exact at boundaries (10.0 is the start of cycle 1).
    while epoch >= start + length:
        start += length
        length *= cfg.T_mult
        i += 1
    return i, start, length


def lr_at(epoch: float, cfg: ScheduleConfig) -> float:
    """The learning rate at a fractional epoch (closed form; see the module docstring)."""
    i, start, length = cycle_of(epoch, cfg)
    t = epoch - start
    peak = cfg.max_lr * cfg.gamma**i
    if t < cfg.T_up:
        return cfg.min_lr + (peak - cfg.min_lr) * t / cfg.T_up
    progress = (t - cfg.T_up) / (length - cfg.T_up)  # 0 at warm-up end, 1 at cycle end
    return cfg.min_lr + (peak - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cycle_ends(cfg: ScheduleConfig, up_to: float) -> list[float]:
    """Epochs at which cycles end, up to and including ``up_to`` (10, 30, 70, 150, ...)."""
    cfg = _restarts(cfg)
    ends, end, length = [], float(cfg.T_0), float(cfg.T_0)
    while end <= up_to + 1e-9:
        ends.append(end)
        length *= cfg.T_mult
        end += length
    return ends


class WarmupCosineRestarts(LRScheduler):
    """Per-iteration scheduler that sets every group's lr to ``lr_at(step / steps_per_epoch)``.

    A group may carry ``lr_scale`` (default 1) to get a fixed fraction of the schedule.
    Resumable: ``state_dict``/``load_state_dict`` hold the step count and the config.
    Call ``scheduler.step()`` after every ``optimizer.step()``. A one-cycle config needs the
    run's ``epochs`` (see :func:`for_run`).
    """

    def __init__(self, optimizer: Optimizer, cfg: ScheduleConfig, steps_per_epoch: int, last_epoch: int = -1,
                 epochs: float | None = None) -> None:
        if steps_per_epoch < 1:
            raise ConfigError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.cfg = _restarts(for_run(cfg, epochs) if epochs is not None else cfg)
        self.steps_per_epoch = int(steps_per_epoch)
        super().__init__(optimizer, last_epoch)

    @property
    def epoch(self) -> float:
        """Fractional epoch of the current step."""
        return max(self.last_epoch, 0) / self.steps_per_epoch

    def _lrs(self) -> list[float]:
        lr = lr_at(self.epoch, self.cfg)
        return [lr * group.get("lr_scale", 1.0) for group in self.optimizer.param_groups]

    def get_lr(self) -> list[float]:
        return self._lrs()

    def state_dict(self) -> dict:
        # The config as a plain dict, so checkpoints load with torch.load(weights_only=True).
        state = super().state_dict()
        state["cfg"] = asdict(self.cfg)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        cfg = state.pop("cfg", None)
        super().load_state_dict(state)
        if cfg is not None:
            self.cfg = ScheduleConfig(**cfg) if isinstance(cfg, dict) else cfg

    def _get_closed_form_lr(self) -> list[float]:
        return self._lrs()


def plot_schedule(cfg: ScheduleConfig, epochs: float, ax=None, steps_per_epoch: int = 50):
    """Plot lr against epoch, with dashed lines at cycle ends and dots at warm-up ends."""
    import matplotlib.pyplot as plt

    one_cycle = cfg.cycle == "one"
    cfg = for_run(cfg, epochs)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    n = int(round(epochs * steps_per_epoch))
    xs = [k / steps_per_epoch for k in range(n + 1)]
    ax.plot(xs, [lr_at(x, cfg) for x in xs], lw=1.2, label="lr")
    ends = cycle_ends(cfg, epochs)
    for e in ends:
        ax.axvline(e, color="grey", ls="--", lw=0.8)
    starts = [0.0] + [e for e in ends if e < epochs]
    peaks = [s + cfg.T_up for s in starts if s + cfg.T_up <= epochs]
    ax.plot(peaks, [lr_at(p, cfg) for p in peaks], "o", ms=3, label="warm-up end")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title(
        f"warm-up {cfg.T_up:g} + one cosine cycle over the run's {cfg.T_0:g} epochs" if one_cycle else
        f"warm-up {cfg.T_up:g} + cosine restarts (T_0={cfg.T_0:g}, T_mult={cfg.T_mult:g}); "
        f"cycle ends: {', '.join(f'{e:g}' for e in ends)}"
    )
    ax.legend(loc="upper right")
    return ax
