"""Cross-experiment tables for the summary notebook: means against the study, selection rules."""
from __future__ import annotations

import pandas as pd

from ..report.reference import HMEAN_ROW, MEAN_ROW
from ..report.tables import VALUE_COLUMNS, study_table

# experiment in our tidy results -> (reference key or None, label)
EXPERIMENTS: dict[str, tuple[str | None, str]] = {
    "individual": ("individual", "E1 six individual models"),
    "integrated": ("integrated", "E2 integrated model (ArcFace, LS 0.05)"),
    "ls0": ("ls0", "E3 label smoothing 0.0"),
    "softmax": ("softmax", "E4 softmax, bottleneck ResNet50"),
    "cosface": ("cosface", "E4 CosFace"),
    "focal": ("focal", "E4 focal loss"),
    "transfer": ("transfer", "E5 transfer learning"),
    "autoencoder": ("baseline_ae", "DCASE2020 baseline autoencoder"),
    "wavenet": (None, "WaveNet next-frame prediction"),
}
PRIMARY_SELECTION = {"autoencoder": "final", "wavenet": "final"}  # others: the study's rule


def selection_for(tidy: pd.DataFrame, experiment: str) -> str | None:
    sel = PRIMARY_SELECTION.get(experiment, "dev_auc_pauc")
    if "selection" not in tidy.columns:
        return None
    present = set(tidy.loc[tidy["experiment"] == experiment, "selection"].dropna())
    return sel if sel in present else (next(iter(present)) if present else None)


def means_table(tidy: pd.DataFrame, row: str = MEAN_ROW) -> pd.DataFrame:
    """One row per experiment: our Mean (or Harmonic Mean) beside the study's, with differences."""
    out = []
    for exp, (ref, label) in EXPERIMENTS.items():
        if exp not in set(tidy["experiment"]):
            continue
        t = study_table(tidy, exp, reference=ref, selection=selection_for(tidy, exp))
        r = {"experiment": label}
        for c in VALUE_COLUMNS:
            r[c] = t.loc[row, c]
            if ref is not None:
                r[f"{c} (study)"] = t.loc[row, f"{c} (study)"]
                r[f"{c} Δ"] = t.loc[row, f"{c} Δ"]
        out.append(r)
    table = pd.DataFrame(out).set_index("experiment")
    table.attrs["decimals"] = 2
    return table


def selection_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """Mean AUC/pAUC of each classifier experiment under the study's rule and the label-free one.

    'optimism' = study's rule minus label-free rule: how much picking the checkpoint on the
    dev-test labels flatters the dev figures (and whether it carries over to eval).
    """
    rows = []
    for exp, (_, label) in EXPERIMENTS.items():
        t = tidy[tidy["experiment"] == exp]
        if t.empty or "selection" not in t or not {"dev_auc_pauc", "val_loss"} <= set(t["selection"]):
            continue
        a = study_table(tidy, exp, selection="dev_auc_pauc").loc[MEAN_ROW]
        b = study_table(tidy, exp, selection="val_loss").loc[MEAN_ROW]
        r = {"experiment": label}
        for c in VALUE_COLUMNS:
            r[f"{c} study rule"], r[f"{c} label-free"] = a[c], b[c]
            r[f"{c} optimism"] = round(float(a[c] - b[c]), 2)
        rows.append(r)
    table = pd.DataFrame(rows).set_index("experiment") if rows else pd.DataFrame()
    table.attrs["decimals"] = 2
    return table


def ci_table(ci: pd.DataFrame) -> pd.DataFrame:
    """Bootstrap intervals as 'value [low, high]' strings in percent, rows types + means."""
    c = ci.assign(text=lambda d: [f"{100 * v:.2f} [{100 * lo:.2f}, {100 * hi:.2f}]"
                                  for v, lo, hi in zip(d["value"], d["ci_low"], d["ci_high"])])
    c["col"] = c["dataset"].map({"dev": "Dev", "eval": "Eval"}) + " " + c["metric"]
    w = c.pivot_table(index="machine_type", columns="col", values="text", aggfunc="first")
    order = [r for r in [*pd.unique(ci["machine_type"])] if r not in (MEAN_ROW, HMEAN_ROW)] + [MEAN_ROW, HMEAN_ROW]
    return w.reindex(index=[r for r in order if r in w.index], columns=[c for c in VALUE_COLUMNS if c in w.columns])
