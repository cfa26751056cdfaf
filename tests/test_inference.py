"""The one inference path: embed (crop and batch size from the run's config), fit_and_score,
and the training-time AUC/pAUC going through the metrics of the tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import C, dev_set, tiny_cfg, tones  # the trainer tests' toy data

from asdlib.classify import inference
from asdlib.classify.checkpoint import save_checkpoint
from asdlib.classify.config import build_model
from asdlib.classify.evaluate import EvalSet, summarise
from asdlib.classify.inference import Classifier, Outputs, embed, fit_and_score, model_outputs, score_outputs
from asdlib.classify.scorers import make_scorer
from asdlib.classify.train import fit
from asdlib.core.errors import AsdlibError
from asdlib.report.metrics import MEAN_ROW, evaluate, overall_means, type_means


@pytest.fixture(scope="module")
def cropped_checkpoint(tmp_path_factory):
    """An untrained model whose config says crop_frames=16, batch_size=4, saved as a checkpoint."""
    torch.manual_seed(0)
    cfg = tiny_cfg(crop_frames=16, batch_size=4)
    model = build_model(cfg, C).eval()
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, {"model": model.state_dict(), "config": cfg.to_dict(),
                           "class_names": [f"toy/{c:02d}" for c in range(C)]})
    return path, model


def test_embed_uses_the_checkpoints_crop_and_batch_size(cropped_checkpoint, monkeypatch):
    path, model = cropped_checkpoint
    x, _ = tones(2, seed=6)  # (6, 16, 24): windows start at 0 and 8
    out = embed(path, x)
    with torch.no_grad():
        parts = [model_outputs(model, torch.as_tensor(x[:, :, s : s + 16]).unsqueeze(1)) for s in (0, 8)]
    np.testing.assert_allclose(out.logits, ((parts[0][0] + parts[1][0]) / 2).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.emb, ((parts[0][1] + parts[1][1]) / 2).numpy(), rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # not what the whole clips give
        assert not np.allclose(out.logits, model(torch.as_tensor(x).unsqueeze(1)).numpy(), atol=1e-4)

    seen = []
    real = inference.extract
    monkeypatch.setattr(inference, "extract", lambda m, f, bs, dev, crop, **kw: seen.append((bs, crop)) or real(
        m, f, bs, dev, crop, **kw))
    clf = Classifier.load(path)
    assert clf.class_names == ["toy/00", "toy/01", "toy/02"]
    again = embed(clf, x)
    assert seen == [(4, 16)]
    np.testing.assert_array_equal(again.logits, out.logits)
    clf.batch_size = 5  # an explicit override (a memory knob) is the only other value used
    embed(clf, x)
    assert seen[-1] == (5, 16)


@pytest.mark.parametrize("name", ["softmax", "knn", "mahalanobis"])
def test_fit_and_score_equals_the_separate_steps(cropped_checkpoint, name):
    path, model = cropped_checkpoint
    clf = Classifier.load(path)
    x, y = tones(4, seed=7)
    xf, yf = tones(4, seed=8)
    got = fit_and_score(make_scorer(name), clf, x, y, xf, yf)
    logits, emb = inference.extract(model, x, 4, "cpu", 16)
    _, fit_emb = inference.extract(model, xf, 4, "cpu", 16)
    manual = make_scorer(name)
    if manual.needs_fit:
        manual.fit(fit_emb, yf)
    np.testing.assert_array_equal(got, manual.score(emb, logits, y))
    # a scorer that fits needs fit clips: it is never fitted on the clips it scores
    if manual.needs_fit:
        with pytest.raises(AsdlibError, match="fit_clips"):
            fit_and_score(make_scorer(name), clf, x, y)
    else:
        np.testing.assert_array_equal(fit_and_score(make_scorer(name), clf, x, y), got)


def test_score_outputs_refuses_a_fitting_scorer_without_fit_embeddings():
    out = Outputs(np.zeros((2, C), np.float32), np.ones((2, 4), np.float32))
    with pytest.raises(AsdlibError, match="'knn' fits on normal training embeddings"):
        score_outputs(make_scorer("knn"), out, np.array([0, 1]))
    assert score_outputs(make_scorer("softmax"), out, np.array([0, 1])).shape == (2,)


def _old_training_summary(per_id: pd.DataFrame) -> dict[str, float]:
    """The training-time criterion as it was computed before it went through report.metrics."""
    by_type = per_id.groupby(["metric", "machine_type"])["value"].mean().groupby("metric").mean()
    return {"auc": float(by_type["AUC"]), "pauc": float(by_type["pAUC"])}


def _scores_frame(es: EvalSet, scores, name: str) -> pd.DataFrame:
    return es.meta[["machine_type", "machine_id", "label"]].assign(dataset=name, score=scores)


@pytest.mark.parametrize("seed", range(4))
def test_training_summary_is_the_report_type_mean(seed):
    rng = np.random.default_rng(seed)
    es = dev_set()
    meta = pd.concat([es.meta, es.meta.assign(machine_type="pump")], ignore_index=True)  # two types
    es = EvalSet(np.zeros((len(meta), 1, 1)), meta)
    scores = rng.normal(size=len(meta)) + 0.7 * meta["label"].to_numpy()
    per_id = es.per_id(scores, "dev")
    got = summarise(per_id)
    overall = overall_means(type_means(evaluate(_scores_frame(es, scores, "dev"))))
    mean = overall[overall["row"] == MEAN_ROW].set_index("metric")["value"]
    assert got == {"auc": mean["AUC"], "pauc": mean["pAUC"]}  # exactly, not approximately
    assert got == _old_training_summary(per_id)


def test_history_auc_is_the_report_type_mean_of_the_checkpoints_scores(tmp_path):
    """End to end: the dev_auc/dev_pauc a run logs (and selects checkpoints by) are what the
    tables' metrics give for the scores of the saved checkpoint."""
    x, y = tones(8, seed=9)
    es = dev_set()
    res = fit(x, y, tiny_cfg(epochs=2, crop_frames=16), tmp_path, eval_sets={"dev": es},
              class_names=[("toy", f"{c:02d}") for c in range(C)], progress=False)
    scores = fit_and_score(make_scorer("softmax"), Classifier.load(res.last_path), es.features,
                           es.meta["class"].to_numpy())
    overall = overall_means(type_means(evaluate(_scores_frame(es, scores, "dev"))))
    mean = overall[overall["row"] == MEAN_ROW].set_index("metric")["value"]
    last = res.history.iloc[-1]
    assert (last["dev_auc"], last["dev_pauc"]) == (mean["AUC"], mean["pAUC"])


def test_evalset_drops_single_class_ids_up_front_and_says_so():
    es = dev_set()
    meta = es.meta.copy()
    only_normal = (meta["machine_id"] == "01") & (meta["label"] == 1)
    meta.loc[only_normal, "label"] = -1  # toy/01 keeps normal clips only
    with pytest.warns(UserWarning, match="toy/01 have clips of one class only"):
        kept = EvalSet(es.features, meta)
    assert kept.dropped_ids == ("toy/01",)
    scores = np.random.default_rng(0).normal(size=len(meta)) + meta["label"].to_numpy()
    per_id = kept.per_id(scores, "dev")
    assert set(per_id["machine_id"]) == {"00", "02"}
    # the same numbers as the evaluator gives on the other IDs; it refuses the dropped one
    frame = _scores_frame(kept, scores, "dev")
    pd.testing.assert_frame_equal(per_id, evaluate(frame[frame["machine_id"] != "01"]))
    with pytest.raises(ValueError, match="toy id 01"):
        evaluate(frame)
    # a set with no evaluable ID gives NaN, which no selection criterion takes
    meta.loc[meta["label"] == 1, "label"] = -1
    with pytest.warns(UserWarning):
        none = EvalSet(es.features, meta)
    assert len(none.dropped_ids) == C
    assert all(np.isnan(v) for v in summarise(none.per_id(scores, "dev")).values())
