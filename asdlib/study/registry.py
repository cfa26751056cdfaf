"""The study's experiments as data: one registry line per experiment.

Each :class:`Experiment` says what it trains (config overrides on top of the profile's, and
the groups of machine types that get one model each), how it is labelled in tables, and
which of the study's reference figures it is compared with. The notebooks run experiments
by name (:func:`asdlib.study.experiments.run_experiment`), notebook 09's summary walks the
registry, and ``asdlib train --experiment NAME`` trains with an experiment's settings. An
experiment added here therefore appears in every table without further edits.

Adding a loss, for example: write it in :mod:`asdlib.classify.losses` (add its name to
``LOSS_KINDS``), then add one line here, e.g.
``Experiment("mymargin", "E4 my margin", overrides={"loss.kind": "mymargin"})``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from ..core.errors import ConfigError
from ..core.machines import MACHINE_TYPES

INDIVIDUAL = MappingProxyType({f"individual_{t}": (t,) for t in MACHINE_TYPES})  # E1: one model per type
INTEGRATED = MappingProxyType({"integrated": tuple(MACHINE_TYPES)})  # E2: one model for all 41 IDs

KINDS = ("classifier", "transfer", "reconstruction")
LABEL_FREE = "val_loss"  # the checkpoint rule that never sees test labels
LAST = "last"  # the final epoch: the label-free stand-in where a run saved no val_loss checkpoint


@dataclass(frozen=True)
class Experiment:
    """One experiment of the study.

    ``overrides``: dotted :class:`~asdlib.classify.config.TrainConfig` settings applied over
    the profile's (``{"loss.kind": "cosface"}``). ``groups``: run name -> machine types, one
    model per group (:data:`INDIVIDUAL` or :data:`INTEGRATED`). ``reference``: key of the
    study's figures in :mod:`asdlib.report.reference` (``None``: the study has none).
    ``selection``: the checkpoint rule of the experiment's row in the summary tables
    (``final`` for models without checkpoint selection): the study's ``dev_auc_pauc`` for the
    study's experiments, the label-free ``val_loss`` for asdlib's own recipe (whose figure is
    not the study's and must not rest on the test labels).
    """

    name: str
    label: str
    kind: str = "classifier"
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: INTEGRATED)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    reference: str | None = None
    selection: str = "dev_auc_pauc"
    notebook: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"experiment {self.name}: kind must be one of {KINDS}, got {self.kind!r}")


# asdlib's recipe for few, unevenly many clips per ID (found on the real ToyCar developers' half,
# benchmarks/bench_real.py): the E2 model with an ArcFace margin of 0.5, random 64-frame crops,
# class-balanced sampling, per-mel input standardisation and one warm-up + cosine cycle over the
# profile's epochs at max_lr 1e-3. Only the recipe; sizes (width, epochs, batch) stay the profile's.
IMPROVED_RECIPE = MappingProxyType({
    "loss.margin": 0.5, "crop_frames": 64, "sampling": "balanced", "input_norm": "per_mel",
    "schedule.cycle": "one", "schedule.max_lr": 1e-3,
})


def _registry(*experiments: Experiment) -> Mapping[str, Experiment]:
    return MappingProxyType({e.name: e for e in experiments})


EXPERIMENTS: Mapping[str, Experiment] = _registry(
    Experiment("individual", "E1 six individual models", groups=INDIVIDUAL, reference="individual",
               notebook="03_individual_vs_integrated"),
    Experiment("integrated", "E2 integrated model (ArcFace, LS 0.05)", reference="integrated",
               notebook="03_individual_vs_integrated"),
    Experiment("ls0", "E3 label smoothing 0.0", overrides={"loss.label_smoothing": 0.0}, reference="ls0",
               notebook="04_loss_ablation"),
    Experiment("softmax", "E4 softmax, bottleneck ResNet50", overrides={"model": "resnet50", "loss.kind": "softmax"},
               reference="softmax", notebook="04_loss_ablation"),
    Experiment("cosface", "E4 CosFace", overrides={"loss.kind": "cosface"}, reference="cosface",
               notebook="04_loss_ablation"),
    Experiment("focal", "E4 focal loss", overrides={"loss.kind": "focal"}, reference="focal",
               notebook="04_loss_ablation"),
    Experiment("improved", "ID classifier, improved recipe (asdlib)", overrides=IMPROVED_RECIPE,
               selection=LABEL_FREE, notebook="04_loss_ablation"),
    Experiment("transfer", "E5 transfer learning", kind="transfer", reference="transfer",
               notebook="05_transfer_learning"),
    Experiment("autoencoder", "DCASE2020 baseline autoencoder", kind="reconstruction", groups={},
               reference="baseline_ae", selection="final", notebook="08_reconstruction"),
    Experiment("wavenet", "WaveNet next-frame prediction", kind="reconstruction", groups={},
               selection="final", notebook="08_reconstruction"),
)


def get_experiment(name: str) -> Experiment:
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ConfigError(f"unknown experiment {name!r}; registered: {', '.join(EXPERIMENTS)}") from None
