"""The 226 real DCASE2023 development clips of ../shared/data/dcase2023-mini: index, features and the
per-domain official metrics on the complete valve test set.

Skipped when that folder is absent (it is not part of the repository). The mini set has no
``attributes_00.csv`` (its README says so), so it is indexed from the names alone.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from asdlib.data.audio import wav_info
from asdlib.data.editions import EDITIONS, feature_seconds, index_edition, min_clip_seconds, summarize_edition
from asdlib.features.cache import build_feature_cache
from asdlib.features.logmel import FeatureConfig, compute_features, num_frames
from asdlib.report.official import evaluate_official, official_scores, write_score_files

MINI = Path(__file__).resolve().parents[2] / "shared/data/dcase2023-mini"
pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not (MINI / "dev_data").is_dir(), reason=f"real DCASE2023 mini set not found at {MINI}"),
]
ED = EDITIONS[2023]


@pytest.fixture(scope="module")
def index():
    return index_edition(MINI, 2023, attributes_csv=False)


def test_index_parses_every_name(index):
    on_disk = sorted(p.name for p in (MINI / "dev_data").rglob("*.wav"))
    # the README's table: 6 types x (2 train + 2 test) + valve (2 train + 200 test) = 226 clips
    assert sorted(index["file"]) == on_disk and len(on_disk) == 226
    assert set(index["machine"]) == set(ED.dev_machines)
    assert (index["dataset"] == "dev").all() and (index["section"] == "00").all()
    assert index["label"].notna().all() and index["domain"].notna().all()
    assert (index.loc[index["split"] == "train", "label"] == "normal").all()
    assert all(isinstance(a, dict) and a for a in index["attributes"])  # every dev name carries attributes
    counts = summarize_edition(index)
    valve = counts[(counts.machine == "valve") & (counts.split == "test")].set_index(["domain", "label"])["n"]
    assert valve.to_dict() == {(d, lab): 50 for d in ("source", "target") for lab in ("anomaly", "normal")}
    with pytest.raises(Exception, match="attributes_00.csv: attributes file missing"):
        index_edition(MINI, 2023)


def test_clip_lengths_match_the_edition_table(index):
    for machine, g in index.groupby("machine"):
        for path in g["path"].head(3):
            info = wav_info(path)
            assert (info.sample_rate, info.channels) == (16000, 1)
            assert info.duration_s == pytest.approx(ED.seconds(machine)), (machine, path)


def test_logmel_features_build_per_machine_length(index):
    picks = index[index["split"] == "train"].groupby("machine").head(1)
    for row in picks.itertuples():
        cfg = FeatureConfig(duration_s=min_clip_seconds(2023, row.machine))
        feats = compute_features([row.path], cfg, device="cpu", num_workers=1, progress=False).astype(np.float32)
        assert feats.shape == (1, 128, num_frames(cfg))
        assert np.isfinite(feats).all() and feats.max() - feats.min() > 20.0  # real audio, not silence
    assert num_frames(FeatureConfig(duration_s=ED.seconds("ToyCar"))) > num_frames(FeatureConfig(duration_s=10.0))


def test_feature_cache_of_an_edition_index(index, tmp_path):
    """The study's feature cache takes the edition index as it is, at the edition's common length."""
    picks = index.groupby("machine").head(1)
    seconds = feature_seconds(2023, picks["machine"])
    assert seconds == 10.0  # ToyCar/ToyTrain's 12-s clips keep their first 10 s
    store = build_feature_cache(picks, FeatureConfig(duration_s=seconds), cache_dir=tmp_path, device="cpu",
                                progress=False, num_workers=1)
    assert store.shape == (7, 128, num_frames(FeatureConfig(duration_s=10.0)))
    assert np.isfinite(store.features.astype(np.float32)).all()


@pytest.fixture(scope="module")
def valve_scored(index):
    """The valve test set scored by a deterministic feature statistic: the clip's mean log-mel energy."""
    test = index[(index.machine == "valve") & (index.split == "test")].reset_index(drop=True)
    cfg = FeatureConfig(duration_s=ED.seconds("valve"))
    feats = compute_features(list(test["path"]), cfg, device="cpu", num_workers=1, progress=False)
    return test.assign(score=feats.astype(np.float32).mean(axis=(1, 2)).astype(float),
                       label=(test["label"] == "anomaly").astype(int))


def test_per_domain_official_metrics_on_the_valve_test_set(valve_scored, tmp_path):
    df = valve_scored
    assert len(df) == 200 and np.isfinite(df["score"]).all() and df["score"].nunique() > 150
    res = official_scores(df, 2023)
    got = res.tidy.set_index(["domain", "metric"])["value"]
    assert set(got.index) == {("all", "AUC"), ("source", "AUC"), ("target", "AUC"), ("all", "pAUC")}
    for domain in ("source", "target"):
        keep = (df.domain == domain) | (df.label == 1)
        assert keep.sum() == 150  # 50 normals of the domain and all 100 anomalies
        assert got[(domain, "AUC")] == roc_auc_score(df.label[keep], df.score[keep])
    assert got[("all", "pAUC")] == roc_auc_score(df.label, df.score, max_fpr=0.1)
    assert all(0.0 <= v <= 1.0 for v in got)
    assert res.official_score == pytest.approx(stats.hmean([got[("source", "AUC")], got[("target", "AUC")],
                                                            got[("all", "pAUC")]]), abs=1e-12)
    # a harmonic mean lies between its smallest and largest part
    assert min(got) <= res.official_score <= max(got)
    # the ranking, not the scale, decides: a monotone transform changes nothing, negation mirrors AUC
    same = official_scores(df.assign(score=np.exp(df["score"] / 10.0)), 2023).tidy["value"].to_numpy()
    assert np.allclose(same, res.tidy["value"].to_numpy(), atol=1e-12)
    flipped = official_scores(df.assign(score=-df["score"]), 2023).tidy.set_index(["domain", "metric"])["value"]
    for domain in ("all", "source", "target"):
        assert flipped[(domain, "AUC")] == pytest.approx(1.0 - got[(domain, "AUC")], abs=1e-12)
    # written in the official naming and evaluated from the files, the same figures come back
    (path,) = write_score_files(tmp_path, 2023, df.assign(domain=None))
    assert path.name == "anomaly_score_valve_section_00_test.csv"
    gt = df[["machine", "section", "domain", "file", "label"]]
    again = evaluate_official(tmp_path, gt, 2023)
    assert again.official_score == pytest.approx(res.official_score, abs=1e-12)
