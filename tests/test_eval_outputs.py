"""Final scoring reuses the dev-test outputs the training loop computed for the same weights.

The training loop keeps each eval epoch's outputs beside the best checkpoints it writes
(``best_<criterion>.outputs.npz``); :func:`asdlib.study.experiments.embed` reads them for the
labelled dev test clips instead of running the model again. The scores and the tables must be
exactly those of running the model again, and the kept file must only serve its own epoch's weights.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pandas.testing import assert_frame_equal

from asdlib.classify import inference
from asdlib.classify.evaluate import eval_outputs_path, load_eval_outputs
from asdlib.core.machines import MACHINE_TYPES
from asdlib.data.synth import SynthProfile, generate_dataset
from asdlib.study import experiments
from asdlib.study.context import Study
from asdlib.study.profiles import PROFILES

TINY = PROFILES["ci"].__class__(
    name="tiny", synth="ci",
    classifier=PROFILES["ci"].classifier | {"epochs": 2, "eval_every": 1, "schedule.T_0": 2, "schedule.T_up": 1},
    finetune=PROFILES["ci"].finetune, autoencoder={"epochs": 1}, wavenet={"epochs": 1},
    wavenet_model=PROFILES["ci"].wavenet_model, n_bootstrap=10, n_seeds=1)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    base = tmp_path_factory.mktemp("eval_outputs")
    generate_dataset(base / "data", SynthProfile("tiny", clip_seconds=1.0, n_train=6, n_test_normal=2,
                                                 n_test_anomaly=2), progress=False)
    return Study.open(data_root=str(base / "data"), profile=TINY, device="cpu", results_dir=str(base / "results"),
                      work_dir=str(base / "work"), progress=False)


def test_final_scores_with_kept_outputs_equal_recomputed_ones(study, monkeypatch):
    result = experiments.train_classifier(study, "integrated", MACHINE_TYPES)
    kept = sorted(Path(result.out_dir).glob("best_*.outputs.npz"))
    assert [p.name for p in kept] == [f"best_{c}.outputs.npz" for c in sorted(result.best)]
    check_kept_outputs_serve_only_their_epoch_and_clips(study, result)

    embedded_rows = []
    real_embed = inference.embed

    def counting_embed(clf, features, **kw):
        embedded_rows.append(len(features))
        return real_embed(clf, features, **kw)

    monkeypatch.setattr(inference, "embed", counting_embed)
    tidy_kept, scores_kept = experiments.evaluate_classifier(study, result, "integrated")
    rows_kept = sum(embedded_rows)
    for p in kept:
        p.unlink()
    embedded_rows.clear()
    tidy_again, scores_again = experiments.evaluate_classifier(study, result, "integrated")

    index = study.features.index
    n_dev = len(experiments.rows(index, MACHINE_TYPES, "test", "dev", labelled=True))
    n_epochs = len({b.epoch for b in result.best.values()})
    assert n_dev > 0 and sum(embedded_rows) - rows_kept == n_dev * n_epochs  # the dev clips were not run again
    assert scores_kept.keys() == scores_again.keys()
    for sel in scores_kept:
        assert_frame_equal(scores_kept[sel], scores_again[sel], check_exact=True)
    assert_frame_equal(tidy_kept, tidy_again, check_exact=True)


def check_kept_outputs_serve_only_their_epoch_and_clips(study, result):
    best = result.best["dev_auc_pauc"]
    index = study.features.index
    dev = index.iloc[experiments.rows(index, MACHINE_TYPES, "test", "dev", labelled=True)].reset_index(drop=True)
    out = load_eval_outputs(best.path, best.epoch, "dev", dev)
    assert eval_outputs_path(best.path).exists()
    assert out is not None and out.logits.shape[0] == len(dev) and np.isfinite(out.emb).all()
    assert load_eval_outputs(best.path, best.epoch + 1, "dev", dev) is None  # other weights
    assert load_eval_outputs(best.path, best.epoch, "dev", dev.iloc[::-1].reset_index(drop=True)) is None  # order
    assert load_eval_outputs(best.path, best.epoch, "eval", dev) is None  # another set
