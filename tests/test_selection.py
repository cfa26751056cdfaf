"""Issue 17.2: a label-free figure never rests on a checkpoint chosen on the test labels.

Where a run saved no ``val_loss`` checkpoint, its final epoch is used and labelled ``last``; the
study's ``dev_auc_pauc`` checkpoint never stands in under another rule's name, in the runs
(E2-style classifiers, E5 fine-tuning), the claims or the summary rows.
"""
from __future__ import annotations

from types import SimpleNamespace as NS

import pandas as pd
import pytest

from asdlib.classify.train import BestCheckpoint, TrainResult
from asdlib.study import experiments, summary
from asdlib.study.registry import EXPERIMENTS, LAST


def _run(out: str, best: dict[str, int], epochs: int = 5) -> TrainResult:
    """A finished run whose ``best`` holds the given rules' epochs (no weights needed here)."""
    return TrainResult(out_dir=out, last_path=f"{out}/last.pt", epochs_run=epochs,
                       history=pd.DataFrame({"epoch": range(1, epochs + 1)}),
                       best={k: BestCheckpoint(k, f"{out}/best_{k}.pt", e, 0.0, {}) for k, e in best.items()})


@pytest.fixture()
def record(monkeypatch):
    """Replace scoring by a record of which checkpoint was evaluated under which label."""
    seen = []

    def fake_evaluate_checkpoint(study, best, experiment, selection, types=(), scorer="softmax", scores=None):
        seen.append((tuple(types), selection, best.path, best.epoch))
        tidy = pd.DataFrame({"experiment": [experiment], "selection": [selection], "path": [best.path]})
        return tidy, pd.DataFrame({"file": [best.path], "score": [0.0]})

    monkeypatch.setattr(experiments, "evaluate_checkpoint", fake_evaluate_checkpoint)
    return seen


def test_select_checkpoint_uses_the_final_epoch_labelled_last_not_the_test_label_one() -> None:
    r = _run("r", {"dev_auc_pauc": 3})
    label, best = experiments.select_checkpoint(r, "val_loss")
    assert (label, best.path, best.epoch) == (LAST, "r/last.pt", 5)
    assert experiments.select_checkpoint(_run("r", {"val_loss": 2}), "val_loss")[1].path == "r/best_val_loss.pt"
    with pytest.raises(ValueError, match="no 'dev_auc_pauc' checkpoint"):
        experiments.select_checkpoint(_run("r", {"val_loss": 2}), "dev_auc_pauc")


def test_a_classifier_without_val_loss_is_scored_at_its_final_epoch(record) -> None:
    tidy, scores = experiments.evaluate_classifier(NS(seed=0), _run("r", {"dev_auc_pauc": 3}), "x")
    assert set(scores) == {"dev_auc_pauc", LAST}
    assert dict(zip(tidy["selection"], tidy["path"])) == {"dev_auc_pauc": "r/best_dev_auc_pauc.pt", LAST: "r/last.pt"}


def test_transfer_without_val_loss_never_relabels_the_test_label_checkpoint(record, monkeypatch) -> None:
    """E5: a fine-tuning run with only a dev_auc_pauc checkpoint gives 'last' rows for the label-free rule."""
    monkeypatch.setattr(experiments, "transfer_classifier",
                        lambda study, source, t, overrides, seed: _run(f"ft_{t}", {"dev_auc_pauc": 2}, epochs=4))
    integrated = NS(runs={0: {"integrated": _run("e2", {"dev_auc_pauc": 3, "val_loss": 5})}})
    res = experiments.run_transfer(NS(seed=0), integrated, save=False)
    assert set(res.scores) == {"dev_auc_pauc", LAST}
    for types, label, path, epoch in record:
        assert (path, epoch) == ((f"ft_{types[0]}/best_dev_auc_pauc.pt", 2) if label == "dev_auc_pauc"
                                 else (f"ft_{types[0]}/last.pt", 4))
    assert "val_loss" not in set(res.tidy["selection"])


def test_claims_never_fall_back_to_the_test_label_scores(tmp_path) -> None:
    (tmp_path / "scores").mkdir()
    for name in ("ls0__dev_auc_pauc", "integrated__val_loss", "integrated__last", "softmax__last"):
        pd.DataFrame({"dataset": ["dev"], "file": [name]}).to_csv(tmp_path / "scores" / f"{name}.csv", index=False)
    study = NS(results_dir=tmp_path, load_scores=lambda n: pd.read_csv(tmp_path / "scores" / f"{n}.csv"))
    assert summary.claim_selection(study, "ls0") is None  # not run, rather than the study's rule
    assert summary.claim_selection(study, "softmax") == LAST
    scores, rules = summary.load_claim_scores(study)
    assert scores["ls0"] is None and "ls0" not in rules
    assert rules["integrated"] == "val_loss+last"
    assert set(scores["integrated"]["file"]) == {"integrated__val_loss", "integrated__last"}


def test_summary_rows_use_the_registry_rule_only() -> None:
    assert EXPERIMENTS["improved"].selection == "val_loss"  # asdlib's recipe: its figure is label-free
    tidy = pd.DataFrame({"experiment": ["improved", "improved", "integrated", "ls0"],
                         "selection": ["dev_auc_pauc", "val_loss", "dev_auc_pauc", "val_loss"]})
    assert summary.selection_for(tidy, "improved") == "val_loss"
    assert summary.selection_for(tidy, "integrated") == "dev_auc_pauc"
    with pytest.raises(ValueError, match="no rows selected by its rule 'dev_auc_pauc'"):
        summary.selection_for(tidy, "ls0")
    only_dev = pd.DataFrame({"experiment": ["improved"], "selection": ["dev_auc_pauc"]})
    with pytest.raises(ValueError, match="does not fall back"):
        summary.selection_for(only_dev, "improved")
    assert summary.selection_for(pd.DataFrame({"experiment": ["improved"], "selection": [LAST]}), "improved") == LAST
