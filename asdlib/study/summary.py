"""Cross-experiment tables for the summary notebook: means against the study, selection rules."""
from __future__ import annotations

import pandas as pd

from ..report.reference import HMEAN_ROW, MEAN_ROW
from ..report.tables import VALUE_COLUMNS, study_table
from .registry import EXPERIMENTS


def selection_for(tidy: pd.DataFrame, experiment: str) -> str | None:
    """The selection rule of an experiment's summary row (its registry entry), or what the results hold."""
    sel = EXPERIMENTS[experiment].selection if experiment in EXPERIMENTS else "dev_auc_pauc"
    if "selection" not in tidy.columns:
        return None
    present = set(tidy.loc[tidy["experiment"] == experiment, "selection"].dropna())
    return sel if sel in present else (next(iter(present)) if present else None)


def means_table(tidy: pd.DataFrame, row: str = MEAN_ROW) -> pd.DataFrame:
    """One row per experiment: our Mean (or Harmonic Mean) beside the study's, with differences."""
    out = []
    for exp in EXPERIMENTS.values():
        if exp.name not in set(tidy["experiment"]):
            continue
        ref = exp.reference
        t = study_table(tidy, exp.name, reference=ref, selection=selection_for(tidy, exp.name))
        r = {"experiment": exp.label}
        for c in VALUE_COLUMNS:
            r[c] = t.loc[row, c]
            if ref is not None:
                r[f"{c} (study)"] = t.loc[row, f"{c} (study)"]
                r[f"{c} Δ"] = t.loc[row, f"{c} Δ"]
        out.append(r)
    table = pd.DataFrame(out).set_index("experiment") if out else pd.DataFrame()
    table.attrs["decimals"] = 2
    return table


def selection_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """Mean AUC/pAUC of each classifier experiment under the study's rule and the label-free one.

    'optimism' = study's rule minus label-free rule: how much picking the checkpoint on the
    dev-test labels flatters the dev figures (and whether it carries over to eval).
    """
    rows = []
    for exp in EXPERIMENTS.values():
        t = tidy[tidy["experiment"] == exp.name]
        if t.empty or "selection" not in t or not {"dev_auc_pauc", "val_loss"} <= set(t["selection"]):
            continue
        a = study_table(tidy, exp.name, selection="dev_auc_pauc").loc[MEAN_ROW]
        b = study_table(tidy, exp.name, selection="val_loss").loc[MEAN_ROW]
        r = {"experiment": exp.label}
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
