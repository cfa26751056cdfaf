"""Score fusion: several detectors' per-clip scores of one machine (type, ID) made comparable and
combined into one score.

Each method's scores live on their own scale (a squared reconstruction error in dB², a
surprisal -log p in nats), so they are first *standardised* with statistics of **held-out
normal training clips only** (clips the model did not train on, never test clips), per
(machine type, ID):

- ``zlog`` (the default): ``(log s - mean) / sd`` of the held-out clips' ``log s``. The scores
  fused here are positive magnitudes (errors, surprisals) whose spread is multiplicative, so
  their logs are closer to Gaussian; a positive rescaling of a method changes nothing.
  ``s`` is floored at :data:`LOG_FLOOR` (``neglogp`` keeps confident clips down to ~1e-308).
- ``z``: the same on the raw score.
- ``rank``: the fraction of held-out clips scoring below (ties count half): in [0, 1];
  coarse with few held-out clips (every clip above them all ties at 1).

Then a fixed combination, no weight learnt: ``max`` (the default) or ``mean`` of the
standardised scores. The max suits parts that fail on different machines: one part's strong
evidence is kept, where a mean dilutes it with the others' noise; parts that rank clips alike
(:func:`agreement`) add little but a second draw of noise, so fuse one per family. Within one ID
the ranking of the fused mean depends only on the ratio of the methods' held-out spreads, so the
held-out means shift an ID's scores but not its AUC; the max depends on both.

A :class:`Standardiser` (method, transform, statistics per (type, ID)) is saved as a small JSON
beside the model's checkpoint (:func:`standardiser_path`, written atomically), so that
``asdlib score --model A --model B`` standardises and fuses new clips on the stored scale.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.errors import AsdlibError
from ..core.utils import atomic_write_text

TRANSFORMS = ("zlog", "z", "rank")
COMBINATIONS = ("max", "mean")
LOG_FLOOR = 1e-300
FORMAT = 1


class FusionError(AsdlibError):
    """Scores or statistics that cannot be standardised or fused (the message says which and why)."""


def machine_key(machine_type: str, machine_id: str) -> str:
    return f"{machine_type}/{machine_id}"


def standardiser_path(checkpoint: str | os.PathLike, score: str) -> Path:
    """``<checkpoint stem>.<score>.fusion.json`` beside the checkpoint (``score``: the scorer, or ``mse``)."""
    p = Path(checkpoint)
    return p.with_name(f"{p.stem}.{score}.fusion.json")


def _values(scores, transform: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not np.isfinite(s).all():
        raise FusionError(f"{int((~np.isfinite(s)).sum())} non-finite score(s)")
    if transform == "zlog":
        if (s < 0).any():
            raise FusionError(f"transform 'zlog' needs non-negative scores, got a minimum of {s.min():.6g}")
        return np.log(np.maximum(s, LOG_FLOOR))
    return s


@dataclass
class Standardiser:
    """One method's standardisation: ``stats[machine_key]`` holds ``n``, ``mean`` and ``sd`` (z,
    zlog) or the sorted ``reference`` scores (rank) of that machine's held-out normal clips."""

    method: str
    transform: str = "zlog"
    stats: dict[str, dict] = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # free-form: checkpoint, held-out clips, feature settings

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise FusionError(f"unknown transform {self.transform!r}; choose from {', '.join(TRANSFORMS)}")

    def add(self, machine_type: str, machine_id: str, heldout_scores) -> Standardiser:
        """Fit the statistics of one machine from its held-out normal clips' scores (at least 2)."""
        v = _values(heldout_scores, self.transform)
        key = machine_key(machine_type, machine_id)
        if len(v) < 2:
            raise FusionError(f"{self.method} {key}: {len(v)} held-out clip(s); at least 2 are needed")
        if self.transform == "rank":
            self.stats[key] = {"n": int(len(v)), "reference": np.sort(v).tolist()}
            return self
        sd = float(np.std(v, ddof=1))
        if not sd > 0:
            raise FusionError(f"{self.method} {key}: the held-out clips' scores are all equal; no spread to scale by")
        self.stats[key] = {"n": int(len(v)), "mean": float(np.mean(v)), "sd": sd}
        return self

    def __call__(self, scores, machine_type: str, machine_id: str) -> np.ndarray:
        """The standardised scores of clips of one machine."""
        key = machine_key(machine_type, machine_id)
        if key not in self.stats:
            raise FusionError(f"{self.method} has no held-out statistics for {key}; it has {', '.join(self.stats) or 'none'}")
        v, st = _values(scores, self.transform), self.stats[key]
        if self.transform == "rank":
            ref = np.asarray(st["reference"])
            below = np.searchsorted(ref, v, side="left")
            upto = np.searchsorted(ref, v, side="right")
            return (below + upto) / (2.0 * len(ref))
        return (v - st["mean"]) / st["sd"]

    def to_dict(self) -> dict:
        return {"format": FORMAT, "method": self.method, "transform": self.transform,
                "log_floor": LOG_FLOOR if self.transform == "zlog" else None, "stats": self.stats, "info": self.info}

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "standardiser") -> Standardiser:
        try:
            st = cls(method=str(d["method"]), transform=str(d["transform"]), stats=dict(d["stats"]),
                     info=dict(d.get("info") or {}))
        except (KeyError, TypeError, ValueError) as e:
            raise FusionError(f"{source} is not a fusion standardiser ({type(e).__name__}: {e})") from None
        for key, s in st.stats.items():
            need = ("reference",) if st.transform == "rank" else ("mean", "sd")
            if not isinstance(s, Mapping) or any(k not in s for k in need):
                raise FusionError(f"{source}: statistics of {key} lack {', '.join(need)}")
            if st.transform != "rank" and not (math.isfinite(s["mean"]) and s["sd"] > 0):
                raise FusionError(f"{source}: statistics of {key} are not finite with a positive sd: {s}")
        return st

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Standardiser:
        path = Path(path)
        if not path.is_file():
            raise FusionError(f"no fusion statistics at {path}: fit them on held-out normal clips "
                              "(asdlib.report.fusion.Standardiser.add, then .save) first")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FusionError(f"cannot read fusion statistics {path}: {e}") from None
        return cls.from_dict(d, source=str(path))


def fit_standardiser(method: str, heldout: pd.DataFrame, transform: str = "zlog") -> Standardiser:
    """A :class:`Standardiser` of every (machine_type, machine_id) in ``heldout`` (columns
    machine_type, machine_id, score): pass held-out normal training clips only."""
    st = Standardiser(method, transform)
    for (t, m), g in heldout.groupby(["machine_type", "machine_id"], sort=True):
        st.add(str(t), str(m), g["score"].to_numpy())
    return st


def combine(standardised: Sequence[np.ndarray], how: str = "max") -> np.ndarray:
    """The fixed combination of standardised scores ``[(N,), ...]`` (one per method)."""
    if how not in COMBINATIONS:
        raise FusionError(f"unknown combination {how!r}; choose from {', '.join(COMBINATIONS)}")
    if not standardised:
        raise FusionError("nothing to fuse")
    z = np.stack([np.asarray(s, dtype=np.float64).reshape(-1) for s in standardised])  # (methods, N)
    return z.mean(axis=0) if how == "mean" else z.max(axis=0)


def agreement(scores: pd.DataFrame, methods: Sequence[str], part: str = "heldout") -> pd.DataFrame:
    """How alike the ``methods`` rank the same clips: Spearman's rho of every pair over the clips
    of ``part`` (default: the held-out normal clips), per (machine_type, machine_id).

    ``scores`` is long (columns method, part, machine_type, machine_id, file, score). No label is
    read, so test clips may be used as well without choosing anything by test labels. Two parts
    that rank clips alike (rho near 1) are one detector's evidence twice: a mean weights it
    double, a max gives its noise two draws. Returns one row per ID and pair: machine_type,
    machine_id, part, a, b, n (clips both scored), rho (NaN with fewer than 3 clips or no spread).
    """
    s = scores[scores["part"] == part]
    twice = s.duplicated(["method", "machine_type", "machine_id", "file"])
    if twice.any():
        raise FusionError(f"a method scores a {part} clip twice: "
                          f"{s[twice].iloc[0][['method', 'machine_type', 'machine_id', 'file']].to_dict()}")
    wide = s.pivot_table(index=["machine_type", "machine_id", "file"], columns="method", values="score",
                         aggfunc="first")
    missing = [m for m in methods if m not in wide.columns]
    if missing:
        raise FusionError(f"no {part} scores of {', '.join(map(repr, missing))}; have {sorted(wide.columns)}")
    rows = []
    for (t, mid), g in wide.groupby(level=["machine_type", "machine_id"], sort=True):
        ranks = g[list(methods)].dropna().rank()
        for i, a in enumerate(methods):
            for b in methods[i + 1:]:
                ra, rb = ranks[a], ranks[b]
                ok = len(ranks) >= 3 and ra.std() > 0 and rb.std() > 0
                rows.append({"machine_type": t, "machine_id": mid, "part": part, "a": a, "b": b,
                             "n": int(len(ranks)), "rho": float(np.corrcoef(ra, rb)[0, 1]) if ok else float("nan")})
    return pd.DataFrame(rows, columns=["machine_type", "machine_id", "part", "a", "b", "n", "rho"])


def fuse_frame(scores: pd.DataFrame, methods: Sequence[str], transform: str = "zlog", how: str = "max",
               fit_part: str = "heldout") -> pd.DataFrame:
    """Fuse the per-clip ``scores`` of ``methods`` (long: columns method, part, machine_type,
    machine_id, file, score and any more clip columns, one run of each method).

    Standardisers are fitted on the rows whose ``part`` is ``fit_part`` only; every other row is
    standardised and fused. Returns one row per fused clip: its clip columns and ``score`` (the
    fused score), ``z_<method>`` for each part. Clips must be scored by every method (matched by
    part, type, ID and file); an unmatched clip is an error naming it.
    """
    if len(set(methods)) != len(methods):
        raise FusionError(f"a method is named twice in {list(methods)}")
    keys = ["part", "machine_type", "machine_id", "file"]
    merged = None
    for m in methods:
        s = scores[scores["method"] == m]
        if s.empty:
            raise FusionError(f"no scores of method {m!r}; have {sorted(set(scores['method']))}")
        if s.duplicated(keys).any():
            raise FusionError(f"method {m!r} scores a clip twice: {s[s.duplicated(keys)].iloc[0][keys].to_dict()}")
        st = fit_standardiser(m, s[s["part"] == fit_part], transform)
        rest = s[s["part"] != fit_part]
        z = np.empty(len(rest))
        for (t, mid), idx in rest.groupby(["machine_type", "machine_id"]).indices.items():
            z[idx] = st(rest["score"].to_numpy()[idx], str(t), str(mid))
        part = rest.drop(columns=["method", "score"]).assign(**{f"z_{m}": z})
        if merged is None:
            merged = part
            continue
        n = len(merged)
        merged = merged.merge(part[keys + [f"z_{m}"]], on=keys, how="outer", indicator=True)
        if (merged["_merge"] != "both").any() or len(merged) != n:
            bad = merged[merged["_merge"] != "both"].iloc[0][keys].to_dict()
            raise FusionError(f"clip {bad} is not scored by every method of {list(methods)}")
        merged = merged.drop(columns="_merge")
    zcols = [f"z_{m}" for m in methods]
    merged["score"] = combine([merged[c].to_numpy() for c in zcols], how)
    return merged.reset_index(drop=True)
