"""The official scores of DCASE Task 2, 2021-2025, as the organisers' evaluators compute them.

**2021** (y-kawagu/dcase2021_task2_evaluator): per machine, section and domain, AUC and pAUC
on *that domain's* clips (score files ``anomaly_score_<machine>_section_XX_<domain>_test.csv``);
official score: the harmonic mean of every AUC and pAUC over machines, sections and domains.

**2022-2025** (dcase2022/2023/2024/2025_task2_evaluator): per machine and section, AUC(source)
on the source-domain normal clips and *all* anomalous clips of the section, AUC(target) on the
target-domain normals and all anomalies, pAUC (``roc_auc_score(max_fpr=0.1)``, McClish) on
every clip of the section (score files ``anomaly_score_<machine>_section_XX_test.csv``);
official score: the harmonic mean of all AUC(source), AUC(target) and pAUC values.

Every value enters a harmonic mean floored at machine epsilon (``sys.float_info.epsilon``), as
the evaluators floor it. Decisions (``decision_result_...``, 1 = anomalous) give precision,
recall and F1 per domain on that domain's clips; ``AUC (all)`` is the AUC over every clip.

:func:`evaluate_official` returns an :class:`OfficialResult`: a tidy table (machine, section,
domain, metric, value; domain ``all`` for a section-wide figure), the per-machine summary rows
the evaluators print (arithmetic / harmonic / source / target harmonic means) and the official
score. Score files are read and written in each edition's official naming
(:func:`score_filename`), so asdlib's output can go to the official evaluator as it is.
"""
from __future__ import annotations

import csv
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import confusion_matrix, roc_auc_score

from ..core.errors import DatasetLayoutError
from ..data.editions import DOMAINS, Edition, get_edition, read_eval_ground_truth
from .dcase_io import read_anomaly_scores, read_decisions, write_anomaly_scores, write_decisions

MAX_FPR = 0.1
EPS = sys.float_info.epsilon
KINDS = ("anomaly_score", "decision_result")
TIDY_COLUMNS = ("machine", "section", "domain", "metric", "value")
_NAME = re.compile(r"^(?P<kind>anomaly_score|decision_result)_(?P<machine>.+)_section_(?P<section>\d{2})"
                   r"(?:_(?P<domain>source|target))?_test\.csv$")


def per_domain_files(edition: int | str | Edition) -> bool:
    """2021 writes one score file per section and domain; 2022-2025 one per section."""
    return get_edition(edition).year == 2021


def score_filename(edition: int | str | Edition, machine: str, section: str, domain: str | None = None,
                   kind: str = "anomaly_score") -> str:
    """The official name of a score (``kind='anomaly_score'``) or decision file.

    2021: ``anomaly_score_<machine>_section_XX_<domain>_test.csv`` (``domain`` required);
    2022-2025: ``anomaly_score_<machine>_section_XX_test.csv``.
    """
    ed = get_edition(edition)
    if ed.year < 2021:
        raise ValueError("DCASE2020 score files are named per machine ID: see asdlib.report.dcase_io")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    ed.check_machine(machine)
    if not (len(section) == 2 and section.isdigit()):
        raise ValueError(f"section must be two digits like '00', got {section!r}")
    if per_domain_files(ed):
        if domain not in DOMAINS:
            raise ValueError(f"DCASE2021 score files are per domain: domain must be source or target, got {domain!r}")
        return f"{kind}_{machine}_section_{section}_{domain}_test.csv"
    return f"{kind}_{machine}_section_{section}_test.csv"


def write_score_files(folder: str | os.PathLike, edition: int | str | Edition, clips: pd.DataFrame) -> list[Path]:
    """Write official score (and, with a ``decision`` column, decision) files for a table of clips.

    ``clips`` has columns machine, section, file, score (and domain for 2021; decision 0/1
    optional). One file per machine and section (2021: and domain), rows in the table's order,
    each written atomically. Returns the paths written.
    """
    ed = get_edition(edition)
    keys = ["machine", "section"] + (["domain"] if per_domain_files(ed) else [])
    missing = [c for c in [*keys, "file", "score"] if c not in clips.columns]
    if missing:
        raise ValueError(f"score table lacks column(s) {', '.join(missing)}")
    out: list[Path] = []
    for key, g in clips.groupby(keys, sort=True):
        machine, section, *dom = key
        domain = dom[0] if dom else None
        path = Path(folder) / score_filename(ed, machine, section, domain)
        out.append(write_anomaly_scores(path, list(g["file"]), g["score"].to_numpy()))
        if "decision" in g:
            dpath = Path(folder) / score_filename(ed, machine, section, domain, kind="decision_result")
            out.append(write_decisions(dpath, list(g["file"]), g["decision"].to_numpy()))
    return out


def read_score_folder(folder: str | os.PathLike, edition: int | str | Edition) -> pd.DataFrame:
    """Read every official score file in ``folder``: columns machine, section, domain, file, score
    (and decision, where the decision files are there). ``domain`` is the file's domain (2021) or
    ``None``. A file named for another edition, or a decision file without its score file, is an
    error naming it."""
    ed = get_edition(edition)
    folder = Path(folder)
    frames, decisions = [], {}
    for path in sorted(folder.glob("*.csv")):
        m = _NAME.match(path.name)
        if m is None:
            continue
        if bool(m["domain"]) != per_domain_files(ed):
            raise DatasetLayoutError(f"{path}: not a DCASE{ed.year} score file name "
                                     f"(expected {score_filename(ed, ed.eval_machines[0], '00', 'source')} style)")
        ed.check_machine(m["machine"])
        key = (m["machine"], m["section"], m["domain"])
        if m["kind"] == "anomaly_score":
            try:
                df = read_anomaly_scores(path)
            except ValueError as e:
                raise DatasetLayoutError(f"{path}: {e}") from e
            frames.append(df.rename(columns={"file_name": "file"}).assign(machine=key[0], section=key[1], domain=key[2]))
        else:
            decisions[key] = (path, read_decisions(path).rename(columns={"file_name": "file"}))
    if not frames:
        raise DatasetLayoutError(f"no anomaly_score_*_test.csv files in {folder}")
    out = []
    for df in frames:
        key = (df["machine"].iat[0], df["section"].iat[0], df["domain"].iat[0])
        if key in decisions:
            dpath, d = decisions.pop(key)
            df = df.merge(d, on="file", how="left", validate="one_to_one")
            if df["decision"].isna().any():
                raise DatasetLayoutError(f"{dpath}: lacks {int(df['decision'].isna().sum())} clips of its score file")
        out.append(df)
    if decisions:
        raise DatasetLayoutError(f"decision files without their score files: {sorted(str(p) for p, _ in decisions.values())}")
    table = pd.concat(out, ignore_index=True)
    cols = ["machine", "section", "domain", "file", "score"] + (["decision"] if "decision" in table else [])
    return table[cols]


def attach_ground_truth(scores: pd.DataFrame, ground_truth: pd.DataFrame) -> pd.DataFrame:
    """Add label (0/1) and domain from the organisers' ground truth (:func:`read_eval_ground_truth`);
    a scored clip the ground truth lacks, or a clip of the ground truth without a score, is an error."""
    gt = ground_truth.rename(columns={"domain": "gt_domain"})
    merged = scores.merge(gt, on=["machine", "section", "file"], how="outer", indicator=True, validate="one_to_one")
    left, right = merged["_merge"] == "left_only", merged["_merge"] == "right_only"
    if left.any() or right.any():
        where = merged.loc[left | right, ["machine", "section", "file"]].head(5).to_records(index=False).tolist()
        raise DatasetLayoutError(f"{int(left.sum())} scored clips not in the ground truth, {int(right.sum())} "
                                 f"ground-truth clips without a score, e.g. {where}")
    domain = merged["domain"].where(merged["domain"].notna(), merged["gt_domain"])
    return merged.drop(columns=["_merge", "gt_domain"]).assign(domain=domain)


def _prf(y: np.ndarray, d: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall, F1 as the evaluators compute them (denominators floored at epsilon)."""
    tn, fp, fn, tp = confusion_matrix(y, d, labels=[0, 1]).ravel()
    prec = tp / np.maximum(tp + fp, EPS)
    rec = tp / np.maximum(tp + fn, EPS)
    f1 = 2.0 * prec * rec / np.maximum(prec + rec, EPS)
    return float(prec), float(rec), float(f1)


def _rows_2021(g: pd.DataFrame, machine: str, section: str) -> list[tuple]:
    rows = []
    for domain in DOMAINS:
        s = g[g["domain"] == domain]
        if s.empty:
            continue
        y, x = s["label"].to_numpy(int), s["score"].to_numpy(float)
        rows += [(machine, section, domain, "AUC", float(roc_auc_score(y, x))),
                 (machine, section, domain, "pAUC", float(roc_auc_score(y, x, max_fpr=MAX_FPR)))]
        if "decision" in s:
            p, r, f = _prf(y, s["decision"].to_numpy(int))
            rows += [(machine, section, domain, "precision", p), (machine, section, domain, "recall", r),
                     (machine, section, domain, "F1 score", f)]
    return rows


def _rows_2022(g: pd.DataFrame, machine: str, section: str) -> list[tuple]:
    y, x, dom = g["label"].to_numpy(int), g["score"].to_numpy(float), g["domain"].to_numpy(object)
    if pd.isna(dom).any():
        raise DatasetLayoutError(f"{machine} section {section}: {int(pd.isna(dom).sum())} clips without a domain "
                                 "(the ground truth's ground_truth_domain/ is needed)")
    rows = [(machine, section, "all", "AUC", float(roc_auc_score(y, x)))]
    for domain in DOMAINS:
        keep = (dom == domain) | (y == 1)  # this domain's normals and every anomaly of the section
        rows.append((machine, section, domain, "AUC", float(roc_auc_score(y[keep], x[keep]))))
    rows.append((machine, section, "all", "pAUC", float(roc_auc_score(y, x, max_fpr=MAX_FPR))))
    if "decision" in g:
        for domain in DOMAINS:
            own = dom == domain
            p, r, f = _prf(y[own], g["decision"].to_numpy(int)[own])
            rows += [(machine, section, domain, "precision", p), (machine, section, domain, "recall", r),
                     (machine, section, domain, "F1 score", f)]
    return rows


def hmean_floored(values) -> float:
    """``scipy.stats.hmean`` of the values floored at machine epsilon (the evaluators' rule)."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"harmonic mean needs finite values, got {v.tolist()}")
    return float(stats.hmean(np.maximum(v, EPS)))


def official_values(tidy: pd.DataFrame, edition: int | str | Edition) -> pd.Series:
    """The values the official score is the harmonic mean of, in the table's order."""
    if per_domain_files(edition):
        return tidy.loc[tidy["metric"].isin(["AUC", "pAUC"]), "value"]
    auc_domain = (tidy["metric"] == "AUC") & tidy["domain"].isin(DOMAINS)
    return tidy.loc[auc_domain | (tidy["metric"] == "pAUC"), "value"]


@dataclass(frozen=True)
class OfficialResult:
    """``tidy``: machine, section, domain, metric, value; ``summary``: the evaluators' mean rows per
    machine and over all (row, metric, value); ``official_score``: the edition's official score."""

    edition: int
    tidy: pd.DataFrame
    summary: pd.DataFrame
    official_score: float


def _summary(tidy: pd.DataFrame, year: int) -> pd.DataFrame:
    """Per machine and over all: arithmetic / harmonic mean and source / target harmonic means of
    AUC (the per-domain AUCs), pAUC and, where present, precision, recall and F1, as printed."""
    rows = []
    per_domain = tidy[tidy["domain"].isin(DOMAINS)]
    pauc = tidy[tidy["metric"] == "pAUC"]  # 2022+: one section-wide pAUC, in every domain's mean
    for scope, part in [*tidy.groupby("machine", sort=False), ("all", tidy)]:
        pd_part = per_domain[per_domain["machine"].isin(part["machine"].unique())]
        pa_part = pauc[pauc["machine"].isin(part["machine"].unique())]
        for metric in ("AUC", "pAUC", "precision", "recall", "F1 score"):
            src = pa_part if (metric == "pAUC" and year != 2021) else pd_part[pd_part["metric"] == metric]
            if src.empty:
                continue
            v = src["value"].to_numpy(float)
            rows += [(scope, "arithmetic mean", metric, float(np.mean(v))),
                     (scope, "harmonic mean", metric, hmean_floored(v))]
            for domain in DOMAINS:
                dv = v if (metric == "pAUC" and year != 2021) else src.loc[src["domain"] == domain, "value"].to_numpy(float)
                if dv.size:
                    rows.append((scope, f"{domain} harmonic mean", metric, hmean_floored(dv)))
    return pd.DataFrame(rows, columns=["machine", "row", "metric", "value"])


def official_scores(clips: pd.DataFrame, edition: int | str | Edition) -> OfficialResult:
    """Official figures for a table with columns machine, section, domain, file, score, label (0/1)
    (and decision, optional). Raises naming the machine and section that has one class only."""
    ed = get_edition(edition)
    if ed.year < 2021:
        raise ValueError("DCASE2020 is scored per machine ID: use asdlib.report.metrics.evaluate")
    rows: list[tuple] = []
    for (machine, section), g in clips.groupby(["machine", "section"], sort=False):
        if g["label"].nunique() < 2:
            raise ValueError(f"{machine} section {section}: the clips are all of one class; no AUC")
        rows += (_rows_2021 if ed.year == 2021 else _rows_2022)(g, machine, section)
    tidy = pd.DataFrame(rows, columns=list(TIDY_COLUMNS))
    return OfficialResult(ed.year, tidy, _summary(tidy, ed.year), hmean_floored(official_values(tidy, ed)))


def evaluate_official(score_folder: str | os.PathLike, ground_truth: str | os.PathLike | pd.DataFrame,
                      edition: int | str | Edition, machines: Sequence[str] | None = None) -> OfficialResult:
    """Read a folder of official score files, label them with the organisers' ground truth (a folder
    as :func:`asdlib.data.editions.read_eval_ground_truth` reads, or its table) and score them."""
    ed = get_edition(edition)
    scores = read_score_folder(score_folder, ed)
    gt = ground_truth if isinstance(ground_truth, pd.DataFrame) else read_eval_ground_truth(ground_truth, ed)
    if machines is not None:
        scores, gt = scores[scores["machine"].isin(machines)], gt[gt["machine"].isin(machines)]
    return official_scores(attach_ground_truth(scores, gt), ed)


_OVER_ALL = " over all machine types, sections, and domains"


def read_evaluator_result(path: str | os.PathLike) -> OfficialResult:
    """Read what an official evaluator wrote (its result CSV, 2021-2025) into an :class:`OfficialResult`
    with the same tidy and summary tables that :func:`official_scores` gives, so that the two can
    be compared entry by entry (``edition`` is 2021 for the per-domain layout, else 2022)."""
    path = Path(path)
    tidy, summary, official = [], [], None
    machine, header, summary_header, year = None, None, None, 2022
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r and any(r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetLayoutError(f"cannot read the evaluator result {path}: {e}") from e
    try:
        for row in rows:
            if len(row) == 1:
                machine, header, summary_header = row[0], None, None
            elif row[0] == "section":
                header = row
                if row[1] == "domain":  # 2021: one row per section and domain, the means below it
                    year, summary_header = 2021, row[2:]
            elif row[0] == "" and row[1] == "":
                summary_header = row[2:]
            elif row[0] == "official score":
                official = float(row[2])
            elif row[0].startswith("official score"):
                continue
            elif row[0].isdigit():
                if header[1] == "domain":
                    tidy += [(machine, row[0], row[1], m, float(v)) for m, v in zip(header[2:], row[2:])]
                else:  # "AUC (source)", "pAUC", "precision (target)", ...
                    for col, v in zip(header[1:], row[1:]):
                        metric, _, dom = col.partition(" (")
                        tidy.append((machine, row[0], dom.rstrip(")") or "all", metric, float(v)))
            else:
                scope = "all" if row[0].endswith(_OVER_ALL) else machine
                summary += [(scope, row[0].removesuffix(_OVER_ALL), m, float(v))
                            for m, v in zip(summary_header, row[2:]) if v != ""]
    except (TypeError, ValueError, IndexError) as e:
        raise DatasetLayoutError(f"{path}: not an official evaluator result file ({e})") from e
    if official is None or not tidy:
        raise DatasetLayoutError(f"{path}: no per-section rows or no 'official score' row")
    return OfficialResult(year, pd.DataFrame(tidy, columns=list(TIDY_COLUMNS)),
                          pd.DataFrame(summary, columns=["machine", "row", "metric", "value"]), official)
