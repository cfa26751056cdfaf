"""Decision thresholds: anomaly score -> normal (0) / anomalous (1), per machine type and ID.

The rule is the DCASE2021 Task 2 baseline's: fit a gamma distribution to the anomaly scores
of normal clips (``scipy.stats.gamma.fit``) and take its 0.9 quantile, i.e. about 10 % of
normal clips are expected above it. Where the fit fails or returns a non-finite quantile
(too few clips, constant or degenerate scores), or where the fitted gamma does not describe
the scores (a Kolmogorov-Smirnov test rejects it at ``GOF_LEVEL`` = 1 %), the empirical 0.9
quantile is used instead, and the method is recorded next to the value. The misfit check
matters for the ID classifier's scores: ``1 - p`` of a confident classifier spans several
orders of magnitude (1e-7 .. 1e-1), a gamma fitted to that puts its 0.9 quantile where only
2-3 % of normal clips lie above it, not the intended 10 %.

Which normal clips: :func:`calibrate` takes whatever it is given; the ``train`` command
passes the held-out validation share of the training clips (``val_index`` in the
checkpoint), because the scores of clips the classifier was trained on are optimistic
(1 - p is near 0 for them) and would put the threshold too low.

Thresholds live in a JSON sidecar beside the checkpoint (``<ckpt>.thresholds.json``), one
entry per scorer, so the checkpoint stays byte-identical and each scorer has its own.

A threshold is only meaningful on the scale of the scorer it was calibrated with. Scorers
that fit on embeddings (cosine, knn, gmm, lof, mahalanobis) depend on *what* they were fitted
on: Mahalanobis shares one covariance over all the model's IDs, so refitted on one ID's clips
its scores land on another scale (a median of 1.46 against 66.6 in a 3-ID model). So
:func:`calibrate` also stores what the scorer was fitted on, the fitting clips' embeddings
and classes, in ``<ckpt>.<scorer>.fit.npz`` (its sha256 in the thresholds entry), and
:func:`load_fitted_scorer` refits exactly that scorer from it (the fits are deterministic),
so that ``asdlib score`` scores on the scale its thresholds were calibrated on.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import AsdlibError, CacheError
from ..core.utils import atomic_write, atomic_write_text
from .checkpoint import load_checkpoint
from .inference import Classifier, embed
from .scorers import Scorer, make_scorer

QUANTILE = 0.9
GOF_LEVEL = 0.01  # a gamma fit whose Kolmogorov-Smirnov p-value is below this is not used
RULE = ("gamma fit to normal scores (scipy.stats.gamma.fit), 0.9 quantile (DCASE2021 baseline); empirical quantile "
        "if the fit fails or a Kolmogorov-Smirnov test rejects it (p < 0.01)")


def gamma_threshold(scores, q: float = QUANTILE) -> tuple[float, str]:
    """``(threshold, method)``: the ``q`` quantile of a gamma fitted to ``scores``, or the empirical
    one where the fit fails or does not describe the scores (see the module doc)."""
    from scipy import stats

    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        raise AsdlibError("no finite normal scores to calibrate a threshold on")
    if s.size >= 3 and np.ptp(s) > 0:
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                a, loc, scale = stats.gamma.fit(s)
                thr = float(stats.gamma.ppf(q, a, loc=loc, scale=scale))
                fits = stats.kstest(s, "gamma", args=(a, loc, scale)).pvalue >= GOF_LEVEL
            if np.isfinite(thr) and fits:
                return thr, "gamma"
        except (RuntimeError, ValueError, FloatingPointError):
            pass
    return float(np.quantile(s, q)), "empirical"


def class_of(meta: pd.DataFrame, class_names: list[str]) -> np.ndarray:
    """Each row's class index in a model (``machine_type``/``machine_id`` columns); clear error if absent."""
    lookup = {n: i for i, n in enumerate(class_names)}
    keys = (meta["machine_type"].astype(str) + "/" + meta["machine_id"].astype(str)).tolist()
    missing = sorted(set(keys) - set(lookup))
    if missing:
        raise AsdlibError(f"machine type/ID {', '.join(missing)} not among the model's classes "
                          f"({', '.join(class_names)})")
    return np.array([lookup[k] for k in keys], dtype=np.int64)


def thresholds_path(checkpoint: str | os.PathLike) -> Path:
    p = Path(checkpoint)
    return p.with_name(p.stem + ".thresholds.json")


def scorer_fit_path(checkpoint: str | os.PathLike, scorer: str) -> Path:
    """Where :func:`calibrate` stores what a fitting scorer was fitted on: ``<ckpt>.<scorer>.fit.npz``."""
    p = Path(checkpoint)
    return p.with_name(f"{p.stem}.{scorer}.fit.npz")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _save_fit(path: Path, emb: np.ndarray, classes: np.ndarray, class_names: list[str]) -> dict:
    """Write the fitting embeddings ``(N, D)`` float32 and classes ``(N,)`` (no pickles); their record."""
    with atomic_write(path, "wb") as f:
        np.savez(f, emb=np.asarray(emb, dtype=np.float32), classes=np.asarray(classes, dtype=np.int64),
                 class_names=np.asarray(class_names, dtype=str))
    present = sorted({class_names[c] for c in np.unique(classes)})
    return {"file": path.name, "sha256": _sha256(path), "n": int(len(classes)), "classes": present}


def calibrate(
    checkpoint: str | os.PathLike,
    features,
    meta: pd.DataFrame,
    scorer: str = "softmax",
    q: float = QUANTILE,
    fit_features=None,
    fit_meta: pd.DataFrame | None = None,
    device: str = "cpu",
    write: bool = True,
) -> dict:
    """Per-(type, ID) thresholds from the scores of normal clips ``features`` ``(N, n_mels, T)``.

    ``meta`` gives each clip's machine_type and machine_id. Scorers that need fitting
    (cosine, knn, ...) are fitted on ``fit_features``/``fit_meta``: normal training clips other
    than the calibration clips, required for them (a scorer fitted on the clips it calibrates
    on scores them too low: kNN finds each clip at distance 0 from itself, so the threshold
    would flag far more than 10 % of new normal clips). The clips are run through the checkpoint with
    its own crop and batch size (:func:`asdlib.classify.inference.embed`). Returns (and with
    ``write`` merges into the sidecar) ``{"scorer", "quantile", "rule", "thresholds": {"type/id": {...}}}``;
    with ``write`` a fitting scorer's fit is stored too (``"fit"``, see :func:`load_fitted_scorer`).
    """
    sc = make_scorer(scorer)
    if sc.needs_fit and (fit_features is None or fit_meta is None):
        raise AsdlibError(f"scorer {scorer!r} fits on normal training clips: pass fit_features and fit_meta, "
                          "clips other than the calibration clips (calibrate_run uses the run's training rows)")
    clf = Classifier.load(checkpoint, device)
    names = clf.class_names
    cls = class_of(meta, names)
    fit_emb = fit_cls = None
    if sc.needs_fit:
        fit_cls = class_of(fit_meta, names)
        fit_emb = embed(clf, fit_features).emb  # (N_fit, D) float32: exactly what is stored below
        sc.fit(fit_emb, fit_cls)
    out = embed(clf, features)
    scores = sc.score(out.emb, out.logits, cls)
    table = {}
    for c in np.unique(cls):
        s = scores[cls == c]
        thr, method = gamma_threshold(s, q)
        table[names[c]] = {"threshold": thr, "method": method, "n": int(s.size),
                           "normal_above": float(np.mean(s > thr))}
    result = {"scorer": scorer, "quantile": q, "rule": RULE, "checkpoint": Path(checkpoint).name, "thresholds": table}
    if write:
        if sc.needs_fit:
            result["fit"] = _save_fit(scorer_fit_path(checkpoint, scorer), fit_emb, fit_cls, names)
        _write_sidecar(checkpoint, scorer, result)
    return result


def _write_sidecar(checkpoint: str | os.PathLike, scorer: str, result: dict) -> None:
    """Merge ``result`` (one scorer's calibration) into the checkpoint's thresholds file, atomically."""
    path = thresholds_path(checkpoint)
    stored = _read_sidecar(path) if path.exists() else {}
    stored[scorer] = result
    atomic_write_text(path, json.dumps(stored, indent=2))


def _copy_calibration(source: str | os.PathLike, checkpoint: str | os.PathLike, scorer: str, result: dict) -> dict:
    """``source``'s calibration ``result`` as ``checkpoint``'s: both hold the weights of one epoch, so the
    scores, the thresholds and a fitting scorer's stored fit are the same (the fit file is copied)."""
    result = dict(result, checkpoint=Path(checkpoint).name)
    if "fit" in result:
        dst = scorer_fit_path(checkpoint, scorer)
        with open(scorer_fit_path(source, scorer), "rb") as src, atomic_write(dst, "wb") as f:
            shutil.copyfileobj(src, f)
        result["fit"] = dict(result["fit"], file=dst.name)  # same bytes: same sha256
    _write_sidecar(checkpoint, scorer, result)
    return result


def load_fitted_scorer(checkpoint: str | os.PathLike, scorer: str = "softmax") -> Scorer:
    """The scorer whose thresholds were calibrated for ``checkpoint``, fitted as it was then.

    Scorers that need no fitting come fresh. The others are refitted on the embeddings and
    classes :func:`calibrate` stored beside the checkpoint (checked against the sha256 in the
    thresholds file): the same data and a deterministic fit give the same scorer, so new clips
    are scored on the scale of the thresholds. :class:`CacheError` when they are missing.
    """
    sc = make_scorer(scorer)
    if not sc.needs_fit:
        return sc
    path = thresholds_path(checkpoint)
    entry = _read_sidecar(path).get(scorer) if path.exists() else None
    fit_path = scorer_fit_path(checkpoint, scorer)
    fix = (f"calibrate {scorer!r} again (asdlib.classify.threshold.calibrate with the training clips as "
           "fit_features, or `asdlib train --scorer`)")
    if entry is None or "fit" not in entry or not fit_path.is_file():
        raise CacheError(f"{checkpoint}: no stored fit of the {scorer!r} scorer beside it (expected {fit_path} and its "
                         f"entry in {path}); its thresholds need the scorer fitted as at calibration: {fix}")
    if _sha256(fit_path) != entry["fit"]["sha256"]:
        raise CacheError(f"{fit_path} is not the file the {scorer!r} thresholds in {path} were calibrated with; {fix}")
    try:
        with np.load(fit_path, allow_pickle=False) as z:
            emb, classes = z["emb"], z["classes"]
    except (OSError, ValueError, KeyError) as e:
        raise CacheError(f"{fit_path} cannot be read: {e}; {fix}") from e
    return sc.fit(emb, classes)


def _read_sidecar(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CacheError(f"threshold file {path} cannot be read: {e}") from e


def load_thresholds(checkpoint: str | os.PathLike, scorer: str = "softmax") -> dict[str, float]:
    """``{"type/id": threshold}`` calibrated for ``scorer``; :class:`CacheError` when absent."""
    path = thresholds_path(checkpoint)
    if not path.exists():
        raise CacheError(f"no thresholds beside {checkpoint} (expected {path}); calibrate with "
                         "asdlib.classify.threshold.calibrate or train with `asdlib train`")
    stored = _read_sidecar(path)
    if scorer not in stored:
        raise CacheError(f"{path} has thresholds for {', '.join(stored) or 'no scorer'}, not for {scorer!r}")
    return {k: float(v["threshold"]) for k, v in stored[scorer]["thresholds"].items()}


def calibrate_run(result, features, meta: pd.DataFrame, scorer: str = "softmax", device: str = "cpu",
                  skip_existing: bool = False) -> dict[str, dict]:
    """Calibrate every checkpoint of a training run (``best_*`` and ``last``) on its held-out clips.

    ``features``/``meta`` are the run's training arrays, in the order :func:`asdlib.classify.train.fit`
    saw them; the validation rows (``val_index`` in the checkpoint) were never trained on, so
    their scores are honest normal scores. Embedding scorers fit on the other rows. Returns
    ``{label: calibration}``, empty when the run held out no clips.
    """
    state = load_checkpoint(result.last_path)
    val_index = state["val_index"].numpy()
    if not len(val_index):
        return {}
    fit_idx = np.setdiff1d(np.arange(len(meta)), val_index)
    # label -> (checkpoint, the epoch whose weights it holds); with few evaluations the best
    # checkpoints are often the last epoch's, and one epoch's weights are calibrated only once
    targets = ({f"best_{k}": (b.path, int(b.epoch)) for k, b in result.best.items()}
               | {"last": (result.last_path, int(state["epoch"]))})
    out, done = {}, {}  # done: epoch -> (checkpoint, calibration) of this call
    for label, (ckpt, epoch) in targets.items():
        path = thresholds_path(ckpt)
        if skip_existing and path.exists() and scorer in _read_sidecar(path) and (
                not make_scorer(scorer).needs_fit or scorer_fit_path(ckpt, scorer).is_file()):
            continue
        if epoch in done:
            source, calibration = done[epoch]
            out[label] = _copy_calibration(source, ckpt, scorer, calibration)
            continue
        out[label] = calibrate(ckpt, np.asarray(features[val_index]), meta.iloc[val_index], scorer=scorer,
                               fit_features=np.asarray(features[fit_idx]), fit_meta=meta.iloc[fit_idx], device=device)
        done[epoch] = (ckpt, out[label])
    return out
