"""Typed configs: nested sections, dotted overrides, generated CLI flags, the experiment registry."""
from __future__ import annotations

import argparse

import pytest

from asdlib.classify.config import TrainConfig
from asdlib.classify.losses import LOSS_KINDS
from asdlib.core.config import add_arguments, flatten, overrides_from_args
from asdlib.core.errors import ConfigError
from asdlib.report.reference import REFERENCE_EXPERIMENTS
from asdlib.study.registry import EXPERIMENTS, get_experiment


def test_dotted_overrides_reach_the_nested_sections():
    cfg = TrainConfig().replace({"loss.kind": "cosface", "schedule.max_lr": 1e-3}, epochs=5)
    assert (cfg.loss.kind, cfg.schedule.max_lr, cfg.epochs) == ("cosface", 1e-3, 5)
    assert cfg.loss.margin == TrainConfig().loss.margin  # untouched settings keep their defaults
    assert TrainConfig().loss.kind == "arcface"  # the original is not modified


def test_unknown_setting_is_named():
    with pytest.raises(ConfigError, match="loss.marign"):
        TrainConfig().replace({"loss.marign": 0.1})
    with pytest.raises(ConfigError, match="unknown loss"):
        TrainConfig().replace({"loss.kind": "sphereface"})


def test_round_trip_through_the_checkpoint_dict():
    cfg = TrainConfig().replace({"loss.kind": "focal", "depths": (1, 2, 3, 4), "crop_frames": 64})
    d = cfg.to_dict()
    assert isinstance(d["loss"], dict) and d["depths"] == [1, 2, 3, 4]
    assert TrainConfig.from_dict(d) == cfg
    assert TrainConfig.from_dict({**d, "added_by_a_newer_version": 1}) == cfg  # checkpoints are lenient


def test_flat_checkpoint_layout_still_loads():
    old = {k: v for k, v in flatten(TrainConfig()).items() if not k.startswith(("loss.", "schedule."))}
    old |= {"loss": "cosface", "margin": 0.2, "max_lr": 1e-3, "T_0": 4}
    cfg = TrainConfig.from_dict(old)
    assert (cfg.loss.kind, cfg.loss.margin, cfg.schedule.max_lr, cfg.schedule.T_0) == ("cosface", 0.2, 1e-3, 4)


def test_generated_flags_cover_every_setting_and_parse_types():
    parser = argparse.ArgumentParser()
    add_arguments(parser, TrainConfig)
    leaves = set(flatten(TrainConfig()))
    flags = {a.dest[4:] for a in parser._actions if a.dest.startswith("cfg:")}
    assert flags == leaves
    args = parser.parse_args(["--loss-kind", "softmax", "--schedule-max-lr", "3e-3", "--depths", "1,1,1,1",
                              "--crop-frames", "none", "--no-amp"])
    over = overrides_from_args(args)
    assert over == {"loss.kind": "softmax", "schedule.max_lr": 3e-3, "depths": (1, 1, 1, 1), "crop_frames": None,
                    "amp": False}
    assert overrides_from_args(parser.parse_args([])) == {}  # defaults stay the dataclass's


def test_registry_is_consistent():
    for name, exp in EXPERIMENTS.items():
        assert exp.name == name
        assert exp.reference is None or exp.reference in REFERENCE_EXPERIMENTS
        if exp.kind == "classifier":
            assert exp.groups, name
            TrainConfig().replace(exp.overrides)  # every override names a real setting
    assert {e.overrides.get("loss.kind", "arcface") for e in EXPERIMENTS.values() if e.kind == "classifier"} \
        == set(LOSS_KINDS)
    with pytest.raises(ConfigError, match="registered"):
        get_experiment("nope")


def test_summary_reads_the_registry():
    """An experiment added to the registry appears in notebook 09's tables without other edits."""
    import pandas as pd

    from asdlib.study import summary

    rows = [("newloss", ds, "fan", mid, m, 0, 0.7, "dev_auc_pauc") for ds in ("dev", "eval")
            for mid in ("00", "02") for m in ("AUC", "pAUC")]
    tidy = pd.DataFrame(rows, columns=["experiment", "dataset", "machine_type", "machine_id", "metric", "seed",
                                       "value", "selection"])
    assert summary.means_table(tidy).empty
    from asdlib.study import registry

    extra = registry.Experiment("newloss", "E4 a new loss", overrides={"loss.kind": "cosface"})
    original = registry.EXPERIMENTS
    try:
        registry.EXPERIMENTS = registry._registry(*original.values(), extra)
        summary.EXPERIMENTS = registry.EXPERIMENTS
        assert list(summary.means_table(tidy).index) == ["E4 a new loss"]
    finally:
        registry.EXPERIMENTS = summary.EXPERIMENTS = original
