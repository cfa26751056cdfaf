"""A machine-speed figure: a short, fixed CPU benchmark printed beside every timing.

Timings of the test suite and of ``asdlib reproduce`` differ about 2x between machines (and
more on a shared one), so each run measures the machine first and records the figure next to
its timings (``results/timings.csv``, ``run_info.json``, the site's header, the test session's
summary). A reader then tells a slow machine from a slow change: divide a time by the
machine's figure relative to the README's.

What it measures (fixed work, seeded, on the CPU with ``threads`` torch threads, 1 by default):

* ``train_steps_per_s``: training steps (forward, cross-entropy, backward, SGD step) of the
  smoke profile's IR-ResNet (1/8 width, one block per stage, 128-d embedding, 41 classes) on
  a batch of 16 log-mels of 128 mels x 64 frames: the kind of step that dominates the study.
* ``feature_clips_per_s``: log-mel features (the library's :class:`~asdlib.features.logmel.LogMel`,
  128 mels, n_fft 1024, hop 512) of 2-s clips at 16 kHz, 8 clips per call.

Each part first runs a warm-up, then as many repetitions as fit its share of ``seconds``
(at least ``min_reps``), and reports the rate. ``score`` is their geometric mean, one number
per machine (higher is faster).
"""
from __future__ import annotations

import math
import platform
import time
from dataclasses import asdict, dataclass
from typing import Any

SPEED_FIELDS = ("train_steps_per_s", "feature_clips_per_s", "score", "threads", "seconds")


@dataclass(frozen=True)
class SpeedConfig:
    """The fixed benchmark; change it and figures stop being comparable (its :attr:`version` says so)."""

    batch_size: int = 16
    n_mels: int = 128
    frames: int = 64
    num_classes: int = 41
    clip_seconds: float = 2.0
    clips_per_call: int = 8
    threads: int = 1
    seconds: float = 3.0  # measured, split between the two parts; with warm-up about 5 s unloaded
    min_reps: int = 3
    seed: int = 0
    version: int = 1


@dataclass(frozen=True)
class SpeedResult:
    train_steps_per_s: float
    feature_clips_per_s: float
    score: float  # geometric mean of the two rates
    threads: int
    seconds: float  # wall time of the whole benchmark
    cpu: str
    version: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One line for logs and the test session's header."""
        return (f"machine speed: {self.score:.2f} (train {self.train_steps_per_s:.2f} steps/s, "
                f"features {self.feature_clips_per_s:.1f} clips/s; {self.threads} thread(s), "
                f"asdlib.study.speed v{self.version}, {self.seconds:.1f} s)")


def _rate(fn, budget: float, min_reps: int) -> float:
    fn()  # warm-up: allocator, kernels chosen
    reps, start = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - start < budget:
        fn()
        reps += 1
    return reps / (time.perf_counter() - start)


def measure_speed(cfg: SpeedConfig = SpeedConfig()) -> SpeedResult:
    """Run the benchmark and return its rates (torch's thread count is restored afterwards)."""
    import torch

    from ..features.logmel import FeatureConfig, LogMel
    from ..models.iresnet import iresnet50

    start = time.perf_counter()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        g = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        model = iresnet50(cfg.num_classes, width=0.125, depths=(1, 1, 1, 1), embedding_dim=128)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        x = torch.randn(cfg.batch_size, 1, cfg.n_mels, cfg.frames, generator=g)  # (B, 1, M, T)
        y = torch.randint(0, cfg.num_classes, (cfg.batch_size,), generator=g)

        def train_step() -> None:
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()

        logmel = LogMel(FeatureConfig(n_mels=cfg.n_mels))
        wave = 0.1 * torch.randn(cfg.clips_per_call, int(cfg.clip_seconds * 16000), generator=g)  # (B, S)

        def features() -> None:
            with torch.inference_mode():
                logmel(wave)

        half = cfg.seconds / 2
        steps = _rate(train_step, half, cfg.min_reps)
        clips = _rate(features, half, cfg.min_reps) * cfg.clips_per_call
    finally:
        torch.set_num_threads(old_threads)
    return SpeedResult(train_steps_per_s=round(steps, 3), feature_clips_per_s=round(clips, 2),
                       score=round(math.sqrt(steps * clips), 3), threads=cfg.threads,
                       seconds=round(time.perf_counter() - start, 2),
                       cpu=platform.processor() or platform.machine() or "unknown", version=cfg.version)


_MEASURED: list[SpeedResult] = []


def machine_speed() -> SpeedResult:
    """The figure of this process's machine, measured on the first call and reused afterwards.

    One process (``asdlib reproduce``, a pytest session) measures once, however many runs it
    starts: the test session measures at its start and every CI-size run in it reuses that.
    """
    if not _MEASURED:
        _MEASURED.append(measure_speed())
    return _MEASURED[0]


def main() -> None:  # python -m asdlib.study.speed
    print(measure_speed().line())


if __name__ == "__main__":
    main()
