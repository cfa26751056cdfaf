"""The study's claims tested on per-clip scores: paired hierarchical bootstrap, verdicts, the study's differences."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from asdlib.report.claims import (
    CLAIMS,
    HOLDS,
    NOT_RUN,
    REVERSED,
    UNRESOLVED,
    Claim,
    claims_table,
    evaluate_claims,
    verdict,
)
from asdlib.report.metrics import evaluate, overall_means, type_means
from asdlib.report.reference import REFERENCE_EXPERIMENTS, reference_value
from asdlib.study.registry import EXPERIMENTS

TYPES = {"fan": ("00", "02"), "pump": ("00", "04", "06")}
CLAIM = Claim("B > A", "b", "a", "b beats a")


def base_scores(rng: np.random.Generator, n0: int = 12, n1: int = 8, seeds=(0,), signal: float = 0.5,
                dataset: str = "dev") -> pd.DataFrame:
    """One row per clip and seed; score = signal * label + noise (noise drawn per seed)."""
    rows = []
    for seed in seeds:
        for t, ids in TYPES.items():
            for mid in ids:
                for label, n in ((0, n0), (1, n1)):
                    for k in range(n):
                        name = f"{'normal' if label == 0 else 'anomaly'}_id_{mid}_{k:08d}.wav"
                        rows.append((dataset, t, mid, label, name, signal * label + rng.normal(), seed))
    return pd.DataFrame(rows, columns=["dataset", "machine_type", "machine_id", "label", "file", "score", "seed"])


def test_every_claim_of_the_study_is_present() -> None:
    pairs = {(c.better, c.worse) for c in CLAIMS}
    assert pairs == {("integrated", "individual"), ("integrated", "ls0"), ("integrated", "softmax"),
                     ("integrated", "cosface"), ("integrated", "focal"), ("transfer", "integrated"),
                     ("integrated", "autoencoder")}
    assert len({c.name for c in CLAIMS}) == len(CLAIMS)
    for c in CLAIMS:
        assert c.better in EXPERIMENTS and c.worse in EXPERIMENTS
        for ref in c.references:
            assert ref in REFERENCE_EXPERIMENTS
        assert EXPERIMENTS[c.worse].reference == c.references[1]  # the same figures as the summary tables


def test_study_differences_match_the_reference_figures() -> None:
    res = evaluate_claims({}, n_boot=1)
    for c, (_, r) in zip(CLAIMS, res.iterrows()):
        for m in ("AUC", "pAUC"):
            b, w = c.references
            assert r[f"study_d_{m}"] == pytest.approx(reference_value(b, "dev", "Mean", m)
                                                      - reference_value(w, "dev", "Mean", m))
            assert r[f"study_d_{m}"] > 0  # every claim is one the study makes
    by = res.set_index("claim")
    assert 100 * by.loc["E2 > E1", "study_d_AUC"] == pytest.approx(90.75 - 89.30)
    assert 100 * by.loc["E5 > E2", "study_d_pAUC"] == pytest.approx(85.35 - 82.85)
    assert 100 * by.loc["ID classifier > baseline AE", "study_d_AUC"] == pytest.approx(90.75 - 73.66)


def test_missing_experiments_give_not_run_rows() -> None:
    rng = np.random.default_rng(0)
    res = evaluate_claims({"integrated": base_scores(rng), "ls0": base_scores(rng), "focal": None}, n_boot=50)
    assert list(res["claim"]) == [c.name for c in CLAIMS]
    by = res.set_index("claim")
    assert by.loc["LS 0.05 > LS 0", "verdict_AUC"] != NOT_RUN
    for name in ("E2 > E1", "ArcFace > focal", "E5 > E2", "ID classifier > baseline AE"):
        assert by.loc[name, "verdict_AUC"] == by.loc[name, "verdict_pAUC"] == NOT_RUN
        assert by.loc[name, "note"].startswith("not run")
    assert "'focal'" in by.loc["ArcFace > focal", "note"]
    table = claims_table(res)  # a partial run still renders
    assert table.loc["E5 > E2", "AUC verdict"] == NOT_RUN and table.loc["E5 > E2", "AUC 95 % interval"] == "—"


@pytest.mark.parametrize("seeds", [(0,), (0, 1, 2)])
def test_clearly_better_holds_and_clearly_worse_is_reversed(seeds) -> None:
    rng = np.random.default_rng(1)
    a = base_scores(rng, seeds=seeds, signal=0.2)
    b = a.assign(score=a["score"] + 5.0 * a["label"])  # every anomaly higher, on every clip and seed
    res = evaluate_claims({"b": b, "a": a}, claims=[CLAIM], n_boot=200).iloc[0]
    for m in ("AUC", "pAUC"):
        assert res[f"verdict_{m}"] == HOLDS and res[f"low_{m}"] > 0
    assert res["better_AUC"] > 0.99
    assert res["seeds"] == "paired" and res["n_seeds_better"] == len(seeds)
    rev = evaluate_claims({"b": a, "a": b}, claims=[CLAIM], n_boot=200).iloc[0]
    for m in ("AUC", "pAUC"):
        assert rev[f"verdict_{m}"] == REVERSED and rev[f"high_{m}"] < 0


def test_identical_scores_are_not_resolved() -> None:
    a = base_scores(np.random.default_rng(2), seeds=(0, 1))
    res = evaluate_claims({"b": a, "a": a.copy()}, claims=[CLAIM], n_boot=200).iloc[0]
    for m in ("AUC", "pAUC"):
        assert res[f"verdict_{m}"] == UNRESOLVED
        assert res[f"low_{m}"] <= 0 <= res[f"high_{m}"] and res[f"d_{m}"] == 0


def test_verdicts_follow_the_intervals_on_random_inputs() -> None:
    rng = np.random.default_rng(3)
    seen = set()
    for k in range(8):
        seeds_a, seeds_b = (0, 1, 2)[: 1 + k % 3], (0, 1)[: 1 + k % 2]
        a = base_scores(rng, seeds=seeds_a, signal=rng.uniform(0, 1.5), n0=8, n1=5)
        b = base_scores(rng, seeds=seeds_b, signal=rng.uniform(0, 1.5), n0=8, n1=5)
        r = evaluate_claims({"b": b, "a": a}, claims=[CLAIM], n_boot=100, seed=k).iloc[0]
        assert r["seeds"] == ("paired" if len(seeds_a) == len(seeds_b) else "independent")
        for m in ("AUC", "pAUC"):
            lo, hi, v = r[f"low_{m}"], r[f"high_{m}"], r[f"verdict_{m}"]
            assert lo <= hi
            assert v == (HOLDS if lo > 0 else REVERSED if hi < 0 else UNRESOLVED) == verdict(lo, hi)
            seen.add(v)
    assert len(seen) >= 2, seen  # the inputs are varied enough to reach more than one verdict


def test_deterministic_given_the_seed() -> None:
    rng = np.random.default_rng(4)
    a, b = base_scores(rng, seeds=(0, 1)), base_scores(rng, seeds=(0, 1), signal=0.8)
    one = evaluate_claims({"b": b, "a": a}, claims=[CLAIM], n_boot=100, seed=7)
    pd.testing.assert_frame_equal(one, evaluate_claims({"b": b, "a": a}, claims=[CLAIM], n_boot=100, seed=7))
    other = evaluate_claims({"b": b, "a": a}, claims=[CLAIM], n_boot=100, seed=8)
    assert one["low_AUC"].iloc[0] != other["low_AUC"].iloc[0]
    assert one["d_AUC"].iloc[0] == other["d_AUC"].iloc[0]  # the point estimate uses no randomness
    # Row order and file order of the input do not matter.
    shuffled = {"b": b.sample(frac=1, random_state=0), "a": a.sample(frac=1, random_state=1)}
    pd.testing.assert_frame_equal(one, evaluate_claims(shuffled, claims=[CLAIM], n_boot=100, seed=7))


def test_point_estimate_is_the_dev_mean_of_the_summary_tables() -> None:
    rng = np.random.default_rng(5)
    a = base_scores(rng, seeds=(0, 1), signal=0.6)
    b = pd.concat([base_scores(rng, seeds=(0, 1), signal=1.0), base_scores(rng, dataset="eval")])
    r = evaluate_claims({"b": b, "a": a.drop(columns="seed").iloc[: len(a) // 2]}, claims=[CLAIM], n_boot=20).iloc[0]
    means = []
    for _, g in b[b["dataset"] == "dev"].groupby("seed"):
        o = overall_means(type_means(evaluate(g)))
        means.append(o[(o["row"] == "Mean")].set_index("metric")["value"])
    for m in ("AUC", "pAUC"):
        assert r[f"better_{m}"] == pytest.approx(np.mean([s[m] for s in means]))
    assert r["n_seeds_better"] == 2 and r["n_seeds_worse"] == 1 and r["seeds"] == "independent"
    assert r["n_clips"] == len(a) // 2 and r["n_ids"] == 5


def test_only_shared_clips_are_compared_and_bad_input_is_named() -> None:
    rng = np.random.default_rng(6)
    a = base_scores(rng)
    b = a.assign(score=rng.normal(size=len(a)))
    part = b[~((b["machine_type"] == "pump") & (b["machine_id"] == "06") & (b["label"] == 1))]
    r = evaluate_claims({"b": part, "a": a}, claims=[CLAIM], n_boot=20).iloc[0]
    assert r["n_ids"] == 4 and "pump 06" in r["note"]
    with pytest.raises(ValueError, match="duplicate"):
        evaluate_claims({"b": pd.concat([a, a.iloc[:1]]), "a": a}, claims=[CLAIM], n_boot=5)
    with pytest.raises(ValueError, match="label"):
        evaluate_claims({"b": a.assign(label=1 - a["label"]), "a": a}, claims=[CLAIM], n_boot=5)


def test_seeds_widen_the_interval() -> None:
    """With seed-to-seed spread the interval must be wider than with the clips alone."""
    rng = np.random.default_rng(7)
    a = base_scores(rng, seeds=(0,), signal=1.0, n0=30, n1=20)
    one = evaluate_claims({"b": a, "a": a.assign(score=a["score"] * 0.9 + 0.2 * a["label"])}, claims=[CLAIM],
                          n_boot=300).iloc[0]
    b3 = pd.concat([a.assign(seed=s, score=a["score"] + rng.normal(0, 1.5, len(a)) * (s > 0)) for s in range(3)])
    a3 = pd.concat([a.assign(seed=s, score=a["score"] * 0.9 + 0.2 * a["label"]) for s in range(3)])
    three = evaluate_claims({"b": b3, "a": a3}, claims=[CLAIM], n_boot=300).iloc[0]
    assert three["high_AUC"] - three["low_AUC"] > one["high_AUC"] - one["low_AUC"]


def test_forest_plot_has_a_row_per_claim() -> None:
    from asdlib.study.plots import plot_claims

    rng = np.random.default_rng(8)
    res = evaluate_claims({"integrated": base_scores(rng), "ls0": base_scores(rng)}, n_boot=20)
    fig = plot_claims(res)
    assert len(fig.axes) == 2
    assert len(fig.axes[0].get_yticklabels()) == len(CLAIMS)
    fig.canvas.draw()


def test_the_summary_loads_label_free_scores(tmp_path) -> None:
    from types import SimpleNamespace

    from asdlib.study import summary

    rng = np.random.default_rng(9)
    (tmp_path / "scores").mkdir()
    files = {"integrated__val_loss": 0.9, "integrated__dev_auc_pauc": 0.0, "ls0__dev_auc_pauc": 0.0, "ls0__last": 0.5,
             "focal__dev_auc_pauc": 0.5,
             "autoencoder__final": 0.3, "autoencoder__val_loss": 0.0}
    for name, signal in files.items():
        base_scores(rng, signal=signal).drop(columns="seed").to_csv(tmp_path / "scores" / f"{name}.csv", index=False)
    study = SimpleNamespace(results_dir=tmp_path,
                            load_scores=lambda n: pd.read_csv(tmp_path / "scores" / f"{n}.csv", dtype={"machine_id": str}))
    scores, rules = summary.load_claim_scores(study)
    assert rules == {"integrated": "val_loss", "ls0": "last", "autoencoder": "final"}  # never the study's rule
    assert scores["focal"] is None
    assert scores["individual"] is None and scores["integrated"] is not None
    res = evaluate_claims(scores, n_boot=20, selections=rules)
    by = res.set_index("claim")
    assert by.loc["ID classifier > baseline AE", "selection"] == "val_loss / final"
    assert by.loc["E2 > E1", "verdict_AUC"] == NOT_RUN
    caption = summary.claims_caption(res)
    assert "val_loss" in caption and "final" in caption and "20 replicates" in caption
    assert claims_table(res).loc["LS 0.05 > LS 0", "seeds"] == "1"


def test_the_seed_component_has_the_unbiased_width_with_few_seeds() -> None:
    """Issue 17.3: seeds whose AUC is 1, 1 and 0 on every clip resample (perfect or inverted scores),
    against a constant rival: the replicates vary by the seeds alone, and their sd must be the
    standard error of the mean over 3 seeds, s / sqrt(3) = 1/3, not the plug-in sqrt(2/3) / 3 = 0.27."""
    from asdlib.report.claims import _align, _bootstrap, seed_scale

    rng = np.random.default_rng(11)
    base = base_scores(rng, seeds=(0,), n0=6, n1=4)
    better = pd.concat([base.assign(seed=s, score=base["label"] * (1.0 if s < 2 else -1.0)) for s in range(3)])
    worse = pd.concat([base.assign(seed=s, score=base["label"].astype(float)) for s in range(3)])
    a = _align(better, worse, ("b", "a"), "dev")
    boots, paired = _bootstrap(a, 6000, np.random.default_rng(0), 0.1)
    assert paired
    d = boots["AUC"]
    assert d.mean() == pytest.approx(-1 / 3, abs=0.01)  # unbiased: the seed deviation averages to 0
    assert d.std() == pytest.approx(np.std([1, 1, 0], ddof=1) / np.sqrt(3), rel=0.04)  # 1/3, not 0.272
    assert seed_scale(3) == pytest.approx(np.sqrt(1.5)) and seed_scale(1) == 1.0
    from asdlib.study.summary import claims_caption

    assert "√(n/(n−1))" in claims_caption(evaluate_claims({"b": better, "a": worse}, claims=[CLAIM], n_boot=10))
