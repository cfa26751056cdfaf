"""Tidy results and the study's tables rendered from them.

Results are stored long and tidy, one row per (experiment, dataset, machine type, machine
ID, metric, seed), with ``value`` a **fraction** in [0, 1] as computed by
:mod:`asdlib.report.metrics`; tables are pivots of that store and show **percent**, two
decimals, as the study prints them. Nothing in a table is typed by hand, so a re-run
regenerates every table.

The study's table: rows ToyCar ... valve, Mean, Harmonic Mean; columns Dev AUC, Dev pAUC,
Eval AUC, Eval pAUC. A type absent from the data gets a NaN row (not an error, so that a
partial run still renders), its Mean and Harmonic Mean are over the types present, and
``table.attrs['missing_types']`` lists what is missing; :func:`table_markdown` prints that
under the table, because a mean over fewer types is not comparable with the study's.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from ..core.machines import MACHINE_TYPES
from ..core.utils import atomic_write_text
from .metrics import overall_means, type_means
from .reference import ALL_IDS, HMEAN_ROW, MEAN_ROW, ROWS, reference_table

TIDY_COLUMNS = ("experiment", "dataset", "machine_type", "machine_id", "metric", "seed", "value")
# A re-run of one experiment (and seed, and selection rule where stored) replaces these groups.
REPLACE_KEYS = ("experiment", "seed", "selection")
DATASET_LABELS = {"dev": "Dev", "eval": "Eval"}
VALUE_COLUMNS = ("Dev AUC", "Dev pAUC", "Eval AUC", "Eval pAUC")
SD = "± sd"  # suffix of the columns that hold the standard deviation over seeds
_DTYPES = {"experiment": str, "dataset": str, "machine_type": str, "machine_id": str, "metric": str}


def to_tidy(per_id: pd.DataFrame, experiment: str, seed: int = 0, **extra) -> pd.DataFrame:
    """Tag the per-ID output of :func:`asdlib.report.metrics.evaluate` with experiment, seed and extras.

    Extra keyword columns (``selection='dev_auc_pauc'``, ``loss='arcface'``) are kept
    after the tidy columns; other columns of ``per_id`` (n_normal, n_anomaly) too.
    """
    missing = [c for c in ("dataset", "machine_type", "machine_id", "metric", "value") if c not in per_id]
    if missing:
        raise ValueError(f"per-ID frame lacks columns {missing}")
    out = per_id.copy()
    out["experiment"], out["seed"] = experiment, int(seed)
    for k, v in extra.items():
        out[k] = v
    out["machine_id"] = out["machine_id"].astype(str)
    rest = [c for c in out.columns if c not in TIDY_COLUMNS]
    return out[list(TIDY_COLUMNS) + rest].reset_index(drop=True)


def read_tidy(path: str | os.PathLike) -> pd.DataFrame:
    """Read a tidy CSV; machine IDs stay strings ('01', not 1)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no results file at {path}")
    df = pd.read_csv(path, dtype=_DTYPES)
    missing = [c for c in TIDY_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} is not a tidy results file: it lacks {missing}")
    return df


def _group_keys(df: pd.DataFrame, keys: list[str]) -> list[tuple[str, ...]]:
    """Each row's group key as strings, NA as '', so that a frame read from CSV matches a fresh one."""
    cols = [df[k].map(lambda v: "" if pd.isna(v) else str(v)).tolist() for k in keys]
    return list(zip(*cols))


def write_tidy(tidy: pd.DataFrame, path: str | os.PathLike) -> pd.DataFrame:
    """Merge ``tidy`` into the CSV at ``path`` atomically and return the merged frame.

    Every (experiment, seed[, selection]) group present in ``tidy`` replaces the stored
    rows of that group in full, so a re-run never leaves stale IDs behind; other groups
    are kept as they are.
    """
    missing = [c for c in TIDY_COLUMNS if c not in tidy.columns]
    if missing:
        raise ValueError(f"frame lacks tidy columns {missing}")
    path = Path(path)
    new = tidy.copy()
    if path.exists():
        old = read_tidy(path)
        keys = [k for k in REPLACE_KEYS if k in old.columns or k in new.columns]
        for k in keys:
            for df in (old, new):
                if k not in df.columns:
                    df[k] = pd.NA
        replaced = set(_group_keys(new, keys))
        old = old[[key not in replaced for key in _group_keys(old, keys)]]
        new = pd.concat([old, new], ignore_index=True) if len(old) else new
    new = new.sort_values(["experiment", "seed", "dataset", "machine_type", "machine_id", "metric"], kind="stable")
    buf = io.StringIO()
    new.to_csv(buf, index=False)
    atomic_write_text(path, buf.getvalue())
    return new.reset_index(drop=True)


def summarise(tidy: pd.DataFrame, experiment: str, selection: str | None = None) -> pd.DataFrame:
    """Per seed: type means (mean over IDs) and the Mean / Harmonic Mean over the types present.

    Both steps are :func:`asdlib.report.metrics.type_means` and ``overall_means`` (the one
    implementation the bootstrap and the training-time criterion use too). Rows already named
    'Mean' or 'Harmonic Mean' (as in a reference table) are taken as given instead of
    recomputed. Returns dataset, row, metric, seed, value (fraction).
    """
    t = tidy[tidy["experiment"] == experiment]
    if t.empty:
        known = sorted(tidy["experiment"].unique()) if "experiment" in tidy else []
        raise KeyError(f"no rows for experiment {experiment!r}; present: {known}")
    if "selection" in t.columns:
        if selection is not None:
            t = t[t["selection"] == selection]
        elif t["selection"].nunique() > 1:
            raise ValueError(f"{experiment!r} has several selection rules {sorted(t['selection'].unique())}; pass one")
    overall = t["machine_type"].isin([MEAN_ROW, HMEAN_ROW])
    keys = ["dataset", "row", "metric", "seed"]
    per_type = type_means(t[~overall], by=("seed",))
    types = (per_type.rename(columns={"machine_type": "row"})[keys + ["value"]]
             .sort_values(["dataset", "row", "metric", "seed"]).reset_index(drop=True))
    given = t[overall].rename(columns={"machine_type": "row"})[keys + ["value"]]
    computed = overall_means(per_type, by=("seed",))[keys + ["value"]]
    stated = set(zip(given["dataset"], given["metric"], given["seed"]))
    fresh = pd.Series([k not in stated for k in zip(computed["dataset"], computed["metric"], computed["seed"])],
                      index=computed.index, dtype=bool)
    computed = computed[fresh]  # a boolean Series: an empty list would select no *columns*
    computed = computed.sort_values(["dataset", "metric", "seed"], kind="stable")
    parts = [p for p in (types, given, computed) if len(p)]
    return pd.concat(parts, ignore_index=True)


def _wide(summary: pd.DataFrame, agg: str) -> pd.DataFrame:
    """Rows ROWS x the four value columns, in percent, aggregated over seeds."""
    s = summary.assign(col=summary["dataset"].map(DATASET_LABELS) + " " + summary["metric"])
    w = s.groupby(["row", "col"])["value"].agg(agg).unstack("col") * 100
    return w.reindex(index=list(ROWS), columns=list(VALUE_COLUMNS))


def study_table(tidy: pd.DataFrame, experiment: str, reference: str | None = None, decimals: int = 2,
                show_std: bool | None = None, selection: str | None = None) -> pd.DataFrame:
    """The study's table for one experiment (percent), optionally beside a reference experiment.

    Several seeds are averaged; ``show_std`` adds '<col> ± sd' columns, the standard deviation
    over seeds (default: whenever there is more than one seed). With ``reference``
    each value column is followed by '<col> (study)' and '<col> Δ' (ours minus study,
    computed from the rounded figures shown, so the table is self-consistent).
    """
    summ = summarise(tidy, experiment, selection)
    mean = _wide(summ, "mean").round(decimals)
    if show_std is None:
        show_std = summ["seed"].nunique() > 1
    std = _wide(summ, "std").round(decimals) if show_std else None
    ref = _wide(summarise(reference_table(reference), reference), "mean").round(decimals) if reference else None
    out = pd.DataFrame(index=mean.index)
    for c in VALUE_COLUMNS:
        out[c] = mean[c]
        if std is not None:
            out[f"{c} {SD}"] = std[c]
        if ref is not None:
            out[f"{c} (study)"] = ref[c]
            out[f"{c} Δ"] = (mean[c] - ref[c]).round(decimals)
    out.index.name = "machine type"
    missing = {}
    for ds in sorted(summ["dataset"].unique()):
        have = set(summ.loc[summ["dataset"] == ds, "row"])
        if lacking := [m for m in MACHINE_TYPES if m not in have]:
            missing[DATASET_LABELS.get(ds, ds)] = lacking
    out.attrs["missing_types"] = missing
    out.attrs["n_seeds"] = int(summ["seed"].nunique())
    out.attrs["decimals"] = decimals
    return out


def compare_table(tidy: pd.DataFrame, experiments: Sequence[str], dataset: str, metric: str,
                  references: Mapping[str, str] | None = None, decimals: int = 2,
                  selection: str | None = None, show_std: bool | None = None) -> pd.DataFrame:
    """Experiments side by side for one dataset and metric (e.g. the loss ablation), percent.

    Each value is the mean over seeds; ``show_std`` adds an '<experiment> ± sd' column after
    each (default: for experiments with more than one seed).

    ``references`` maps an experiment to a reference key; its figure goes in an
    '<experiment> (study)' column beside it. ``selection`` picks one checkpoint rule where
    the store holds several (as in :func:`study_table`).
    """
    col = f"{DATASET_LABELS[dataset]} {metric}"
    out = pd.DataFrame(index=list(ROWS))
    for exp in experiments:
        summ = summarise(tidy, exp, selection)
        out[exp] = _wide(summ, "mean")[col].round(decimals)
        if show_std or (show_std is None and summ["seed"].nunique() > 1):
            out[f"{exp} {SD}"] = _wide(summ, "std")[col].round(decimals)
        if references and exp in references:
            key = references[exp]
            out[f"{exp} (study)"] = _wide(summarise(reference_table(key), key), "mean")[col].round(decimals)
    out.index.name = "machine type"
    out.attrs["decimals"] = decimals
    return out


def side_by_side(tidy: pd.DataFrame, experiments: Sequence[str], metrics: Sequence[str] = ("AUC", "pAUC"),
                 datasets: Sequence[str] = ("dev", "eval"), references: Mapping[str, str] | None = None,
                 reference_datasets: Sequence[str] = ("dev", "eval"), labels: Mapping[str, str] | None = None,
                 delta: tuple[str, str] | None = None, decimals: int = 2, selection: str | None = None) -> pd.DataFrame:
    """Experiments side by side for several datasets and metrics: columns ``'Dev AUC <label>'``.

    One :func:`compare_table` per (dataset, metric), joined. ``references`` as there, for the
    datasets in ``reference_datasets``; ``labels``
    renames experiments in the column names; ``delta=(a, b)`` adds ``'<col> Δ'`` = b - a.
    """
    labels = dict(labels or {})
    parts = {}
    for ds in datasets:
        for metric in metrics:
            refs = references if ds in reference_datasets else None
            parts[f"{DATASET_LABELS[ds]} {metric}"] = compare_table(tidy, experiments, ds, metric, refs, decimals,
                                                                    selection)
    out = pd.concat(parts, axis=1)

    def name(col: str, exp: str) -> str:
        for suffix in (" (study)", f" {SD}"):
            if exp.endswith(suffix):
                base = exp[: -len(suffix)]
                return f"{col} {labels.get(base, base)}{suffix}"
        return f"{col} {labels.get(exp, exp)}"

    out.columns = [name(col, exp) for col, exp in out.columns]
    if delta is not None:
        a, b = (labels.get(e, e) for e in delta)
        for col in parts:
            out[f"{col} Δ"] = (out[f"{col} {b}"] - out[f"{col} {a}"]).round(decimals)
    out.index.name = "machine type"
    out.attrs["decimals"] = decimals
    return out


def table_markdown(table: pd.DataFrame, title: str | None = None, caption: str | None = None) -> str:
    """A Markdown table (missing figures as '—'), the title above it and the caption under it."""
    decimals = int(table.attrs.get("decimals", 2))
    parts = [f"### {title}", ""] if title else []
    # tabulate's missingval applies to None only, so NaN is turned into None first.
    shown = table.astype(object).where(table.notna(), None)
    parts.append(shown.to_markdown(floatfmt=f".{decimals}f", missingval="—"))
    notes = [caption] if caption else []
    for ds, types in table.attrs.get("missing_types", {}).items():
        notes.append(f"{ds}: no results for {', '.join(types)}; Mean and Harmonic Mean are over the other types.")
    if table.attrs.get("n_seeds", 1) > 1:
        notes.append(f"Mean over {table.attrs['n_seeds']} seeds.")
    if notes:
        parts += ["", *(f"*{n}*" for n in notes)]
    return "\n".join(parts) + "\n"


def write_table(table: pd.DataFrame, out_dir: str | os.PathLike, name: str, caption: str | None = None,
                title: str | None = None) -> tuple[Path, Path]:
    """Write ``<name>.md`` and ``<name>.csv`` into ``out_dir`` atomically; return both paths."""
    out_dir = Path(out_dir)
    md_path, csv_path = out_dir / f"{name}.md", out_dir / f"{name}.csv"
    atomic_write_text(md_path, table_markdown(table, title=title, caption=caption))
    buf = io.StringIO()
    table.to_csv(buf)
    atomic_write_text(csv_path, buf.getvalue())
    return md_path, csv_path


__all__ = ["TIDY_COLUMNS", "VALUE_COLUMNS", "ALL_IDS", "to_tidy", "read_tidy", "write_tidy", "summarise",
           "study_table", "compare_table", "table_markdown", "write_table"]
