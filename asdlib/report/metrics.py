"""The DCASE2020 Task 2 metrics: AUC and pAUC per machine ID, means per type and overall.

Per ID the official evaluator calls ``sklearn.metrics.roc_auc_score(y, s)`` and
``roc_auc_score(y, s, max_fpr=0.1)``; the latter is McClish-standardised, so 0.5 is chance
for pAUC as well. :func:`auc_pauc` calls exactly those, so numbers here are comparable with
every DCASE2020 paper. Values are fractions in [0, 1]; only rendered tables use percent.

:func:`bootstrap_ci` needs thousands of AUC/pAUC evaluations; calling sklearn in a loop
would take minutes, so it uses :func:`auc_pauc_batch`, a vectorised form of the same ROC
(piecewise-linear through tied scores, linear interpolation at ``max_fpr``) that the tests
check against sklearn.

**From per-ID values to a table** is one path, used by the tables, the bootstrap and the
training-time checkpoint criterion alike: :func:`type_means` (arithmetic mean over the IDs of
each type) then :func:`overall_means` ('Mean' and 'Harmonic Mean' over the types present);
:func:`summary_means` does both. The mean over types is pandas' grouped mean over the types
in sorted order (a fixed summation order, so a figure is the same wherever it is computed);
the harmonic mean is ``scipy.stats.hmean``, 0 when a type mean is 0 (its limit: one type at
AUC 0 drags the harmonic mean to 0) and NaN when one is negative or missing.

**Several seeds in one frame** (notebook 09's score files hold every clip once per seed) are
never pooled into one ranking: :func:`evaluate` and :func:`type_means` refuse a frame with a clip
(or an ID) twice unless they group by ``seed`` (``by=("seed",)``), and :func:`bootstrap_ci`
evaluates each seed on its own and averages the per-seed summaries, as the tables do.

**IDs with a single class** (SINGLE_CLASS_POLICY): an ID whose labelled clips are all normal
or all anomalous has no AUC. :func:`evaluate` and :func:`bootstrap_ci` raise on it, naming the
ID, so nothing is silently missing from a type mean or a table. Code that evaluates a set it
does not curate (the training-time :class:`asdlib.classify.evaluate.EvalSet`) finds such IDs
with :func:`single_class_ids` when the set is built, drops them there explicitly (with a
warning) and evaluates the rest with these same functions.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

from ..core.machines import LABEL_ANOMALY, LABEL_NORMAL, MACHINE_TYPES

MAX_FPR = 0.1
SCORE_COLUMNS = ("dataset", "machine_type", "machine_id", "label", "score")
PER_ID_COLUMNS = ("dataset", "machine_type", "machine_id", "metric", "value", "n_normal", "n_anomaly")
METRICS = ("AUC", "pAUC")
MEAN_ROW, HMEAN_ROW = "Mean", "Harmonic Mean"
SINGLE_CLASS_POLICY = (
    "An ID whose labelled clips are of one class only has no AUC: evaluate() and bootstrap_ci() raise on it, "
    "so no ID is silently left out of a type mean; the training-time EvalSet drops such IDs explicitly "
    "when it is built (EvalSet.dropped_ids, with a warning) and evaluates the rest."
)


def auc_pauc(y_true, scores, max_fpr: float = MAX_FPR) -> tuple[float, float]:
    """(AUC, pAUC) of one machine ID, exactly as the DCASE2020 evaluator computes them."""
    y = np.asarray(y_true).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {s.shape[0]}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{int(np.sum(~np.isfinite(s)))} anomaly scores are NaN or infinite")
    if not set(np.unique(y).tolist()) <= {LABEL_NORMAL, LABEL_ANOMALY}:
        raise ValueError(f"labels must be 0 (normal) or 1 (anomaly), got {sorted(set(np.unique(y).tolist()))}")
    if np.unique(y).size < 2:
        raise ValueError("AUC needs both normal and anomalous clips; only one class is present")
    return float(roc_auc_score(y, s)), float(roc_auc_score(y, s, max_fpr=max_fpr))


def _dense_ranks(x: np.ndarray) -> np.ndarray:
    """Integer ranks that keep ties equal: lets one flat searchsorted serve every row."""
    return np.unique(x, return_inverse=True)[1].reshape(x.shape)


def auc_pauc_batch(neg: np.ndarray, pos: np.ndarray, max_fpr: float = MAX_FPR) -> tuple[np.ndarray, np.ndarray]:
    """AUC and McClish pAUC for each row of ``neg`` (B, n0) normal and ``pos`` (B, n1) anomaly scores.

    The ROC is cut into one vertical strip of width 1/n0 per normal clip (sorted by
    descending score). A strip's heights are the TPR at its edges: the anomalies scored
    above that normal, plus its share of the anomalies tied with its tie group (the ROC
    runs straight through a tie, as in sklearn). Summing full strips and a linearly
    interpolated part-strip at ``max_fpr`` gives sklearn's partial area.
    """
    neg, pos = np.atleast_2d(neg), np.atleast_2d(pos)
    if neg.shape[0] != pos.shape[0]:
        raise ValueError(f"neg and pos need the same number of rows: {neg.shape[0]} vs {pos.shape[0]}")
    n_rows, n0 = neg.shape
    n1 = pos.shape[1]
    if n0 == 0 or n1 == 0:
        raise ValueError("AUC needs both normal and anomalous clips; only one class is present")
    if not (0 < max_fpr <= 1):
        raise ValueError(f"max_fpr must be in (0, 1], got {max_fpr}")
    ranks = _dense_ranks(np.concatenate([neg, pos], axis=1))  # (B, n0 + n1)
    span = int(ranks.max()) + 1
    offset = (np.arange(n_rows) * span)[:, None]
    neg_r = -np.sort(-ranks[:, :n0], axis=1)  # descending, (B, n0)
    pos_flat = (np.sort(ranks[:, n0:], axis=1) + offset).ravel()
    base = (np.arange(n_rows) * n1)[:, None]
    below_or_tied = np.searchsorted(pos_flat, (neg_r + offset).ravel(), "left").reshape(neg_r.shape) - base
    below_or_eq = np.searchsorted(pos_flat, (neg_r + offset).ravel(), "right").reshape(neg_r.shape) - base
    above = n1 - below_or_eq  # anomalies strictly above each normal
    tied = below_or_eq - below_or_tied  # anomalies equal to each normal

    # Position of each normal inside its tie group among the normals (i of m).
    idx = np.broadcast_to(np.arange(n0), neg_r.shape)
    new_group = np.ones_like(neg_r, dtype=bool)
    new_group[:, 1:] = neg_r[:, 1:] != neg_r[:, :-1]
    start = np.maximum.accumulate(np.where(new_group, idx, 0), axis=1)
    end_group = np.ones_like(neg_r, dtype=bool)
    end_group[:, :-1] = new_group[:, 1:]
    rev = np.where(end_group, idx, n0)[:, ::-1]
    end = np.minimum.accumulate(rev, axis=1)[:, ::-1]
    m = end - start + 1
    i = idx - start
    h_left = (above + tied * i / m) / n1
    h_right = (above + tied * (i + 1) / m) / n1

    auc = ((h_left + h_right) / 2).mean(axis=1)
    cut = max_fpr * n0  # strips [k, k+1) with k < cut lie (partly) under max_fpr
    k = np.arange(n0)
    frac = np.clip(cut - k, 0.0, 1.0)  # 1 for full strips, r for the part-strip, 0 beyond
    area = (frac * (h_left + (h_left + frac * (h_right - h_left))) / 2).sum(axis=1) / n0
    min_area, max_area = 0.5 * max_fpr**2, max_fpr
    pauc = 0.5 * (1 + (area - min_area) / (max_area - min_area))
    return auc, pauc


CLIP_KEY = ("dataset", "machine_type", "machine_id", "file")  # one clip; a frame has one row per clip (and seed)


def check_unique_clips(scores: pd.DataFrame, by: Sequence[str] = ()) -> None:
    """Refuse a scores frame that holds a clip twice within a group of ``by``.

    Several seeds' scores in one frame (notebook 09's score files) give every clip once per
    seed; an aggregation that does not group by ``seed`` would pool them, ranking one model's
    normal clips against another model's anomalies. So a frame with duplicate (dataset,
    machine_type, machine_id, file) rows, or with several ``seed`` values, is refused unless
    ``by`` names ``seed``.
    """
    by = list(by)
    if "seed" in scores.columns and "seed" not in by and scores["seed"].nunique(dropna=False) > 1:
        raise ValueError(f"the scores hold {scores['seed'].nunique(dropna=False)} seeds "
                         f"({sorted(scores['seed'].unique().tolist())}); evaluate each seed on its own "
                         "(group by 'seed', e.g. evaluate(scores, by=('seed',))) instead of pooling their clips")
    if "file" not in scores.columns:
        return
    key = [*by, *CLIP_KEY]
    dup = scores.duplicated(key)
    if dup.any():
        first = scores.loc[dup, key].iloc[0].tolist()
        raise ValueError(f"the scores hold {int(dup.sum())} duplicate clips by {key} (first: {first}); "
                         "one row per clip" + ("" if "seed" in by else " (and seed: group by 'seed')") + " is needed")


def _check_scores(scores: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    missing = [c for c in (*SCORE_COLUMNS, *by) if c not in scores.columns]
    if missing:
        raise ValueError(f"scores frame lacks columns {missing}; needs {list(SCORE_COLUMNS)}")
    check_unique_clips(scores, by)
    labelled = scores[scores["label"].astype(int) != -1].copy()
    labelled["label"] = labelled["label"].astype(int)
    labelled["machine_id"] = labelled["machine_id"].astype(str).str.zfill(2)  # an ID read as int 1 is '01'
    return labelled


def evaluate(scores: pd.DataFrame, max_fpr: float = MAX_FPR, by: Sequence[str] = ()) -> pd.DataFrame:
    """Per-ID AUC and pAUC in long form (one row per ID and metric, and per group of ``by``).

    ``scores`` has one row per clip (per group of ``by``, e.g. ``by=("seed",)`` for several
    seeds' scores in one frame; a clip twice in a group, or several seeds without
    ``by=("seed",)``, is refused: :func:`check_unique_clips`). Clips labelled -1 (unknown) are
    left out, so an ID without labels simply yields no rows; an ID with only one class raises
    (see SINGLE_CLASS_POLICY), since a silently missing ID would bias the type mean.
    """
    by = list(by)
    rows = []
    for key, g in _check_scores(scores, by).groupby([*by, "dataset", "machine_type", "machine_id"], sort=True):
        ds, mt, mid = key[len(by):]
        try:
            auc, pauc = auc_pauc(g["label"].to_numpy(), g["score"].to_numpy(), max_fpr)
        except ValueError as e:
            raise ValueError(f"{ds} {mt} id {mid}: {e}") from None
        n1 = int(g["label"].sum())
        for metric, value in (("AUC", auc), ("pAUC", pauc)):
            rows.append((*key, metric, value, len(g) - n1, n1))
    return pd.DataFrame(rows, columns=[*by, *PER_ID_COLUMNS])


def single_class_ids(scores: pd.DataFrame) -> list[tuple[str, str, str]]:
    """``(dataset, machine_type, machine_id)`` of the IDs whose labelled clips are of one class only.

    These are the IDs :func:`evaluate` refuses; a caller that wants to evaluate the rest
    drops them itself, explicitly (SINGLE_CLASS_POLICY).
    """
    n_classes = _check_scores(scores).groupby(["dataset", "machine_type", "machine_id"], sort=True)["label"].nunique()
    return [tuple(k) for k in n_classes.index[n_classes.to_numpy() < 2]]


def _type_order(types: Iterable[str]) -> list[str]:
    known = [t for t in MACHINE_TYPES if t in set(types)]
    return known + sorted(set(types) - set(known))


def type_means(per_id: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Arithmetic mean over the IDs of each type, per dataset and metric (the DCASE rule).

    ``per_id`` has columns dataset, machine_type, metric, value (as :func:`evaluate` gives);
    ``by`` names further grouping columns (a seed, a bootstrap replicate). Returns
    ``[*by, dataset, machine_type, metric, value, n_ids]``, types in the study's order.
    """
    keys = [*by, "dataset", "machine_type", "metric"]
    if "machine_id" in per_id.columns:  # an ID twice in a group: several seeds (or rules) pooled into one mean
        dup = per_id.duplicated([*keys, "machine_id"])
        if dup.any():
            first = per_id.loc[dup, [*keys, "machine_id"]].iloc[0].tolist()
            raise ValueError(f"per-ID values hold {int(dup.sum())} duplicate IDs by {[*keys, 'machine_id']} "
                             f"(first: {first}); several seeds or selection rules? group by them (by=('seed',))")
    out = per_id.groupby(keys, sort=False)["value"].agg(["mean", "size"]).reset_index()
    out = out.rename(columns={"mean": "value", "size": "n_ids"})
    out["_o"] = out["machine_type"].map({t: k for k, t in enumerate(_type_order(out["machine_type"]))})
    return out.sort_values([*by, "dataset", "_o", "metric"]).drop(columns="_o").reset_index(drop=True)


def harmonic_mean(values) -> float:
    """Harmonic mean as ``scipy.stats.hmean``; values must be finite and > 0."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        raise ValueError("harmonic mean of no values")
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError(f"harmonic mean needs finite values > 0, got {v.tolist()}")
    return float(stats.hmean(v))


def _hmeans(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``scipy.stats.hmean`` of each consecutive group of ``counts`` values: 0 where a value is 0
    (the limit), NaN where one is negative or not finite."""
    if len(counts) and counts[0] > 0 and (counts == counts[0]).all():  # one matrix: a row per group
        mat = values.reshape(len(counts), counts[0])
        ok = (np.isfinite(mat) & (mat >= 0)).all(axis=1)
        zero = ok & (mat == 0).any(axis=1)
        h = stats.hmean(np.where((ok & ~zero)[:, None], mat, 1.0), axis=1)
        return np.where(ok, np.where(zero, 0.0, h), np.nan)
    parts = np.split(values, np.cumsum(counts)[:-1]) if len(counts) else []
    return np.array([_hmean_or_limit(p) for p in parts])


def _hmean_or_limit(v: np.ndarray) -> float:
    if not v.size or not (np.isfinite(v) & (v >= 0)).all():
        return float("nan")
    return 0.0 if (v == 0).any() else float(stats.hmean(v))


def overall_means(type_means_df: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Rows 'Mean' and 'Harmonic Mean' across the types present, per dataset and metric (and ``by``).

    The mean is pandas' grouped mean over the type means in sorted type order (NaN if one
    is NaN); the harmonic mean is ``scipy.stats.hmean`` (0 if a type mean is 0, NaN if one is
    negative or NaN).
    Returns ``[*by, dataset, row, metric, value, n_types]``.
    """
    keys = [*by, "dataset", "metric"]
    columns = [*by, "dataset", "row", "metric", "value", "n_types"]
    tm = type_means_df.sort_values([*keys, "machine_type"], kind="stable")  # the summation order
    grouped = tm.groupby(keys, sort=True)["value"]
    mean = grouped.mean(skipna=False)
    if mean.empty:
        return pd.DataFrame(columns=columns)
    codes = grouped.ngroup().to_numpy()
    keep = codes >= 0  # rows with a missing key belong to no group
    order = np.argsort(codes[keep], kind="stable")
    counts = np.bincount(codes[keep], minlength=len(mean))
    hmean = _hmeans(tm["value"].to_numpy(dtype=float)[keep][order], counts)
    base = mean.index.to_frame(index=False)
    out = pd.concat([base.assign(row=MEAN_ROW, value=mean.to_numpy(), n_types=counts),
                     base.assign(row=HMEAN_ROW, value=hmean, n_types=counts)]).sort_index(kind="stable")
    return out[columns].reset_index(drop=True)


def summary_means(per_id: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """Type means and the Mean / Harmonic Mean over types, as one long frame.

    Returns ``[*by, dataset, row, metric, value, n]``: ``row`` a machine type (``n`` its
    IDs) or 'Mean' / 'Harmonic Mean' (``n`` the types), types first in the study's order.
    """
    tm = type_means(per_id, by)
    overall = overall_means(tm, by).rename(columns={"n_types": "n"})
    types = tm.rename(columns={"machine_type": "row", "n_ids": "n"})[list(overall.columns)]
    return pd.concat([types, overall], ignore_index=True) if len(overall) else types


def _seed_matrix(g: pd.DataFrame, seeds: list, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One ID's labels (n,) and scores (n_seeds, n): clips matched across seeds by file name."""
    if "file" not in g.columns and len(seeds) == 1:
        return g["label"].to_numpy(), g["score"].to_numpy(float)[None, :]
    if "file" not in g.columns:
        raise ValueError(f"{where}: several seeds' scores need a 'file' column to match each clip across the seeds")
    wide = g.pivot(index="file", columns="seed", values="score").reindex(columns=seeds).sort_index()
    if wide.isna().any().any():
        seed = wide.columns[wide.isna().any()].tolist()[0]
        raise ValueError(f"{where}: seed {seed} did not score every clip (first missing: "
                         f"{wide.index[wide[seed].isna()][0]}); every seed must score the same clips")
    labels = g.groupby("file")["label"].agg(["min", "max"]).reindex(wide.index)
    if (labels["min"] != labels["max"]).any():
        raise ValueError(f"{where}: a clip has different labels in different seeds")
    return labels["min"].to_numpy(), wide.to_numpy(float).T


def bootstrap_ci(scores: pd.DataFrame, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                 max_fpr: float = MAX_FPR) -> pd.DataFrame:
    """Percentile confidence intervals of the type-mean AUC/pAUC (and of the overall means).

    **Seeds.** ``scores`` may hold several seeds' scores of the same test clips (a ``seed``
    column, clips matched by ``file``). Each seed is evaluated on its own and the figures are
    the mean over seeds of its per-seed summary (:func:`summary_means`), exactly the main
    tables' values; seeds are never pooled into one ranking.

    **Clips.** Clips are resampled with replacement within each ID and within each label, so
    every resample keeps the ID's numbers of normal and anomalous clips (stratified
    bootstrap): the interval reflects which clips happened to be in the test set, not class
    balance. Every seed is scored on the same test set, so one replicate draws **one set of
    clip indices shared by all seeds** (as :mod:`asdlib.report.claims` does) and takes the
    mean over seeds of the per-seed summaries; the seeds themselves are not resampled (the
    interval covers the test clips, for this set of trained models).

    Returns dataset, machine_type (a type, 'Mean' or 'Harmonic Mean'), metric, value (the
    point estimate on the original clips), ci_low, ci_high, n_boot, n_seeds. A replicate in
    which a type's mean is 0 (likely with a few clips per ID) has a harmonic mean of 0.
    """
    if n_boot < 1 or not (0 < alpha < 1):
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got {n_boot}, {alpha}")
    frame = scores if "seed" in scores.columns else scores.assign(seed=0)
    labelled = _check_scores(frame, by=("seed",))
    seeds = sorted(labelled["seed"].unique().tolist())
    rng = np.random.default_rng(seed)
    points, keys, boots = [], [], []
    for (ds, mt, mid), g in labelled.groupby(["dataset", "machine_type", "machine_id"], sort=True):
        where = f"{ds} {mt} id {mid}"
        y, m = _seed_matrix(g, seeds, where)  # (n,), (S, n)
        try:
            point = [auc_pauc(y, m[k], max_fpr) for k in range(len(seeds))]
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        neg_i, pos_i = np.flatnonzero(y == LABEL_NORMAL), np.flatnonzero(y == LABEL_ANOMALY)
        neg_idx = neg_i[rng.integers(0, neg_i.size, (n_boot, neg_i.size))]  # one clip resample per replicate,
        pos_idx = pos_i[rng.integers(0, pos_i.size, (n_boot, pos_i.size))]  # shared by every seed
        batch = auc_pauc_batch(m[:, neg_idx].reshape(-1, neg_i.size), m[:, pos_idx].reshape(-1, pos_i.size), max_fpr)
        for j, (metric, b) in enumerate(zip(METRICS, batch)):
            for k, s in enumerate(seeds):
                points.append((s, ds, mt, mid, metric, point[k][j]))
                keys.append((s, ds, mt, mid, metric))
                boots.append(b.reshape(len(seeds), n_boot)[k])
    id_cols = ["seed", "dataset", "machine_type", "machine_id", "metric"]
    per_seed = summary_means(pd.DataFrame(points, columns=[*id_cols, "value"]), by=("seed",))
    point = per_seed.groupby(["dataset", "row", "metric"], sort=False)["value"].mean().reset_index()
    replicas = pd.DataFrame(np.repeat(np.array(keys, dtype=object), n_boot, axis=0), columns=id_cols)
    replicas["boot"] = np.tile(np.arange(n_boot), len(keys))
    replicas["value"] = np.concatenate(boots) if boots else np.empty(0)
    per_boot = summary_means(replicas, by=("boot", "seed"))
    per_boot = per_boot.groupby(["dataset", "row", "metric", "boot"], sort=True)["value"].mean().reset_index()
    dist = {k: g["value"].to_numpy() for k, g in per_boot.groupby(["dataset", "row", "metric"], sort=False)}
    rows = [(ds, row, metric, v, *np.quantile(dist[(ds, row, metric)], [alpha / 2, 1 - alpha / 2]), n_boot,
             len(seeds)) for ds, row, metric, v in point[["dataset", "row", "metric", "value"]].itertuples(index=False)]
    out = pd.DataFrame(rows, columns=["dataset", "machine_type", "metric", "value", "ci_low", "ci_high", "n_boot",
                                      "n_seeds"])
    order = {t: k for k, t in enumerate(list(MACHINE_TYPES) + [MEAN_ROW, HMEAN_ROW])}
    out["_o"] = out["machine_type"].map(lambda t: order.get(t, len(MACHINE_TYPES) - 0.5))
    return out.sort_values(["dataset", "_o", "metric"]).drop(columns="_o").reset_index(drop=True)
