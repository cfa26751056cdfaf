"""Descriptive statistics of a dataset for the exploration notebooks (no plotting here)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.machines import SAMPLE_RATE
from ..data.audio import read_wav

LABEL_NAMES = {0: "normal", 1: "anomaly", -1: "unknown"}


def sample_clips(index: pd.DataFrame, per_group: int, seed: int = 0,
                 by: tuple[str, ...] = ("dataset", "machine_type", "part", "label")) -> pd.DataFrame:
    """Up to ``per_group`` clips of each group, the same for a seed (for quick statistics)."""
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for _, g in index.groupby(list(by), sort=True):
        keep.extend(g.index[rng.permutation(len(g))[:per_group]])
    return index.loc[sorted(keep)].reset_index(drop=True)


def clip_stats(index: pd.DataFrame, per_group: int = 8, seed: int = 0) -> pd.DataFrame:
    """Duration, RMS and peak level (dBFS) of a sample of clips of each type, part and label."""
    rows = []
    for r in sample_clips(index, per_group, seed).itertuples(index=False):
        x = read_wav(r.path, allow_silent=True)  # checked to be 16 kHz mono
        rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
        peak = float(np.max(np.abs(x)))
        rows.append({"dataset": r.dataset, "machine_type": r.machine_type, "machine_id": r.machine_id,
                     "part": r.part, "label": LABEL_NAMES[int(r.label)], "file": r.file,
                     "duration_s": len(x) / SAMPLE_RATE,
                     "rms_dbfs": 20 * np.log10(max(rms, 1e-10)), "peak_dbfs": 20 * np.log10(max(peak, 1e-10))})
    return pd.DataFrame(rows)


def pick_examples(index: pd.DataFrame, seed: int = 0) -> dict[str, dict[str, pd.Series]]:
    """One normal and one anomalous labelled test clip per machine type, of the same ID where possible."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, pd.Series]] = {}
    test = index[(index["part"] == "test") & (index["label"] >= 0)]
    for machine_type, g in test.groupby("machine_type", sort=True):
        ids = sorted(set(g.loc[g.label == 0, "machine_id"]) & set(g.loc[g.label == 1, "machine_id"]))
        if not ids:
            continue
        mid = ids[int(rng.integers(len(ids)))]
        pair = {}
        for label, name in ((0, "normal"), (1, "anomaly")):
            rows = g[(g.machine_id == mid) & (g.label == label)]
            pair[name] = rows.iloc[int(rng.integers(len(rows)))]
        out[machine_type] = pair
    return out


def mean_spectra(features: np.ndarray, index: pd.DataFrame, max_clips: int = 64, seed: int = 0) -> pd.DataFrame:
    """Mean log-mel spectrum (dB per mel bin, averaged over time) per (type, ID), from normal clips.

    Long format: machine_type, machine_id, mel_bin, db (mean over clips), db_std (over clips).
    """
    normal = index[index["label"] == 0]
    rows = []
    for (machine_type, machine_id), g in normal.groupby(["machine_type", "machine_id"], sort=True):
        take = g.sample(n=min(max_clips, len(g)), random_state=seed).index.to_numpy()
        per_clip = np.asarray(features[np.sort(take)], dtype=np.float32).mean(axis=2)  # (n, M)
        mu, sd = per_clip.mean(axis=0), per_clip.std(axis=0)
        rows.append(pd.DataFrame({"machine_type": machine_type, "machine_id": machine_id,
                                  "mel_bin": np.arange(len(mu)), "db": mu, "db_std": sd}))
    return pd.concat(rows, ignore_index=True)


def feature_stats(features: np.ndarray, index: pd.DataFrame, chunk: int = 256) -> pd.DataFrame:
    """Per machine type: mean, std, min, max and 1st/99th percentile of the log-mel values (dB)."""
    rows = []
    for machine_type, g in index.groupby("machine_type", sort=True):
        rows_idx = g.index.to_numpy()
        vals = [np.asarray(features[rows_idx[i:i + chunk]], dtype=np.float32).ravel()
                for i in range(0, len(rows_idx), chunk)]
        v = np.concatenate(vals)
        p1, p99 = np.percentile(v, [1, 99])
        rows.append({"machine_type": machine_type, "clips": len(rows_idx), "mean_db": v.mean(), "std_db": v.std(),
                     "min_db": v.min(), "p1_db": p1, "p99_db": p99, "max_db": v.max()})
    return pd.DataFrame(rows).set_index("machine_type")
