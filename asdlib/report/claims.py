"""The study's claims ("E2 beats E1", "ArcFace beats softmax", ...) tested on our scores.

A claim says that experiment ``better`` beats experiment ``worse`` on the development test
set. Its statistic is the difference (better minus worse) of the **dev Mean AUC** (and of
the Mean pAUC): the mean over machine types of the per-type mean of per-ID AUC, as in every
table of the study, averaged over seeds. The study's own difference is taken from its
printed Mean rows (:mod:`asdlib.report.reference`).

**The interval** (:func:`evaluate_claims`) is a paired, two-level percentile bootstrap that
accounts for both sources of chance in our figure, which test clips there are and which
seeds were trained:

* *Clips, paired.* The experiments are scored on the same test clips, so each replicate
  draws one resample of clips, with replacement within each (machine ID, label) group
  (every ID keeps its numbers of normal and anomalous clips, as in
  :func:`~asdlib.report.metrics.bootstrap_ci`), and uses the **same clip indices for both
  experiments**. What one experiment gains from an easy resample, the other gains too,
  so the interval measures the difference, not the spread of each side.
* *Seeds.* Each replicate also resamples each experiment's seeds with replacement (as
  many as it has). When both experiments have the same number of seeds, the seeds are
  **paired by index** (sorted seed values; runs with the same seed share initialisation
  and data order, so their difference is less noisy, and pairing independent runs is
  still valid because the pairs are then independent draws); otherwise each side's seeds
  are drawn independently.
* *Few seeds.* Resampling n seeds with replacement shrinks the seed part of the variance
  by (n - 1) / n (a third with 3 seeds); each replicate's seed deviation (the drawn seeds'
  mean minus all seeds' mean on the same clips) is therefore scaled by sqrt(n / (n - 1))
  (:func:`seed_scale`), which restores the unbiased s^2 / n of the mean over seeds.
* *Clips are crossed with seeds, not nested in them.* Every seed is scored on the same
  test set, so one clip resample per replicate is applied to every drawn seed. Drawing a
  fresh clip resample per seed would let the test-set noise average out over seeds,
  which it does not: the test set is one draw whatever the number of seeds.

With one seed per experiment the interval covers the test clips only (the ``note`` says
so); seed-to-seed variation then is not in it.

**The verdict** compares the interval with 0 on the side the study claims: entirely above
0 (better minus worse > 0): "holds"; entirely below: "reversed"; containing 0: "not
resolved at this size" (the data, clips and seeds cannot tell; it is not evidence that the
two are equal). An experiment without scores gives "not run", so a partial run still
renders.

Values are fractions, as everywhere in :mod:`asdlib.report`; :func:`claims_table` renders
percentage points.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.machines import LABEL_ANOMALY, LABEL_NORMAL
from .metrics import MAX_FPR, METRICS, auc_pauc, auc_pauc_batch
from .reference import MEAN_ROW, reference_value

HOLDS, REVERSED, UNRESOLVED, NOT_RUN = "holds", "reversed", "not resolved at this size", "not run"
VERDICTS = (HOLDS, REVERSED, UNRESOLVED, NOT_RUN)
CLIP_KEY = ("machine_type", "machine_id", "file")


@dataclass(frozen=True)
class Claim:
    """``better`` beats ``worse`` (experiment names of :mod:`asdlib.study.registry`).

    ``better_reference`` / ``worse_reference``: keys of the study's figures in
    :mod:`asdlib.report.reference` (default: the experiment's name).
    """

    name: str
    better: str
    worse: str
    text: str
    better_reference: str | None = None
    worse_reference: str | None = None

    @property
    def references(self) -> tuple[str, str]:
        return self.better_reference or self.better, self.worse_reference or self.worse

    def study_difference(self, metric: str, dataset: str = "dev") -> float:
        """The study's difference of the Mean (better minus worse) as a fraction; NaN where it gives no figure."""
        b, w = self.references
        try:
            return reference_value(b, dataset, MEAN_ROW, metric) - reference_value(w, dataset, MEAN_ROW, metric)
        except KeyError:
            return float("nan")


CLAIMS: tuple[Claim, ...] = (
    Claim("E2 > E1", "integrated", "individual", "one integrated 41-ID model beats six individual models"),
    Claim("LS 0.05 > LS 0", "integrated", "ls0", "label smoothing 0.05 beats none"),
    Claim("ArcFace > softmax", "integrated", "softmax", "ArcFace (IR-ResNet50) beats softmax (ResNet50)"),
    Claim("ArcFace > CosFace", "integrated", "cosface", "ArcFace beats CosFace"),
    Claim("ArcFace > focal", "integrated", "focal", "ArcFace beats focal loss"),
    Claim("E5 > E2", "transfer", "integrated", "fine-tuning the classifier per type beats the integrated model"),
    Claim("ID classifier > baseline AE", "integrated", "autoencoder",
          "ID classification beats the DCASE2020 baseline autoencoder", worse_reference="baseline_ae"),
)


def verdict(low: float, high: float) -> str:
    """The plain-words verdict of an interval of (better minus worse)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return NOT_RUN
    if low > 0:
        return HOLDS
    if high < 0:
        return REVERSED
    return UNRESOLVED


def _score_matrix(scores: pd.DataFrame, dataset: str, name: str) -> tuple[pd.DataFrame, pd.Series]:
    """Clips x seeds score matrix (index CLIP_KEY, sorted) and the clips' labels, of one dataset."""
    need = ["dataset", *CLIP_KEY, "label", "score"]
    missing = [c for c in need if c not in scores.columns]
    if missing:
        raise ValueError(f"scores of {name!r} lack columns {missing}; need {need} (and optionally seed)")
    s = scores[scores["dataset"] == dataset]
    s = s.assign(seed=s["seed"].astype(int) if "seed" in s.columns else 0, label=s["label"].astype(int),
                 machine_id=s["machine_id"].astype(str).str.zfill(2), score=s["score"].astype(float))
    s = s[s["label"] != -1]
    dup = s.duplicated([*CLIP_KEY, "seed"])
    if dup.any():
        first = s.loc[dup, [*CLIP_KEY, "seed"]].iloc[0].tolist()
        raise ValueError(f"scores of {name!r} hold {int(dup.sum())} duplicate clips (first: {first})")
    if not np.all(np.isfinite(s["score"].to_numpy())):
        raise ValueError(f"scores of {name!r} hold NaN or infinite scores")
    labels = s.groupby(list(CLIP_KEY))["label"].agg(["min", "max"])
    if (labels["min"] != labels["max"]).any():
        raise ValueError(f"scores of {name!r} give one clip different labels in different seeds")
    wide = s.pivot(index=list(CLIP_KEY), columns="seed", values="score").sort_index()
    return wide, labels["min"].reindex(wide.index)


@dataclass
class _Aligned:
    """Two experiments' scores on their shared clips, per machine ID."""

    types: list[str]  # machine type of each ID
    ids: list[tuple[str, str]]
    y: list[np.ndarray]  # labels per ID (n,)
    better: list[np.ndarray]  # per ID (S_better, n)
    worse: list[np.ndarray]  # per ID (S_worse, n)
    n_clips: int
    dropped: list[str]


def _align(better: pd.DataFrame, worse: pd.DataFrame, names: tuple[str, str], dataset: str) -> _Aligned:
    wb, yb = _score_matrix(better, dataset, names[0])
    ww, yw = _score_matrix(worse, dataset, names[1])
    wb, ww = wb.dropna(), ww.dropna()  # a clip every seed scored
    shared = wb.index.intersection(ww.index).sort_values()
    if (yb.reindex(shared) != yw.reindex(shared)).any():
        raise ValueError(f"{names[0]!r} and {names[1]!r} label some of the same clips differently")
    out = _Aligned([], [], [], [], [], len(shared), [])
    y_all = yb.reindex(shared).to_numpy()
    sb, sw = wb.reindex(shared).to_numpy().T, ww.reindex(shared).to_numpy().T  # (seeds, clips)
    ids = pd.Series(range(len(shared)), index=shared.droplevel("file"))
    for (mt, mid), take in ids.groupby(level=[0, 1], sort=False):
        take = take.to_numpy()
        y = y_all[take]
        if not ((y == LABEL_NORMAL).any() and (y == LABEL_ANOMALY).any()):
            out.dropped.append(f"{mt} {mid}")
            continue
        out.types.append(mt)
        out.ids.append((mt, mid))
        out.y.append(y)
        out.better.append(sb[:, take])
        out.worse.append(sw[:, take])
    return out


def _overall(per_id: np.ndarray, types: list[str]) -> np.ndarray:
    """Mean over types of the per-type mean over IDs; ``per_id`` is (n_ids, ...)."""
    groups = list(dict.fromkeys(types))
    t = np.asarray(types)
    return np.mean([per_id[t == g].mean(axis=0) for g in groups], axis=0)


def _point(a: _Aligned, side: str, max_fpr: float) -> dict[str, float]:
    """Mean over seeds of the overall Mean AUC and pAUC (the DCASE evaluator's numbers)."""
    mats = getattr(a, side)
    vals = np.array([[auc_pauc(y, m[k], max_fpr) for k in range(m.shape[0])] for y, m in zip(a.y, mats)])
    # vals: (n_ids, n_seeds, 2) -> overall per seed -> mean over seeds
    return {metric: float(_overall(vals[:, :, j], a.types).mean()) for j, metric in enumerate(METRICS)}


def seed_scale(n_seeds: int) -> float:
    """The factor on the bootstrap's seed component: sqrt(n / (n - 1)) for n > 1 seeds, 1 for one.

    The mean of n values drawn with replacement from n seeds varies around their mean with
    variance (n - 1) / n * s^2 / n (the plug-in variance), not s^2 / n: with 3 seeds the seed
    part of the variance is a third too small. Scaling each replicate's seed deviation by
    sqrt(n / (n - 1)) restores the unbiased s^2 / n.
    """
    return float(np.sqrt(n_seeds / (n_seeds - 1))) if n_seeds > 1 else 1.0


def _bootstrap(a: _Aligned, n_boot: int, rng: np.random.Generator, max_fpr: float) -> tuple[dict[str, np.ndarray],
                                                                                                bool]:
    """(n_boot,) replicates of better minus worse per metric, and whether seeds were paired.

    A replicate's value of one side is ``all + seed_scale(n) * (drawn - all)``: ``all`` the
    mean over every seed on the replicate's clip resample (the clip component), ``drawn`` the
    mean over the seeds drawn with replacement; the seed deviation is rescaled by
    :func:`seed_scale` (the overall Mean is linear in the per-ID values, so this is the same
    at every level).
    """
    s_b, s_w = a.better[0].shape[0], a.worse[0].shape[0]
    paired = s_b == s_w
    d_b = rng.integers(0, s_b, (n_boot, s_b))
    d_w = d_b if paired else rng.integers(0, s_w, (n_boot, s_w))
    per_id = {side: [] for side in ("better", "worse")}
    for y, mb, mw in zip(a.y, a.better, a.worse):
        neg_i, pos_i = np.flatnonzero(y == LABEL_NORMAL), np.flatnonzero(y == LABEL_ANOMALY)
        neg_idx = neg_i[rng.integers(0, neg_i.size, (n_boot, neg_i.size))]  # one clip resample per replicate,
        pos_idx = pos_i[rng.integers(0, pos_i.size, (n_boot, pos_i.size))]  # shared by both sides and all seeds
        for side, m, d in (("better", mb, d_b), ("worse", mw, d_w)):
            n_seeds = m.shape[0]
            neg = m[:, neg_idx].reshape(-1, neg_i.size)  # (S * n_boot, n_neg): every seed on every resample
            pos = m[:, pos_idx].reshape(-1, pos_i.size)
            vals = np.stack(auc_pauc_batch(neg, pos, max_fpr)).reshape(2, n_seeds, n_boot)
            every = vals.mean(axis=1)  # (2, n_boot)
            drawn = np.take_along_axis(vals.transpose(0, 2, 1), np.broadcast_to(d, (2, *d.shape)), axis=2).mean(axis=2)
            per_id[side].append(every + seed_scale(n_seeds) * (drawn - every))
    diff = _overall(np.stack(per_id["better"]), a.types) - _overall(np.stack(per_id["worse"]), a.types)
    return dict(zip(METRICS, diff)), paired


def _claim_seed(seed: int, claim: Claim) -> np.random.Generator:
    """One generator per claim, so a claim's interval does not depend on which other claims ran."""
    return np.random.default_rng([int(seed), zlib.crc32(claim.name.encode())])


def evaluate_claims(scores: Mapping[str, pd.DataFrame | None], claims: Sequence[Claim] = CLAIMS,
                    n_boot: int = 1000, alpha: float = 0.05, seed: int = 0, dataset: str = "dev",
                    max_fpr: float = MAX_FPR, selections: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Test each claim on per-clip scores; one row per claim (values are fractions).

    ``scores[experiment]``: one row per test clip and seed (dataset, machine_type,
    machine_id, label, file, score, and seed; a frame without ``seed`` is seed 0); a missing
    key or ``None`` makes the claim's verdict "not run". Only clips that every seed of both
    experiments scored are compared. ``selections`` (experiment -> checkpoint rule) only
    labels the rows.

    Columns: claim, text, better, worse, selection, then per metric m (AUC, pAUC):
    ``study_d_<m>`` (the study's difference of the Mean), ``d_<m>`` (ours), ``low_<m>``,
    ``high_<m>`` (the percentile interval), ``verdict_<m>``, ``better_<m>``, ``worse_<m>``
    (our Means); then n_seeds_better, n_seeds_worse, seeds (paired / independent), n_ids,
    n_clips, n_boot, level, note. The verdict of the claim is ``verdict_AUC``.
    """
    if n_boot < 1 or not (0 < alpha < 1):
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got {n_boot}, {alpha}")
    selections = dict(selections or {})
    rows = []
    for claim in claims:
        row: dict = {"claim": claim.name, "text": claim.text, "better": claim.better, "worse": claim.worse,
                     "selection": " / ".join(selections.get(e, "") for e in (claim.better, claim.worse)).strip(" /")}
        for m in METRICS:
            row.update({f"study_d_{m}": claim.study_difference(m, dataset), f"d_{m}": np.nan, f"low_{m}": np.nan,
                        f"high_{m}": np.nan, f"verdict_{m}": NOT_RUN, f"better_{m}": np.nan, f"worse_{m}": np.nan})
        row.update({"n_seeds_better": 0, "n_seeds_worse": 0, "seeds": "", "n_ids": 0, "n_clips": 0,
                    "n_boot": n_boot, "level": 1 - alpha, "note": ""})
        absent = [e for e in (claim.better, claim.worse) if scores.get(e) is None]
        if absent:
            row["note"] = "not run: no scores for " + " and ".join(repr(e) for e in dict.fromkeys(absent))
            rows.append(row)
            continue
        a = _align(scores[claim.better], scores[claim.worse], (claim.better, claim.worse), dataset)
        if not a.ids:
            row["note"] = f"not run: no {dataset} test clips with both labels that both experiments scored"
            rows.append(row)
            continue
        boots, paired = _bootstrap(a, n_boot, _claim_seed(seed, claim), max_fpr)
        pb, pw = _point(a, "better", max_fpr), _point(a, "worse", max_fpr)
        for m in METRICS:
            lo, hi = (float(v) for v in np.quantile(boots[m], [alpha / 2, 1 - alpha / 2]))
            row.update({f"d_{m}": pb[m] - pw[m], f"low_{m}": lo, f"high_{m}": hi, f"verdict_{m}": verdict(lo, hi),
                        f"better_{m}": pb[m], f"worse_{m}": pw[m]})
        s_b, s_w = a.better[0].shape[0], a.worse[0].shape[0]
        notes = []
        if max(s_b, s_w) == 1:
            notes.append("one seed: the interval covers the test clips only")
        if a.dropped:
            notes.append(f"IDs without both labels left out: {', '.join(a.dropped)}")
        row.update({"n_seeds_better": s_b, "n_seeds_worse": s_w, "seeds": "paired" if paired else "independent",
                    "n_ids": len(a.ids), "n_clips": a.n_clips, "note": "; ".join(notes)})
        rows.append(row)
    return pd.DataFrame(rows)


def claims_table(result: pd.DataFrame, metrics: Sequence[str] = METRICS, decimals: int = 2) -> pd.DataFrame:
    """The claims as a readable table: differences and intervals in percentage points, verdicts in words."""
    out = pd.DataFrame(index=pd.Index(result["claim"], name="claim"))
    out["comparison"] = [f"{b} − {w}" for b, w in zip(result["better"], result["worse"])]
    fmt = f"{{:+.{decimals}f}}"
    for m in metrics:
        level = f"{100 * float(result['level'].iloc[0]):g} %" if len(result) else ""
        out[f"Δ {m} (study)"] = (100 * result[f"study_d_{m}"]).round(decimals).to_numpy()
        out[f"Δ {m} (ours)"] = (100 * result[f"d_{m}"]).round(decimals).to_numpy()
        out[f"{m} {level} interval"] = [f"[{fmt.format(100 * lo)}, {fmt.format(100 * hi)}]" if np.isfinite(lo) else "—"
                                        for lo, hi in zip(result[f"low_{m}"], result[f"high_{m}"])]
        out[f"{m} verdict"] = result[f"verdict_{m}"].to_numpy()
    out["seeds"] = [("—" if not p else str(b) if b == w == 1 else f"{b} / {w} {p}") for b, w, p in
                    zip(result["n_seeds_better"], result["n_seeds_worse"], result["seeds"])]
    out["clips"] = result["n_clips"].to_numpy()
    if "selection" in result and result["selection"].astype(bool).any():
        out["selection"] = result["selection"].to_numpy()
    out["note"] = result["note"].to_numpy()
    out.attrs["decimals"] = decimals
    return out


__all__ = ["Claim", "CLAIMS", "HOLDS", "REVERSED", "UNRESOLVED", "NOT_RUN", "VERDICTS", "verdict", "seed_scale",
           "evaluate_claims", "claims_table"]
