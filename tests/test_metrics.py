"""Metrics: equivalence with the official evaluator (sklearn), aggregation rules, bootstrap."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from asdlib.report.metrics import (
    METRICS,
    auc_pauc,
    auc_pauc_batch,
    bootstrap_ci,
    evaluate,
    harmonic_mean,
    overall_means,
    single_class_ids,
    summary_means,
    type_means,
)
from asdlib.report.tables import summarise, to_tidy


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_auc_pauc_equals_sklearn(seed: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(70), np.ones(30)].astype(int)
    s = rng.normal(size=100) + 0.8 * y
    if ties:
        s = np.round(s * 2) / 2  # few distinct values: ties within and across classes
    auc, pauc = auc_pauc(y, s)
    assert auc == roc_auc_score(y, s)
    assert pauc == roc_auc_score(y, s, max_fpr=0.1)


def test_pauc_sanity() -> None:
    y = np.r_[np.zeros(200), np.ones(200)].astype(int)
    assert auc_pauc(y, y.astype(float)) == (1.0, 1.0)
    auc, pauc = auc_pauc(y, -y.astype(float))
    assert auc == 0.0
    # McClish: the worst partial area (0) maps to 0.5 * (1 - min_area / (max_area - min_area)).
    assert pauc == pytest.approx(0.5 * (1 - 0.005 / (0.1 - 0.005)))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 20000)
    auc, pauc = auc_pauc(y, rng.normal(size=y.size))
    assert abs(auc - 0.5) < 0.02 and abs(pauc - 0.5) < 0.02


@pytest.mark.parametrize("y, s, match", [
    ([0, 0, 0], [0.1, 0.2, 0.3], "one class"),
    ([0, 1, 1], [0.1, 0.2], "differ in length"),
    ([0, 1, 1], [0.1, np.nan, 0.3], "NaN"),
    ([0, 1, 2], [0.1, 0.2, 0.3], "0 \\(normal\\) or 1"),
])
def test_auc_pauc_errors(y, s, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        auc_pauc(y, s)


def test_batch_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(3)
    for n0, n1, levels in [(37, 11, 4), (50, 50, 10**6), (9, 3, 2), (100, 7, 6)]:
        neg = rng.integers(0, levels, (4, n0)).astype(float)
        pos = rng.integers(0, levels, (4, n1)).astype(float) + 1
        auc, pauc = auc_pauc_batch(neg, pos)
        for b in range(4):
            y, s = np.r_[np.zeros(n0), np.ones(n1)], np.r_[neg[b], pos[b]]
            assert auc[b] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
            assert pauc[b] == pytest.approx(roc_auc_score(y, s, max_fpr=0.1), abs=1e-12)


def _frame(dataset: str, mtype: str, mid: str, neg, pos) -> pd.DataFrame:
    return pd.DataFrame({"dataset": dataset, "machine_type": mtype, "machine_id": mid,
                         "label": [0] * len(neg) + [1] * len(pos), "score": list(neg) + list(pos)})


@pytest.fixture()
def scores() -> pd.DataFrame:
    # fan 00: perfectly separated (AUC 1); fan 02: anomalies 0.5/1.5 vs normals 1.0 -> AUC 0.5;
    # pump 00: AUC 0.75; an eval ID with unknown labels gives no rows.
    return pd.concat([
        _frame("dev", "fan", "00", [0, 1], [2, 3]),
        _frame("dev", "fan", "02", [1, 1], [0.5, 1.5]),
        _frame("dev", "pump", "00", [0, 2], [1, 3]),
        _frame("eval", "fan", "01", [0, 1], [2, 3]).assign(label=-1),
    ], ignore_index=True)


def test_evaluate_type_and_overall_means(scores: pd.DataFrame) -> None:
    per_id = evaluate(scores)
    assert set(per_id["dataset"]) == {"dev"}
    auc = per_id[per_id["metric"] == "AUC"].set_index(["machine_type", "machine_id"])["value"]
    assert auc.to_dict() == {("fan", "00"): 1.0, ("fan", "02"): 0.5, ("pump", "00"): 0.75}
    assert (per_id["n_normal"] == 2).all() and (per_id["n_anomaly"] == 2).all()
    tm = type_means(per_id)
    tm_auc = tm[tm["metric"] == "AUC"].set_index("machine_type")["value"]
    assert tm_auc["fan"] == 0.75 and tm_auc["pump"] == 0.75
    assert list(tm["machine_type"].unique()) == ["fan", "pump"]
    om = overall_means(tm).set_index(["row", "metric"])["value"]
    pauc_types = tm[tm["metric"] == "pAUC"]["value"].to_numpy()
    assert om[("Mean", "pAUC")] == pytest.approx(pauc_types.mean())
    assert om[("Harmonic Mean", "pAUC")] == pytest.approx(stats.hmean(pauc_types))


def test_evaluate_one_class_names_the_id() -> None:
    with pytest.raises(ValueError, match="pump id 04"):
        evaluate(_frame("dev", "pump", "04", [0.1, 0.2], []))


def test_single_class_policy_in_the_evaluator_and_the_bootstrap() -> None:
    """SINGLE_CLASS_POLICY: the evaluator (and the bootstrap) refuse an ID with one class;
    ``single_class_ids`` finds such IDs for a caller that drops them explicitly."""
    frame = pd.concat([_frame("dev", "fan", "00", [0, 1], [2, 3]), _frame("dev", "pump", "04", [0.1, 0.2], []),
                       _frame("dev", "pump", "06", [0.1], [0.2]).assign(label=-1)], ignore_index=True)
    assert single_class_ids(frame) == [("dev", "pump", "04")]  # pump 06 has no labels: no rows, not an error
    with pytest.raises(ValueError, match="pump id 04"):
        evaluate(frame)
    with pytest.raises(ValueError, match="pump id 04"):
        bootstrap_ci(frame, n_boot=10)
    kept = frame[frame["machine_id"] != "04"]
    assert single_class_ids(kept) == []
    assert set(evaluate(kept)["machine_id"]) == {"00"}


def test_summary_means_is_the_one_aggregation(scores: pd.DataFrame) -> None:
    per_id = evaluate(scores)
    s = summary_means(per_id).set_index(["row", "metric"])["value"]
    assert s[("fan", "AUC")] == 0.75 and s[("Mean", "AUC")] == 0.75 and s[("Harmonic Mean", "AUC")] == 0.75
    # the tables (per seed) and the bootstrap's point estimates are the same numbers, exactly
    tab = summarise(to_tidy(per_id, "x", seed=3), "x").set_index(["row", "metric"])["value"]
    boot = bootstrap_ci(scores, n_boot=20).set_index(["machine_type", "metric"])["value"]
    for key, v in s.items():
        assert tab[key] == v and boot[key] == v
    # a type mean of 0 drags the harmonic mean to its limit 0; a missing one leaves it undefined
    zero = per_id.assign(value=np.where(per_id["machine_type"] == "pump", 0.0, per_id["value"]))
    o = overall_means(type_means(zero)).set_index(["row", "metric"])["value"]
    assert o[("Harmonic Mean", "AUC")] == 0.0 and o[("Mean", "AUC")] == pytest.approx(0.375)
    gap = per_id.assign(value=np.where(per_id["machine_type"] == "pump", np.nan, per_id["value"]))
    o = overall_means(type_means(gap)).set_index(["row", "metric"])["value"]
    assert np.isnan(o[("Harmonic Mean", "AUC")])


def test_overall_means_by_extra_keys_match_one_group_at_a_time() -> None:
    per_id = pd.concat([evaluate(_synthetic(20, seed=k)).assign(seed=k) for k in range(3)], ignore_index=True)
    both = overall_means(type_means(per_id, by=("seed",)), by=("seed",))
    for k in range(3):
        one = overall_means(type_means(per_id[per_id["seed"] == k]))
        pd.testing.assert_frame_equal(both[both["seed"] == k].drop(columns="seed").reset_index(drop=True), one)


def test_harmonic_mean() -> None:
    v = [0.9, 0.5, 0.7]
    assert harmonic_mean(v) == pytest.approx(stats.hmean(v))
    assert harmonic_mean(v) < np.mean(v)
    for bad in ([0.5, 0.0], [0.5, -0.1], []):
        with pytest.raises(ValueError):
            harmonic_mean(bad)


def _synthetic(n_per_label: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for t, shift in (("fan", 1.0), ("valve", 0.6)):
        for mid in ("00", "02"):
            parts.append(_frame("dev", t, mid, rng.normal(size=n_per_label), rng.normal(shift, size=n_per_label)))
    return pd.concat(parts, ignore_index=True)


def test_bootstrap_ci() -> None:
    small, big = _synthetic(30), _synthetic(300)
    ci_small = bootstrap_ci(small, n_boot=300, seed=1)
    ci_big = bootstrap_ci(big, n_boot=300, seed=1)
    assert ((ci_small["ci_low"] <= ci_small["value"]) & (ci_small["value"] <= ci_small["ci_high"])).all()
    point = type_means(evaluate(small)).set_index(["machine_type", "metric"])["value"]
    got = ci_small.set_index(["machine_type", "metric"])["value"]
    assert got[("fan", "AUC")] == pytest.approx(point[("fan", "AUC")])
    assert set(ci_small["machine_type"]) == {"fan", "valve", "Mean", "Harmonic Mean"}
    width = lambda c: (c["ci_high"] - c["ci_low"]).to_numpy()  # noqa: E731
    assert (width(ci_big) < width(ci_small)).all()
    pd.testing.assert_frame_equal(ci_small, bootstrap_ci(small, n_boot=300, seed=1))
    assert not ci_small.equals(bootstrap_ci(small, n_boot=300, seed=2))


def test_bootstrap_is_fast() -> None:
    rng = np.random.default_rng(0)
    parts = [_frame("dev", t, mid, rng.normal(size=100), rng.normal(1, size=100))
             for t in ("ToyCar", "fan", "pump", "slider", "valve", "ToyConveyor") for mid in ("00", "02")]
    start = time.perf_counter()
    bootstrap_ci(pd.concat(parts, ignore_index=True), n_boot=1000)
    assert time.perf_counter() - start < 10


def test_summarise_a_reference_with_means_only() -> None:
    """The study reports only Mean / Harmonic Mean for the focal loss: nothing to compute, the means as given."""
    from asdlib.report.reference import reference_table

    t = summarise(reference_table("focal"), "focal")
    assert set(t["row"]) == {"Mean", "Harmonic Mean"} and len(t) == 8


def _seeded(n_per_label: int, seeds=(0, 1, 2)) -> pd.DataFrame:
    """The same clips scored by several seeds (a ``seed`` and a ``file`` column), seeds differing in skill."""
    parts = []
    for s in seeds:
        rng = np.random.default_rng(100 + s)
        for t, shift in (("fan", 0.5 + 0.4 * s), ("valve", 1.2 - 0.3 * s)):
            for mid in ("00", "02"):
                f = _frame("dev", t, mid, rng.normal(size=n_per_label), rng.normal(shift, size=n_per_label))
                parts.append(f.assign(file=[f"{mid}_{k}.wav" for k in range(len(f))], seed=s))
    return pd.concat(parts, ignore_index=True)


def test_bootstrap_point_values_are_the_tables_means_over_seeds() -> None:
    """Issue 17.1: several seeds' scores are evaluated per seed, never pooled into one ranking."""
    from asdlib.report.tables import study_table

    scores = _seeded(25)
    per_id = evaluate(scores, by=("seed",))
    tidy = pd.concat([to_tidy(per_id[per_id["seed"] == s].drop(columns="seed"), "x", seed=s) for s in (0, 1, 2)])
    table = study_table(tidy, "x")
    ci = bootstrap_ci(scores, n_boot=50, seed=3).set_index(["machine_type", "metric"])
    for row in ("fan", "valve", "Mean", "Harmonic Mean"):
        for metric in METRICS:
            assert round(100 * ci.loc[(row, metric), "value"], 2) == table.loc[row, f"Dev {metric}"], (row, metric)
    assert (ci["n_seeds"] == 3).all()
    with pytest.raises(ValueError, match="3 seeds"):
        evaluate(scores)
    with pytest.raises(ValueError, match="duplicate clips"):
        evaluate(scores.drop(columns="seed"))
    with pytest.raises(ValueError, match="duplicate IDs"):
        type_means(per_id)
    with pytest.raises(ValueError, match="seed 2 did not score every clip"):
        bootstrap_ci(scores.drop(index=scores.index[-1]), n_boot=5)


def test_bootstrap_shares_the_clip_resample_across_seeds() -> None:
    """Identical seeds give exactly the one-seed interval: the same clip indices serve every seed."""
    one = _seeded(20, seeds=(0,))
    three = pd.concat([one.assign(seed=s) for s in (4, 5, 6)], ignore_index=True)
    a, b = bootstrap_ci(one, n_boot=100, seed=1), bootstrap_ci(three, n_boot=100, seed=1)
    cols = ["value", "ci_low", "ci_high"]
    np.testing.assert_allclose(a[cols].to_numpy(float), b[cols].to_numpy(float), rtol=0, atol=1e-12)


def test_bootstrap_of_the_committed_scores_matches_the_committed_tables() -> None:
    """Issue 17.1 on the committed results: 09's bootstrap point values are the main tables' means over seeds."""
    from asdlib.core.utils import repo_root
    from asdlib.report.tables import study_table

    results = repo_root() / "results"
    scores = pd.read_csv(results / "scores" / "integrated__dev_auc_pauc.csv", dtype={"machine_id": str})
    tidy = pd.read_csv(results / "tidy" / "03_individual_vs_integrated.csv", dtype={"machine_id": str})
    table = study_table(tidy, "integrated", selection="dev_auc_pauc")
    ci = bootstrap_ci(scores, n_boot=2).set_index(["dataset", "machine_type", "metric"])
    for row in ("ToyCar", "fan", "Mean", "Harmonic Mean"):
        for metric in METRICS:
            assert round(100 * ci.loc[("dev", row, metric), "value"], 2) == table.loc[row, f"Dev {metric}"]
