"""Cross-experiment tables for the summary notebook: means against the study, selection rules, claims."""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from ..report.claims import CLAIMS, Claim
from ..report.reference import HMEAN_ROW, MEAN_ROW
from ..report.tables import VALUE_COLUMNS, study_table
from .registry import EXPERIMENTS, LABEL_FREE, LAST


def selection_for(tidy: pd.DataFrame, experiment: str) -> str | None:
    """The selection rule of an experiment's summary row: its registry entry's, never another.

    Where the registry's rule is the label-free ``val_loss`` and the runs saved none, their
    final epoch (``last``) stands in, so named. Results without that rule raise, naming the
    rules they hold, rather than show a figure selected by another rule (the study's, which
    sees the test labels). None where the results carry no selection column.
    """
    if "selection" not in tidy.columns:
        return None
    sel = EXPERIMENTS[experiment].selection if experiment in EXPERIMENTS else "dev_auc_pauc"
    present = set(tidy.loc[tidy["experiment"] == experiment, "selection"].dropna())
    allowed = [r for r in (sel, *((LAST,) if sel == LABEL_FREE else ())) if r in present]
    if len(allowed) == 1:
        return allowed[0]
    if len(allowed) > 1:
        raise ValueError(f"{experiment!r} holds rows under both {allowed}: some runs lacked a {sel} checkpoint; "
                         "its summary row would mix them")
    raise ValueError(f"{experiment!r} has no rows selected by its rule {sel!r} (present: {sorted(present)}); "
                     "its summary row does not fall back to another rule")


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


# The checkpoint of a classifier experiment in the claims: the label-free rule (lowest loss on
# held-out normal training clips), which never looks at the test labels the claims are tested on;
# where a run saved no such checkpoint, its final epoch (LAST). Never the study's rule.
CLAIM_SELECTION = LABEL_FREE


def claim_selection(study, experiment: str) -> str | None:
    """The scores files' rule(s) used for ``experiment`` in the claims ('+'-joined), or None where none was saved.

    Classifier and transfer experiments: ``val_loss``, and ``last`` (the final epoch) for the
    runs that had no ``val_loss`` checkpoint: both label-free, so both files are used together;
    never the study's ``dev_auc_pauc``. Reconstruction experiments: their registry rule
    (``final``).
    """
    exp = EXPERIMENTS.get(experiment)
    rules = [exp.selection] if exp is not None and exp.kind == "reconstruction" else [CLAIM_SELECTION, LAST]
    found = [r for r in rules if (study.results_dir / "scores" / f"{experiment}__{r}.csv").exists()]
    return "+".join(found) or None


def load_claim_scores(study, claims: Sequence[Claim] = CLAIMS) -> tuple[dict[str, pd.DataFrame | None], dict[str, str]]:
    """Per-clip scores of every experiment the claims compare (None where the run saved none), and their rules."""
    scores: dict[str, pd.DataFrame | None] = {}
    selections: dict[str, str] = {}
    for name in dict.fromkeys(e for c in claims for e in (c.better, c.worse)):
        rule = claim_selection(study, name)
        scores[name] = (pd.concat([study.load_scores(f"{name}__{r}") for r in rule.split("+")], ignore_index=True)
                        if rule else None)
        if rule:
            selections[name] = rule
    return scores, selections


def claims_caption(result: pd.DataFrame) -> str:
    """The caption of the claims table: what is compared, the interval, the verdicts, the checkpoints."""
    ran = result[result["n_clips"] > 0]
    seeds = sorted(set(ran["n_seeds_better"]) | set(ran["n_seeds_worse"])) if len(ran) else []
    n_seeds = "/".join(str(s) for s in seeds) or "no"
    level = f"{100 * float(result['level'].iloc[0]):g} %" if len(result) else "95 %"
    rules = sorted({r for s in ran["selection"] for r in s.split(" / ") if r}) if len(ran) else []
    return (f"The study's claims on the dev test set: difference (better − worse) of the Mean AUC and Mean pAUC "
            f"over machine types, percentage points; the study's from its printed Means, ours the mean over "
            f"{n_seeds} seed(s) with a {level} paired bootstrap interval ({int(result['n_boot'].iloc[0])} replicates; "
            f"each resamples the test clips within each ID and label, the same clips for both experiments, and "
            f"the seeds, the seed deviation scaled by √(n/(n−1)) to undo the (n−1)/n shrinkage of resampling n "
            f"seeds). Verdict: holds (interval above 0), reversed (below 0), not resolved at this size "
            f"(contains 0). Checkpoints: the label-free selection ({CLAIM_SELECTION}: lowest loss on held-out "
            f"normal training clips, never the test labels; the final epoch, '{LAST}', for a run that saved none) for "
            f"classifiers, the final epoch for the autoencoder"
            f"{'; rules used: ' + ', '.join(rules) if rules else ''}")
