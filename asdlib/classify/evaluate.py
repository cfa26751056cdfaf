"""The AUC/pAUC evaluation used during training, the label-free held-out loss and checkpoint selection."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..report.metrics import auc_pauc
from .inference import extract

if TYPE_CHECKING:
    from .scorers import Scorer


@dataclass
class EvalSet:
    """Clips to evaluate during training: features ``(N, n_mels, T)`` and one meta row per clip.

    ``meta`` needs the columns dataset, machine_type, machine_id, label (0 normal, 1 anomaly;
    -1 rows are ignored) and ``class`` (the clip's own class index in the model).
    """

    features: object
    meta: pd.DataFrame

    def __post_init__(self) -> None:
        missing = {"machine_type", "machine_id", "label", "class"} - set(self.meta.columns)
        if missing:
            raise ValueError(f"EvalSet.meta lacks columns {sorted(missing)}")
        if len(self.meta) != len(self.features):
            raise ValueError(f"EvalSet has {len(self.features)} feature rows but {len(self.meta)} meta rows")


def per_id_metrics(meta: pd.DataFrame, scores: np.ndarray) -> pd.DataFrame:
    """Tidy rows (machine_type, machine_id, metric 'AUC'|'pAUC', value) per ID with both labels."""
    df = meta[["machine_type", "machine_id", "label"]].copy()
    df["score"] = np.asarray(scores, dtype=np.float64)
    df = df[df["label"].isin([0, 1])]
    rows = []
    for (mt, mid), g in df.groupby(["machine_type", "machine_id"], sort=True):
        if g["label"].nunique() < 2:
            continue
        auc, pauc = auc_pauc(g["label"].to_numpy(), g["score"].to_numpy())
        rows += [(mt, mid, "AUC", auc), (mt, mid, "pAUC", pauc)]
    return pd.DataFrame(rows, columns=["machine_type", "machine_id", "metric", "value"])


def summarise(per_id: pd.DataFrame) -> dict[str, float]:
    """Mean over types of the per-type mean AUC and pAUC (the study's type-level averaging)."""
    if per_id.empty:
        return {"auc": float("nan"), "pauc": float("nan")}
    by_type = per_id.groupby(["metric", "machine_type"])["value"].mean().groupby("metric").mean()
    return {"auc": float(by_type.get("AUC", np.nan)), "pauc": float(by_type.get("pAUC", np.nan))}


def evaluate_set(
    model: nn.Module,
    eval_set: EvalSet,
    scorer: Scorer,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    crop_frames: int | None = None,
    amp: bool = False,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Score an :class:`EvalSet` with a fitted scorer; ``(per-ID rows, {'auc', 'pauc'})``."""
    logits, emb = extract(model, eval_set.features, batch_size, device, crop_frames, amp=amp)
    scores = scorer.score(emb, logits, eval_set.meta["class"].to_numpy())
    per_id = per_id_metrics(eval_set.meta, scores)
    return per_id, summarise(per_id)


@torch.no_grad()
def held_out_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, batch_size: int,
                  device, crop_frames: int | None = None, amp: bool = False) -> float:
    """Training loss (hard labels, no mixup) on held-out normal training clips: the label-free
    ``val_loss`` selection criterion. It never looks at test clips or anomaly labels."""
    logits, _ = extract(model, x, batch_size, device, crop_frames, amp=amp)  # (N, C)
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
                          "metrics": {k: x for k, x in row.items() if k != "time_s"}}
            improved.append(crit)
    return improved
