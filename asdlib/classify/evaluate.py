"""The AUC/pAUC evaluation used during training, the label-free held-out loss and checkpoint selection.

The training-time AUC/pAUC go the way every table does: :func:`asdlib.report.metrics.evaluate`
per ID, then :func:`~asdlib.report.metrics.type_means` and the 'Mean' row of
:func:`~asdlib.report.metrics.overall_means` (the mean over types of the per-type mean).
IDs with a single class are dropped when an :class:`EvalSet` is built, explicitly and with
a warning (``SINGLE_CLASS_POLICY`` in :mod:`asdlib.report.metrics`); the evaluator itself
would refuse them.

The training loop keeps each eval set's outputs (logits, embeddings) beside every best checkpoint
an eval epoch wrote (``best_<criterion>.outputs.npz``, :func:`save_eval_outputs`), so the study's
final scoring of the same weights on the same clips reads them instead of running the model again
(:func:`load_eval_outputs`; equality checked in ``tests/test_eval_outputs.py``).
"""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..core.utils import atomic_write
from ..report.metrics import MEAN_ROW, evaluate, overall_means, single_class_ids, type_means
from .inference import Classifier, Outputs, embed, score_outputs
from .scorers import Scorer


@dataclass
class EvalSet:
    """Clips to evaluate during training: features ``(N, n_mels, T)`` and one meta row per clip.

    ``meta`` needs the columns machine_type, machine_id, label (0 normal, 1 anomaly; other
    rows, e.g. -1, are ignored) and ``class`` (the clip's own class index in the model).

    IDs whose labelled clips are of one class only have no AUC: they are found here, listed
    in ``dropped_ids`` ("type/id"), announced with a warning and left out of the evaluation
    (their clips are still embedded, so the other clips' batches are what they always were).
    """

    features: object
    meta: pd.DataFrame
    dropped_ids: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        missing = {"machine_type", "machine_id", "label", "class"} - set(self.meta.columns)
        if missing:
            raise ValueError(f"EvalSet.meta lacks columns {sorted(missing)}")
        if len(self.meta) != len(self.features):
            raise ValueError(f"EvalSet has {len(self.features)} feature rows but {len(self.meta)} meta rows")
        self.dropped_ids = tuple(f"{mt}/{mid}" for _, mt, mid in single_class_ids(self._frame(np.zeros(len(self.meta)))))
        if self.dropped_ids:
            warnings.warn(f"EvalSet: {', '.join(self.dropped_ids)} have clips of one class only (no AUC); "
                          "left out of the training-time AUC/pAUC", stacklevel=3)

    def _frame(self, scores, name: str = "eval") -> pd.DataFrame:
        """The labelled clips (label 0 or 1) as a scores frame of :mod:`asdlib.report.metrics`."""
        m = self.meta
        frame = pd.DataFrame({"dataset": name, "machine_type": m["machine_type"].to_numpy(),
                              "machine_id": m["machine_id"].astype(str).str.zfill(2).to_numpy(),
                              "label": m["label"].to_numpy(), "score": np.asarray(scores, dtype=np.float64)})
        return frame[frame["label"].isin([0, 1]).to_numpy()]

    def per_id(self, scores, name: str = "eval") -> pd.DataFrame:
        """Per-ID AUC/pAUC (:func:`asdlib.report.metrics.evaluate`) of the clips' ``scores``,
        the dropped IDs left out; ``name`` fills the dataset column."""
        frame = self._frame(scores, name)
        kept = ~(frame["machine_type"] + "/" + frame["machine_id"]).isin(self.dropped_ids)
        return evaluate(frame[kept.to_numpy()])


def summarise(per_id: pd.DataFrame) -> dict[str, float]:
    """Mean over types of the per-type mean AUC and pAUC (the study's type-level averaging):
    the 'Mean' row of :func:`asdlib.report.metrics.overall_means`; NaN when no ID was evaluated."""
    if per_id.empty:
        return {"auc": float("nan"), "pauc": float("nan")}
    if per_id["dataset"].nunique() > 1:
        raise ValueError(f"one dataset at a time, got {sorted(per_id['dataset'].unique())}")
    overall = overall_means(type_means(per_id))
    mean = overall[overall["row"] == MEAN_ROW].set_index("metric")["value"]
    return {"auc": float(mean.get("AUC", np.nan)), "pauc": float(mean.get("pAUC", np.nan))}


def evaluate_set(
    classifier: Classifier,
    eval_set: EvalSet,
    scorer: Scorer,
    fit_emb: np.ndarray | None = None,
    fit_classes: np.ndarray | None = None,
    amp: bool = False,
    name: str = "eval",
    outputs: Outputs | None = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Score an :class:`EvalSet` (the scorer fitted on ``fit_emb`` if it needs fitting);
    ``(per-ID rows, {'auc', 'pauc'})``. ``outputs``: the classifier's outputs on the set's
    clips where the caller has them already (the training loop keeps them, see
    :func:`asdlib.classify.train.evaluate_epoch`)."""
    out = embed(classifier, eval_set.features, amp=amp) if outputs is None else outputs
    scores = score_outputs(scorer, out, eval_set.meta["class"].to_numpy(), fit_emb, fit_classes)
    per_id = eval_set.per_id(scores, name)
    return per_id, summarise(per_id)


@torch.no_grad()
def held_out_loss(classifier: Classifier, x: torch.Tensor, y: torch.Tensor, loss_fn, amp: bool = False) -> float:
    """Training loss (hard labels, no mixup) on held-out normal training clips: the label-free
    ``val_loss`` selection criterion. It never looks at test clips or anomaly labels."""
    logits = embed(classifier, x, amp=amp).logits  # (N, C)
    return float(loss_fn(torch.from_numpy(logits), y.cpu()))


def update_best(best: dict, row: dict, select: tuple[str, ...], dev_name: str | None) -> list[str]:
    """Record in ``best`` the criteria that improved with this epoch's ``row``; returns their names.

    ``dev_auc_pauc``: mean AUC + mean pAUC on the dev test set (the study's rule; optimistic
    because it reads test labels). ``val_loss``: lowest held-out training loss.
    """
    candidates: dict[str, tuple[float, bool]] = {}  # criterion -> (value, larger is better)
    if "val_loss" in select and np.isfinite(row.get("val_loss", np.nan)):
        candidates["val_loss"] = (row["val_loss"], False)
    if "dev_auc_pauc" in select and dev_name is not None and f"{dev_name}_auc" in row:
        v = row[f"{dev_name}_auc"] + row[f"{dev_name}_pauc"]
        if np.isfinite(v):
            candidates["dev_auc_pauc"] = (v, True)
    improved = []
    for crit, (v, larger) in candidates.items():
        prev = best.get(crit)
        if prev is None or (v > prev["value"] if larger else v < prev["value"]):
            best[crit] = {"path": "", "epoch": int(row["epoch"]), "value": float(v),
                          "metrics": {k: x for k, x in row.items() if k not in ("time_s", "eval_s")}}
            improved.append(crit)
    return improved


# ---------------------------------------------------------------- outputs kept beside a checkpoint

def eval_outputs_path(checkpoint: str | os.PathLike) -> Path:
    """Where a checkpoint's eval-set outputs are kept: ``best_x.pt`` -> ``best_x.outputs.npz``."""
    return Path(checkpoint).with_suffix(".outputs.npz")


def clip_fingerprint(meta: pd.DataFrame) -> str:
    """A digest of which clips, in which order, a meta table lists (``relpath`` where the table has
    it, else type, ID, file and label), so kept outputs are only ever reused for the same clips."""
    cols = ["relpath"] if "relpath" in meta.columns else [c for c in ("machine_type", "machine_id", "file", "label")
                                                          if c in meta.columns]
    text = "\n".join("/".join(map(str, r)) for r in meta[cols].itertuples(index=False, name=None))
    return hashlib.sha256(f"{len(meta)}|{','.join(cols)}|{text}".encode()).hexdigest()


def save_eval_outputs(path: str | os.PathLike, epoch: int, outputs: dict[str, Outputs],
                      eval_sets: dict[str, EvalSet]) -> None:
    """Write (atomically) the float32 outputs of each eval set at ``epoch``, with their clips' fingerprints."""
    arrays = {"epoch": np.int64(epoch)}
    for name, out in outputs.items():
        arrays[f"{name}__logits"], arrays[f"{name}__emb"] = out.logits, out.emb
        arrays[f"{name}__clips"] = np.array(clip_fingerprint(eval_sets[name].meta))
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def load_eval_outputs(checkpoint: str | os.PathLike, epoch: int, name: str, meta: pd.DataFrame) -> Outputs | None:
    """The outputs kept beside ``checkpoint`` on eval set ``name`` when they are those of the same
    weights (``epoch``, the checkpoint's) on the same clips (``meta``'s, in order); else None."""
    path = eval_outputs_path(checkpoint)
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            if (int(z["epoch"]) != int(epoch) or f"{name}__clips" not in z
                    or str(z[f"{name}__clips"]) != clip_fingerprint(meta)):
                return None
            return Outputs(z[f"{name}__logits"], z[f"{name}__emb"])
    except (OSError, ValueError, KeyError) as e:  # unreadable: recompute rather than fail
        warnings.warn(f"{path}: kept outputs unreadable ({e}); recomputing them", stacklevel=2)
        return None
