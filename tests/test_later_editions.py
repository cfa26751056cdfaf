"""Notebook 10's library side: the official table of several methods and seeds, and the
features of a synthetic edition (the whole notebook runs in tests/test_pipeline.py)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from asdlib.data.editions import index_edition
from asdlib.data.synth_edition import EditionSynthProfile, generate_edition
from asdlib.study.later_editions import EditionData, caption, edition_features, official_table


def _tidy() -> pd.DataFrame:
    rows = []
    for method in ("classifier_dg_knn", "ae_mse"):
        for seed, bump in ((0, 0.0), (1, 0.1)):
            for machine in ("fan", "valve"):
                for domain, metric, v in (("source", "AUC", 0.8), ("target", "AUC", 0.6), ("all", "pAUC", 0.55)):
                    rows.append((machine, "00", domain, metric, v + bump, method, seed))
            rows.append(("all", "all", "all", "official score", 0.6 + bump, method, seed))
    return pd.DataFrame(rows, columns=["machine", "section", "domain", "metric", "value", "method", "seed"])


def test_official_table_mean_and_spread_over_seeds():
    t = official_table(_tidy())
    assert list(t.index) == ["fan", "valve", "official score (hmean)"]
    assert t.shape[1] == 6
    col = next(c for c in t.columns if c.startswith("baseline AE, MSE") and c.endswith("AUC (target)"))
    assert t.loc["fan", col] == f"65.0 ± {np.std([60.0, 70.0], ddof=1):.1f}"
    pauc = next(c for c in t.columns if c.startswith("baseline AE, MSE") and c.endswith("pAUC"))
    assert t.loc["official score (hmean)", pauc] == "65.0 ± 7.1" and t.loc["official score (hmean)", col] == ""


def test_features_of_an_edition_cut_to_the_shortest_clip(tmp_path):
    root = generate_edition(tmp_path / "d", 2023, EditionSynthProfile("t", 0.5, 2, 2, 1), machines=["fan", "ToyCar"])
    index = index_edition(root, 2023)
    study = SimpleNamespace(work_dir=tmp_path / "work", device="cpu")
    rows, feats = edition_features(study, index.sample(frac=1.0, random_state=0))
    assert list(rows["relpath"]) == sorted(index["relpath"])  # the cache's order, rows and features aligned
    assert feats.shape == (len(index), 128, 8000 // 512 + 1)  # ToyCar's 0.6-s clips cut to fan's 0.5 s
    assert np.isfinite(np.asarray(feats, dtype=np.float32)).all()
    again_rows, again = edition_features(study, index)
    assert np.array_equal(np.asarray(again), np.asarray(feats)) and again_rows.equals(rows)


def _edition(synthetic: bool, edition: int = 2023) -> EditionData:
    index = pd.DataFrame({"machine": ["fan"] * 3 + ["valve"] * 3, "split": ["train", "train", "test"] * 2})
    return EditionData(edition, Path("/data/x"), synthetic, index, np.zeros((6, 1, 1)))


def test_caption_says_own_run_and_where_the_published_baseline_figures_are():
    study = SimpleNamespace(profile=SimpleNamespace(name="ci"), seeds_text="seeds 0, 1")
    synth = caption(_edition(True), study)
    assert synth.startswith("SYNTHETIC DCASE2023") and "2-2 training and 1-1 test clips" in synth
    assert "asdlib's own run" in synth and "not transcribed" in synth and "not with synthetic figures" in synth
    assert "dcase.community/challenge2023/task-first-shot-unsupervised-anomalous-sound-detection" in synth
    assert "arXiv:2305.07828" in synth
    real = caption(_edition(False), study)
    assert real.startswith("REAL DCASE2023") and "synthetic figures" not in real
    other = caption(_edition(False, 2021), study)  # no source listed for 2021: says so, names no 2023 page
    assert "are not listed in asdlib" in other and "challenge2023" not in other
