"""Study profiles: how big the data and models of one re-run are.

- ``ci``: the smallest that still exercises every notebook (tests; a minute or two).
- ``smoke``: the README's ``make reproduce``: the embedded synthetic dataset and small
  networks on the same code path, the whole sequence in minutes on a 2-core CPU.
- ``real``: the real DCASE2020 subset (``asdlib download --subset small``: 30 training
  clips per ID, 10 normal + 10 anomalous test clips) with the smoke profile's small networks;
  10-s clips, so the classifiers train on 64-frame crops and score with sliding windows.
- ``full``: the study's settings (ResNet50-size networks, 2048-d embeddings, batch 64,
  max_lr 2e-4, T_up 2, T_0 10, T_mult 2, 70 epochs = the end of the third cycle), meant for
  the real DCASE2020 data on a CUDA device.

Only overrides are stored here; everything else is the library's defaults (the study's).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.errors import ConfigError


@dataclass(frozen=True)
class StudyProfile:
    name: str
    synth: str | dict[str, Any]  # a profile name of asdlib.data.synth.PROFILES, or SynthProfile fields
    classifier: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides (dotted keys)
    finetune: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides for transfer learning
    autoencoder: dict[str, Any] = field(default_factory=dict)  # ReconConfig overrides
    wavenet: dict[str, Any] = field(default_factory=dict)  # ReconConfig overrides
    wavenet_model: dict[str, Any] = field(default_factory=dict)  # WaveNetConfig overrides
    tsne: dict[str, Any] = field(default_factory=dict)
    # FeatureConfig overrides, e.g. {"duration_s": 1.5}; none: the data's known clip length
    # (10 s for the real data, a synthetic root's own), see asdlib.features.logmel
    features: dict[str, Any] = field(default_factory=dict)
    n_bootstrap: int = 1000
    feature_batch_size: int = 64
    n_seeds: int = 1  # every experiment runs for seeds seed, seed + 1, ..., seed + n_seeds - 1
    needs_data_root: bool = False  # True: runs on real recordings given as --data-root (no synthetic default)
    description: str = ""


# A small network on the same code path as the full one: 1/8 of the channels, one block per stage.
_SMALL_NET = {"width": 0.125, "depths": (1, 1, 1, 1), "embedding_dim": 128}

PROFILES: dict[str, StudyProfile] = {
    "ci": StudyProfile(
        name="ci",
        synth={"name": "ci", "clip_seconds": 1.0, "n_train": 8, "n_test_normal": 3, "n_test_anomaly": 3},
        classifier=_SMALL_NET | {"width": 0.0625, "embedding_dim": 32, "epochs": 4, "eval_every": 2,
                                 "schedule.T_up": 1, "schedule.T_0": 2, "schedule.T_mult": 1,
                                 "schedule.max_lr": 2e-3},
        finetune={"epochs": 2, "eval_every": 2, "schedule.T_up": 0, "schedule.T_0": 2, "schedule.T_mult": 1,
                  "schedule.max_lr": 1e-2},
        autoencoder={"epochs": 2},
        wavenet={"epochs": 2},
        wavenet_model={"residual_channels": 16, "skip_channels": 16, "dilations": (1, 2, 4)},
        tsne={"perplexity": 5, "n_iter": 250},
        n_bootstrap=100,
        n_seeds=2,
        description="tests only: tiny data, tiny networks, a few epochs",
    ),
    "smoke": StudyProfile(
        name="smoke",
        synth="smoke",
        # batch 16: with 20 clips per ID, batch 64 would give an individual model one step per epoch.
        # 6 epochs = the end of the second cycle (T_0 2, T_mult 2: cycles end at 2 and 6), the study's
        # shape (warm-up, restarts, cycle lengths doubling, the run ending at a cycle's end) scaled
        # down so that 3 seeds of every experiment fit the 15-minute budget (results/timings.csv)
        classifier=_SMALL_NET | {"epochs": 6, "eval_every": 2, "schedule.T_up": 0.5, "schedule.T_0": 2,
                                 "schedule.T_mult": 2, "schedule.max_lr": 2e-3, "batch_size": 16},
        finetune={"epochs": 6, "eval_every": 2, "schedule.T_up": 1, "schedule.T_0": 6, "schedule.T_mult": 1,
                  "schedule.max_lr": 5e-3},
        autoencoder={"epochs": 24},  # the published batch 512; 24 epochs instead of 100 (3 seeds in the time budget)
        wavenet={"epochs": 4},
        wavenet_model={"residual_channels": 32, "skip_channels": 32, "dilations": (1, 2, 4, 8)},
        tsne={"perplexity": 15, "n_iter": 500},
        n_bootstrap=500,
        n_seeds=3,
        description="synthetic data, 1/8-width networks, short schedule: the whole study on a CPU in minutes",
    ),
    "real": StudyProfile(
        name="real",
        synth="smoke",  # unused: the real subset is given as data_root
        # The smoke schedule's shape on 30 clips per ID of 10 s: 64-frame crops, batch 32, evaluation at
        # epochs 3 and 6 (scoring 10-s clips in sliding windows costs as much as an epoch of training).
        classifier=_SMALL_NET | {"epochs": 6, "eval_every": 3, "crop_frames": 64, "batch_size": 32,
                                 "schedule.T_up": 0.5, "schedule.T_0": 2, "schedule.T_mult": 2,
                                 "schedule.max_lr": 2e-3},
        finetune={"epochs": 4, "eval_every": 4, "schedule.T_up": 1, "schedule.T_0": 4, "schedule.T_mult": 1,
                  "schedule.max_lr": 5e-3},
        # a 10-s clip gives 309 frame vectors: 3 epochs of a type's ~120 clips are ~220 steps of batch 512,
        # about as many as the smoke profile's 24 epochs of 2-s clips
        autoencoder={"epochs": 3},
        wavenet={"epochs": 2},
        wavenet_model={"residual_channels": 32, "skip_channels": 32, "dilations": (1, 2, 4, 8)},
        tsne={"perplexity": 15, "n_iter": 500},
        n_bootstrap=500,
        n_seeds=3,
        needs_data_root=True,
        description="the real DCASE2020 subset, 1/8-width networks, short schedule: real recordings on a CPU",
    ),
    "ci_real": StudyProfile(
        name="ci_real",
        synth="ci",  # unused: a (locally served) real-layout subset is given as data_root
        # one epoch of everything: the test checks that every notebook runs on real clips, not what it learns
        classifier=_SMALL_NET | {"width": 0.0625, "embedding_dim": 32, "epochs": 1, "eval_every": 1, "crop_frames": 32,
                                 "batch_size": 8, "schedule.T_up": 0, "schedule.T_0": 1, "schedule.T_mult": 1,
                                 "schedule.max_lr": 2e-3},
        finetune={"epochs": 1, "eval_every": 1, "schedule.T_up": 0, "schedule.T_0": 1, "schedule.T_mult": 1,
                  "schedule.max_lr": 1e-2},
        autoencoder={"epochs": 1},
        wavenet={"epochs": 1},
        wavenet_model={"residual_channels": 16, "skip_channels": 16, "dilations": (1, 2, 4)},
        tsne={"perplexity": 3, "n_iter": 250},
        # the test's subset mixes real 10-s clips with synthetic 1.5-s fill clips: the real ones are
        # cropped to 1.5 s (nothing is padded), so that the tiny networks see short clips
        features={"duration_s": 1.5},
        n_bootstrap=20,
        n_seeds=1,
        needs_data_root=True,
        description="tests only: the real profile's code path (crops, sliding windows) at the ci profile's size",
    ),
    "full": StudyProfile(
        name="full",
        synth="full",
        classifier={},
        finetune={"epochs": 10, "eval_every": 2, "schedule.T_up": 0, "schedule.T_0": 10, "schedule.T_mult": 1,
                  "schedule.max_lr": 1e-3},
        autoencoder={},
        wavenet={},
        tsne={"perplexity": 30, "n_iter": 750},
        n_bootstrap=1000,
        feature_batch_size=128,
        description="the study's settings; real DCASE2020 data on a CUDA device",
    ),
}


def synth_profile(profile: StudyProfile):
    """The :class:`asdlib.data.synth.SynthProfile` of a study profile."""
    from ..data.synth import PROFILES as SYNTH_PROFILES
    from ..data.synth import SynthProfile

    if isinstance(profile.synth, str):
        return SYNTH_PROFILES[profile.synth]
    return SynthProfile(**profile.synth)


def get_profile(name: str | StudyProfile) -> StudyProfile:
    if isinstance(name, StudyProfile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
