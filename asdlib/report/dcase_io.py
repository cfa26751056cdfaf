"""The files that the DCASE baselines write, so that our outputs can be compared with theirs.

- ``anomaly_score_<type>_id_XX.csv``: one ``file_name,score`` row per test clip, no
  header (the DCASE2020 baseline's ``save_csv``); file names are base names.
- ``decision_result_<type>_id_XX.csv``: ``file_name,0|1`` rows (DCASE2021+ baselines).
- the per-type result CSV: a line with the machine type, an ``id,AUC,pAUC`` header,
  one row per ID (the ID without its ``id_`` prefix, as the 2020 baseline writes it),
  then an ``Average`` row; values are fractions, as the baseline writes them.

Every writer goes through :func:`asdlib.core.utils.atomic_write`, so a killed run never
leaves a half-written score file that an evaluator would read as complete.
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..core.machines import check_type
from ..core.utils import atomic_write


def _check_id(machine_id: str) -> str:
    machine_id = str(machine_id)
    if not (len(machine_id) == 2 and machine_id.isdigit()):
        raise ValueError(f"machine ID must be two digits like '01', got {machine_id!r}")
    return machine_id


def anomaly_score_filename(machine_type: str, machine_id: str) -> str:
    """``anomaly_score_<type>_id_XX.csv``, the name the DCASE2020 baseline uses."""
    return f"anomaly_score_{check_type(machine_type)}_id_{_check_id(machine_id)}.csv"


def decision_result_filename(machine_type: str, machine_id: str) -> str:
    """``decision_result_<type>_id_XX.csv``, the name the DCASE2021+ baselines use."""
    return f"decision_result_{check_type(machine_type)}_id_{_check_id(machine_id)}.csv"


def _write_rows(path: str | os.PathLike, rows: Iterable[Sequence]) -> Path:
    path = Path(path)
    with atomic_write(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerows(rows)
    return path


def _names(files: Sequence[str | os.PathLike], n: int, what: str) -> list[str]:
    if len(files) != n:
        raise ValueError(f"{len(files)} files but {n} {what}")
    return [os.path.basename(os.fspath(f)) for f in files]


def write_anomaly_scores(path: str | os.PathLike, files: Sequence[str | os.PathLike], scores) -> Path:
    """Write ``file_name,score`` rows (no header); scores must be finite."""
    s = np.asarray(scores, dtype=float).ravel()
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{int(np.sum(~np.isfinite(s)))} anomaly scores are NaN or infinite; not writing {path}")
    return _write_rows(path, zip(_names(files, s.size, "scores"), (repr(float(v)) for v in s)))


def read_anomaly_scores(path: str | os.PathLike) -> pd.DataFrame:
    """Read a score file back as columns file_name (str) and score (float)."""
    df = pd.read_csv(path, header=None, names=["file_name", "score"], dtype={"file_name": str, "score": float})
    if df["score"].isna().any():
        raise ValueError(f"{path}: {int(df['score'].isna().sum())} rows without a score")
    return df


def write_decisions(path: str | os.PathLike, files: Sequence[str | os.PathLike], decisions) -> Path:
    """Write ``file_name,0|1`` rows (1 = anomalous), no header."""
    d = np.asarray(decisions).ravel()
    if not np.isin(d, (0, 1)).all():
        raise ValueError(f"decisions must be 0 or 1, got {sorted(set(d.tolist()) - {0, 1})[:5]}")
    return _write_rows(path, zip(_names(files, d.size, "decisions"), (int(v) for v in d)))


def read_decisions(path: str | os.PathLike) -> pd.DataFrame:
    return pd.read_csv(path, header=None, names=["file_name", "decision"], dtype={"file_name": str, "decision": int})


def _per_id_wide(per_id_rows: pd.DataFrame | Iterable[tuple[str, float, float]]) -> pd.DataFrame:
    """Accept evaluate()'s long rows (metric/value) or (id, AUC, pAUC) rows; return id, AUC, pAUC."""
    if isinstance(per_id_rows, pd.DataFrame):
        df = per_id_rows
        if "metric" in df.columns:
            df = df.pivot_table(index="machine_id", columns="metric", values="value", aggfunc="first").reset_index()
        df = df.rename(columns={"machine_id": "id"})
    else:
        df = pd.DataFrame(list(per_id_rows), columns=["id", "AUC", "pAUC"])
    missing = [c for c in ("id", "AUC", "pAUC") if c not in df.columns]
    if missing:
        raise ValueError(f"per-ID rows lack {missing}")
    df = df[["id", "AUC", "pAUC"]].copy()
    df["id"] = [_check_id(str(i).removeprefix("id_")) for i in df["id"]]
    return df.sort_values("id").reset_index(drop=True)


def write_type_result(path: str | os.PathLike, per_id_rows, machine_type: str | None = None) -> Path:
    """The baseline's result CSV for one type: type line, id/AUC/pAUC rows, Average row.

    ``per_id_rows`` is :func:`asdlib.report.metrics.evaluate` output for one type (the type is
    read from it) or (id, AUC, pAUC) tuples with ``machine_type`` given.
    """
    if machine_type is None:
        types = set(per_id_rows["machine_type"]) if isinstance(per_id_rows, pd.DataFrame) and \
            "machine_type" in per_id_rows else set()
        if len(types) != 1:
            raise ValueError(f"need exactly one machine type in the rows or as an argument, got {sorted(types)}")
        machine_type = types.pop()
    check_type(machine_type)
    if isinstance(per_id_rows, pd.DataFrame) and "dataset" in per_id_rows and per_id_rows["dataset"].nunique() > 1:
        raise ValueError("rows mix dev and eval; write one result file per dataset")
    wide = _per_id_wide(per_id_rows)
    if wide.empty:
        raise ValueError(f"no per-ID results for {machine_type}")
    rows: list[Sequence] = [[machine_type], ["id", "AUC", "pAUC"]]
    rows += [[r.id, repr(float(r.AUC)), repr(float(r.pAUC))] for r in wide.itertuples()]
    rows.append(["Average", repr(float(wide["AUC"].mean())), repr(float(wide["pAUC"].mean()))])
    return _write_rows(path, rows)


def read_type_result(path: str | os.PathLike) -> tuple[str, pd.DataFrame, tuple[float, float]]:
    """Read a result CSV back: (machine type, per-ID frame id/AUC/pAUC, (average AUC, average pAUC))."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    if len(rows) < 3 or rows[1] != ["id", "AUC", "pAUC"] or rows[-1][0] != "Average":
        raise ValueError(f"{path} is not a DCASE2020 per-type result file")
    per_id = pd.DataFrame([(r[0], float(r[1]), float(r[2])) for r in rows[2:-1]], columns=["id", "AUC", "pAUC"])
    avg = (float(rows[-1][1]), float(rows[-1][2]))
    if not all(math.isfinite(v) for v in avg):
        raise ValueError(f"{path}: the Average row is not finite")
    return rows[0][0], per_id, avg
