"""The DCASE2020 Task 2 metrics: AUC and pAUC per machine ID, means per type and overall.

Per ID the official evaluator calls ``sklearn.metrics.roc_auc_score(y, s)`` and
``roc_auc_score(y, s, max_fpr=0.1)``; the latter is McClish-standardised, so 0.5 is chance
for pAUC as well. :func:`auc_pauc` calls exactly those, so numbers here are comparable with
every DCASE2020 paper. Values are fractions in [0, 1]; only rendered tables use percent.

:func:`bootstrap_ci` needs thousands of AUC/pAUC evaluations; calling sklearn in a loop
would take minutes, so it uses :func:`auc_pauc_batch`, a vectorised form of the same ROC
(piecewise-linear through tied scores, linear interpolation at ``max_fpr``) that the tests
check against sklearn.
"""
from __future__ import annotations

from typing import Iterable

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


def _check_scores(scores: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"scores frame lacks columns {missing}; needs {list(SCORE_COLUMNS)}")
    labelled = scores[scores["label"].astype(int) != -1].copy()
    labelled["label"] = labelled["label"].astype(int)
    labelled["machine_id"] = labelled["machine_id"].astype(str).str.zfill(2)  # an ID read as int 1 is '01'
    return labelled


def evaluate(scores: pd.DataFrame, max_fpr: float = MAX_FPR) -> pd.DataFrame:
    """Per-ID AUC and pAUC in long form (one row per ID and metric).

    ``scores`` has one row per clip. Clips labelled -1 (unknown) are left out, so an ID
    without labels simply yields no rows; an ID with only one class raises, since a
    silently missing ID would bias the type mean.
    """
    rows = []
    for (ds, mt, mid), g in _check_scores(scores).groupby(["dataset", "machine_type", "machine_id"], sort=True):
        try:
            auc, pauc = auc_pauc(g["label"].to_numpy(), g["score"].to_numpy(), max_fpr)
        except ValueError as e:
            raise ValueError(f"{ds} {mt} id {mid}: {e}") from None
        n1 = int(g["label"].sum())
        for metric, value in (("AUC", auc), ("pAUC", pauc)):
            rows.append((ds, mt, mid, metric, value, len(g) - n1, n1))
    return pd.DataFrame(rows, columns=list(PER_ID_COLUMNS))


def _type_order(types: Iterable[str]) -> list[str]:
    known = [t for t in MACHINE_TYPES if t in set(types)]
    return known + sorted(set(types) - set(known))


def type_means(per_id: pd.DataFrame) -> pd.DataFrame:
    """Arithmetic mean over the IDs of each type, per dataset and metric (the DCASE rule)."""
    keys = ["dataset", "machine_type", "metric"]
    out = per_id.groupby(keys, sort=False)["value"].agg(["mean", "size"]).reset_index()
    out = out.rename(columns={"mean": "value", "size": "n_ids"})
    out["_o"] = out["machine_type"].map({t: k for k, t in enumerate(_type_order(out["machine_type"]))})
    return out.sort_values(["dataset", "_o", "metric"]).drop(columns="_o").reset_index(drop=True)


def harmonic_mean(values) -> float:
    """Harmonic mean as ``scipy.stats.hmean``; values must be finite and > 0."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        raise ValueError("harmonic mean of no values")
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError(f"harmonic mean needs finite values > 0, got {v.tolist()}")
    return float(stats.hmean(v))


def overall_means(type_means_df: pd.DataFrame) -> pd.DataFrame:
    """Rows 'Mean' and 'Harmonic Mean' across the types present, per dataset and metric."""
    rows = []
    for (ds, metric), g in type_means_df.groupby(["dataset", "metric"], sort=True):
        v = g["value"].to_numpy(dtype=float)
        rows.append((ds, MEAN_ROW, metric, float(v.mean()), len(v)))
        rows.append((ds, HMEAN_ROW, metric, harmonic_mean(v), len(v)))
    return pd.DataFrame(rows, columns=["dataset", "row", "metric", "value", "n_types"])


def bootstrap_ci(scores: pd.DataFrame, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                 max_fpr: float = MAX_FPR) -> pd.DataFrame:
    """Percentile confidence intervals of the type-mean AUC/pAUC (and of the overall means).

    Clips are resampled with replacement within each ID and within each label, so every
    resample keeps the ID's numbers of normal and anomalous clips (stratified bootstrap):
    the interval reflects which clips happened to be in the test set, not class balance.
    Returns dataset, machine_type (a type, 'Mean' or 'Harmonic Mean'), metric, value (the
    point estimate on the original clips), ci_low, ci_high, n_boot.
    """
    if n_boot < 1 or not (0 < alpha < 1):
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got {n_boot}, {alpha}")
    rng = np.random.default_rng(seed)
    labelled = _check_scores(scores)
    boots: dict[tuple[str, str, str], list[np.ndarray]] = {}
    points: dict[tuple[str, str, str], list[float]] = {}
    for (ds, mt, mid), g in labelled.groupby(["dataset", "machine_type", "machine_id"], sort=True):
        s, y = g["score"].to_numpy(float), g["label"].to_numpy()
        neg, pos = s[y == LABEL_NORMAL], s[y == LABEL_ANOMALY]
        try:
            point = auc_pauc(y, s, max_fpr)
        except ValueError as e:
            raise ValueError(f"{ds} {mt} id {mid}: {e}") from None
        neg_b = neg[rng.integers(0, neg.size, (n_boot, neg.size))]
        pos_b = pos[rng.integers(0, pos.size, (n_boot, pos.size))]
        for metric, p, b in zip(METRICS, point, auc_pauc_batch(neg_b, pos_b, max_fpr)):
            boots.setdefault((ds, mt, metric), []).append(b)
            points.setdefault((ds, mt, metric), []).append(p)
    per_type = {k: (float(np.mean(points[k])), np.mean(boots[k], axis=0)) for k in boots}
    for ds, metric in sorted({(k[0], k[2]) for k in per_type}):
        keys = [k for k in per_type if k[0] == ds and k[2] == metric]
        pts = np.array([per_type[k][0] for k in keys])
        mat = np.stack([per_type[k][1] for k in keys])  # (n_types, n_boot)
        per_type[(ds, MEAN_ROW, metric)] = (float(pts.mean()), mat.mean(axis=0))
        per_type[(ds, HMEAN_ROW, metric)] = (float(stats.hmean(pts)), stats.hmean(np.maximum(mat, 1e-12), axis=0))
    rows = [(ds, mt, metric, p, *np.quantile(b, [alpha / 2, 1 - alpha / 2]), n_boot)
            for (ds, mt, metric), (p, b) in per_type.items()]
    out = pd.DataFrame(rows, columns=["dataset", "machine_type", "metric", "value", "ci_low", "ci_high", "n_boot"])
    order = {t: k for k, t in enumerate(list(MACHINE_TYPES) + [MEAN_ROW, HMEAN_ROW])}
    out["_o"] = out["machine_type"].map(lambda t: order.get(t, len(MACHINE_TYPES) - 0.5))
    return out.sort_values(["dataset", "_o", "metric"]).drop(columns="_o").reset_index(drop=True)
