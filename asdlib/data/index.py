"""Index a DCASE2020 Task 2 data root into one tidy table of clips (one row per WAV file).

Layout (``shared/study.md``)::

    <root>/dev_data/<type>/{train,test}/*.wav    dev IDs
    <root>/eval_data/<type>/{train,test}/*.wav   eval IDs (train = the additional training set)
    <root>/eval_data_list.csv                    eval ground truth (or <root>/eval_data/eval_data_list.csv)

Partial data is normal (dev only, test only, a few types): absent dataset, type or part
folders are simply not indexed. Anything *present* that breaks the layout is an error, and
all such problems are collected and reported together, because a silently skipped file
would change every count and metric downstream without anyone noticing.

What is ignored on purpose: hidden entries (names starting with ``.``, e.g. ``.DS_Store``),
``Thumbs.db``/``desktop.ini``, and loose *files* beside the dataset and type folders (a
README, the ground truth). Inside ``train``/``test`` every other entry must be a WAV file
named as the challenge names it.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from ..core.errors import ConfigError, DatasetLayoutError
from ..core.machines import (
    DATASET_DIRS,
    DATASETS,
    EVAL_IDS,
    EVAL_TEST_NAME,
    GROUND_TRUTH_FILE,
    LABEL_ANOMALY,
    LABEL_NORMAL,
    LABEL_UNKNOWN,
    LABELLED_NAME,
    MACHINE_TYPES,
    PARTS,
    STANDARD_CLIP_SECONDS,
    machine_ids,
)

COLUMNS = ("path", "relpath", "dataset", "part", "machine_type", "machine_id", "label", "file")
LABEL_NAMES = {LABEL_NORMAL: "normal", LABEL_ANOMALY: "anomaly", LABEL_UNKNOWN: "unknown"}
EXPECTED_LAYOUT = "<root>/{dev_data,eval_data}/<type>/{train,test}/*.wav"
IGNORED_NAMES = frozenset({"Thumbs.db", "desktop.ini"})
MAX_LISTED = 10  # problems quoted in an error message; the total is always given


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the layout: where, and what (said so that the fix is clear)."""

    path: Path
    reason: str


def _raise_problems(problems: list[Problem], what: str) -> None:
    if not problems:
        return
    lines = [f"  {p.path}: {p.reason}" for p in problems[:MAX_LISTED]]
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    raise DatasetLayoutError(f"{len(problems)} problem(s) in {what}:\n" + "\n".join(lines) + more)


def _ignored(name: str) -> bool:
    return name.startswith(".") or name in IGNORED_NAMES


def find_ground_truth(root: str | os.PathLike) -> Path | None:
    """``<root>/eval_data_list.csv``, else ``<root>/eval_data/eval_data_list.csv``, else ``None``."""
    root = Path(root)
    for candidate in (root / GROUND_TRUTH_FILE, root / DATASET_DIRS["eval"] / GROUND_TRUTH_FILE):
        if candidate.is_file():
            return candidate
    return None


def read_ground_truth(path: str | os.PathLike) -> dict[tuple[str, str], int]:
    """Parse the official ``eval_data_list.csv`` into ``{(machine_type, file): label}``.

    Format (as the official evaluator reads it with ``csv.reader``): a row with a single
    cell names a machine type; the rows after it are ``id_XX_NNNNNNNN.wav,<original name>,<0|1>``
    for that type. Blank lines are tolerated. Every problem is collected and raised as one
    :class:`DatasetLayoutError` with line numbers, which is also how the downloader verifies
    this file (it has no published md5).
    """
    path = Path(path)
    labels: dict[tuple[str, str], int] = {}
    problems: list[Problem] = []
    current: str | None = None
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetLayoutError(f"cannot read the ground truth {path}: {e}") from e
    for lineno, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        where = Path(f"{path}:{lineno}")
        if len(cells) == 1 or (len(cells) > 1 and not any(cells[1:])):
            current = cells[0]
            if current not in MACHINE_TYPES:
                problems.append(Problem(where, f"unknown machine type {current!r} (expected one of {', '.join(MACHINE_TYPES)})"))
                current = None
            continue
        if current is None:
            problems.append(Problem(where, "clip row before any machine type line (or under an unknown type)"))
            continue
        m = EVAL_TEST_NAME.match(cells[0])
        if len(cells) != 3 or m is None or cells[2] not in ("0", "1"):
            problems.append(Problem(where, f"expected 'id_XX_NNNNNNNN.wav,<original name>,<0|1>', got {','.join(row)!r}"))
            continue
        if m["id"] not in EVAL_IDS[current]:
            problems.append(Problem(where, f"ID {m['id']} is not an evaluation ID of {current} ({', '.join(EVAL_IDS[current])})"))
            continue
        key, label = (current, cells[0]), int(cells[2])
        if labels.get(key, label) != label:
            problems.append(Problem(where, f"{cells[0]} of {current} listed twice with different labels"))
        labels[key] = label
    if not labels and not problems:
        problems.append(Problem(path, "no clip rows at all"))
    _raise_problems(problems, f"the ground truth {path}")
    return labels


def _classify(name: str, dataset: str, part: str) -> tuple[str, int] | str:
    """``(id, label)`` for a well-named clip, or the reason the name is wrong."""
    labelled, unlabelled = LABELLED_NAME.match(name), EVAL_TEST_NAME.match(name)
    if dataset == "eval" and part == "test":
        if unlabelled:
            return unlabelled["id"], LABEL_UNKNOWN
        if labelled:
            return "evaluation test clips are named id_XX_NNNNNNNN.wav (labels come from the ground truth), not with a label"
        return "not an evaluation test clip name (id_XX_NNNNNNNN.wav)"
    if labelled:
        label = LABEL_ANOMALY if labelled["label"] == "anomaly" else LABEL_NORMAL
        if part == "train" and label == LABEL_ANOMALY:
            return "anomalous clip in a training folder (training data is normal only)"
        return labelled["id"], label
    expected = "normal_id_XX_NNNNNNNN.wav" if part == "train" else "{normal,anomaly}_id_XX_NNNNNNNN.wav"
    return f"name does not follow the naming {expected}"


def _check_selection(values: Iterable[str] | None, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    if values is None:
        return allowed
    values = (values,) if isinstance(values, str) else tuple(values)
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ConfigError(f"unknown {what} {', '.join(map(repr, bad))}; expected some of {', '.join(allowed)}")
    return values


def index_dataset(
    root: str | os.PathLike,
    datasets: Iterable[str] = DATASETS,
    machine_types: Iterable[str] | None = None,
    parts: Iterable[str] = PARTS,
    ground_truth: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """One row per clip: ``path, relpath, dataset, part, machine_type, machine_id, label, file``.

    ``label`` is 0 (normal), 1 (anomaly) or -1 (unknown: an eval test clip without a ground
    truth file). ``ground_truth`` overrides where the ground truth is looked for. Rows are
    sorted by (dataset, machine_type, part, machine_id, file) with a fresh RangeIndex, so
    the same data gives the same table on every machine. Raises :class:`DatasetLayoutError`
    listing every problem found, or when nothing at all is found.
    """
    root = Path(root).expanduser().resolve()
    datasets = _check_selection(datasets, DATASETS, "dataset")
    types = _check_selection(machine_types, MACHINE_TYPES, "machine type")
    parts = _check_selection(parts, PARTS, "part")
    if not root.is_dir():
        raise DatasetLayoutError(f"data root {root} does not exist or is not a folder; expected {EXPECTED_LAYOUT}")

    truth: dict[tuple[str, str], int] | None = None
    if "eval" in datasets and "test" in parts:
        gt_path = Path(ground_truth) if ground_truth is not None else find_ground_truth(root)
        if ground_truth is not None and not gt_path.is_file():
            raise DatasetLayoutError(f"ground truth {gt_path} not found; download it with `asdlib download --parts truth`")
        if gt_path is not None and (root / DATASET_DIRS["eval"]).is_dir():
            truth = read_ground_truth(gt_path)

    rows: list[dict] = []
    problems: list[Problem] = []
    for dataset in datasets:
        ds_dir = root / DATASET_DIRS[dataset]
        if not ds_dir.is_dir():
            continue
        for type_entry in sorted(os.scandir(ds_dir), key=lambda e: e.name):
            if _ignored(type_entry.name) or not type_entry.is_dir():
                continue
            machine_type = type_entry.name
            if machine_type not in MACHINE_TYPES:
                problems.append(Problem(Path(type_entry.path), f"unknown machine type folder (expected one of {', '.join(MACHINE_TYPES)})"))
                continue
            if machine_type not in types:
                continue
            for part_entry in sorted(os.scandir(type_entry.path), key=lambda e: e.name):
                if _ignored(part_entry.name) or not part_entry.is_dir():
                    continue
                if part_entry.name not in PARTS:
                    problems.append(Problem(Path(part_entry.path), "unexpected folder (a type folder holds only train/ and test/)"))
                    continue
                part = part_entry.name
                if part not in parts:
                    continue
                valid_ids = machine_ids(machine_type, dataset)
                for entry in sorted(os.scandir(part_entry.path), key=lambda e: e.name):
                    if _ignored(entry.name):
                        continue
                    path = Path(entry.path)
                    if not entry.is_file() or not entry.name.endswith(".wav"):
                        problems.append(Problem(path, "not a .wav file (train/ and test/ hold only clips)"))
                        continue
                    got = _classify(entry.name, dataset, part)
                    if isinstance(got, str):
                        problems.append(Problem(path, got))
                        continue
                    machine_id, label = got
                    if machine_id not in valid_ids:
                        problems.append(
                            Problem(path, f"ID {machine_id} is not a {dataset} ID of {machine_type} (valid: {', '.join(valid_ids)})")
                        )
                        continue
                    if dataset == "eval" and part == "test" and truth is not None:
                        if (machine_type, entry.name) not in truth:
                            problems.append(Problem(path, f"missing from the ground truth {gt_path}"))
                            continue
                        label = truth[(machine_type, entry.name)]
                    rows.append(
                        {
                            "path": str(path),
                            "relpath": path.relative_to(root).as_posix(),
                            "dataset": dataset,
                            "part": part,
                            "machine_type": machine_type,
                            "machine_id": machine_id,
                            "label": label,
                            "file": entry.name,
                        }
                    )
    _raise_problems(problems, f"the data root {root} (expected {EXPECTED_LAYOUT})")
    if not rows:
        raise DatasetLayoutError(
            f"no clips found under {root} for datasets={list(datasets)}, types={list(types)}, parts={list(parts)}; "
            f"expected {EXPECTED_LAYOUT} (get the data with `asdlib download --root {root}`)"
        )
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df["label"] = df["label"].astype("int64")
    return df.sort_values(["dataset", "machine_type", "part", "machine_id", "file"], kind="stable").reset_index(drop=True)


def summarize_index(df: pd.DataFrame) -> pd.DataFrame:
    """Tidy counts: one row per (dataset, machine_type, machine_id, part, label) with ``n`` clips.

    ``label_name`` spells the label out (normal/anomaly/unknown) for printing.
    """
    keys = ["dataset", "machine_type", "machine_id", "part", "label"]
    out = df.groupby(keys, sort=True).size().rename("n").reset_index()
    out["label_name"] = out["label"].map(LABEL_NAMES)
    return out[keys[:-1] + ["label", "label_name", "n"]]


def pivot_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Readable pivot: rows (dataset, type, ID), columns ``<part> <label>`` and ``total``."""
    tidy = summarize_index(df)
    tidy["column"] = tidy["part"] + " " + tidy["label_name"]
    table = tidy.pivot_table(index=["dataset", "machine_type", "machine_id"], columns="column", values="n", aggfunc="sum", fill_value=0)
    order = [f"{p} {n}" for p in ("train", "test") for n in ("normal", "anomaly", "unknown")]
    table = table[[c for c in order if c in table.columns]].astype("int64")
    table.columns.name = None
    table["total"] = table.sum(axis=1)
    return table


def index_roots(index: pd.DataFrame) -> list[Path]:
    """The data roots an index's rows come from (``path`` minus ``relpath``), sorted; empty when
    the rows do not say (an index built by hand without matching path and relpath)."""
    roots = set()
    if not {"path", "relpath"} <= set(index.columns):
        return []
    for path, rel in zip(index["path"], index["relpath"]):
        p, rel = Path(path).as_posix(), str(rel)
        if not p.endswith("/" + rel):
            return []
        roots.add(Path(p[: -len(rel) - 1]))
    return sorted(roots)


def known_clip_seconds(root: str | os.PathLike) -> tuple[float, str]:
    """``(seconds, where that comes from)``: the clip length a data root is known to have.

    The real DCASE2020 data: 10 s (``STANDARD_CLIP_SECONDS``; ToyCar's 11-s clips keep their
    first 10 s). A synthetic root (``asdlib synth``) records its length in its manifest
    (``synth_manifest.json``: the profile's ``clip_seconds``, ToyCar's clips being 1.1 times
    that). The length is a property of the dataset, never of the clips found: one short clip
    must not shorten every clip of a feature cache.
    """
    from .synth import MANIFEST_FILE, read_manifest

    manifest = read_manifest(root)
    if manifest is None:
        return STANDARD_CLIP_SECONDS, (f"the DCASE2020 clip length ({STANDARD_CLIP_SECONDS:g} s; ToyCar's "
                                       f"11-s clips keep their first {STANDARD_CLIP_SECONDS:g} s)")
    profile = manifest.get("profile") or {}
    if "clip_seconds" in profile:
        seconds = float(profile["clip_seconds"])
    else:
        samples, sr = manifest.get("clip_samples") or {}, manifest.get("sample_rate")
        if not samples or not sr:
            raise DatasetLayoutError(f"{Path(root) / MANIFEST_FILE}: records no clip length (profile.clip_seconds)")
        seconds = min(samples.values()) / float(sr)
    return seconds, (f"the synthetic dataset's clip length ({seconds:g} s, from {MANIFEST_FILE}, profile "
                     f"{profile.get('name', '?')}; ToyCar's clips keep their first {seconds:g} s)")
