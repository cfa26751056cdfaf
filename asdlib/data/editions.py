"""The DCASE Task 2 editions 2020-2025 as data: one :class:`Edition` table per year, one parser.

Every edition differs only in *values* (machine types, sections, folders, the file-name
grammar, clip lengths, Zenodo records, counts), so each is a row of :data:`EDITIONS`, never
code per year. :func:`parse_clip` reads one file name against an edition's table and
:func:`index_edition` turns a data root into one tidy row per clip.

Layout (as the archives extract; the same for every edition)::

    <root>/dev_data/<machine>/<folder>/<name>.wav     development data
    <root>/eval_data/<machine>/<folder>/<name>.wav    additional training + evaluation test
    <root>/{dev,eval}_data/<machine>/attributes_XX.csv   2022-2025: attributes per section

``<folder>`` is ``train`` and ``test`` (2021: ``source_test``/``target_test``; 2025 also
``supplemental``). Names (``NNNN`` is the clip number, ``<attrs>`` ``key_value`` pairs such as
``car_C2_spd_34V_mic_1``, or ``noAttribute``):

- 2020: ``{normal,anomaly}_id_XX_NNNNNNNN.wav``; eval test ``id_XX_NNNNNNNN.wav``.
- 2021: ``section_XX_<source|target>_<train|test>_<normal|anomaly>_NNNN[_<attrs>].wav``;
  eval test ``section_XX_<source|target>_test_NNNN.wav``.
- 2022-2025: ``section_XX_<source|target>_<train|test>_<normal|anomaly>_NNNN_<attrs>.wav``;
  eval test ``section_XX_NNNN.wav`` (no domain, no label: both come from the ground truth).

Eval labels come from the organisers' published ground truth (their evaluator repositories):
``ground_truth_data/ground_truth_<machine>_section_XX_test.csv`` (``file,label``; 2021:
``..._section_XX_<domain>_test.csv``) and, 2022-2025, ``ground_truth_domain/...`` (``file,0|1``,
1 = target), read by :func:`read_eval_ground_truth`.

Figures that are not published per file (the 2024/2025 eval clip lengths, the 2025
supplemental names) are marked *assumed* where they are set.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping

import pandas as pd

from ..core.errors import ConfigError, DatasetLayoutError
from ..core.machines import DEV_IDS as _DEV_IDS_2020
from ..core.machines import EVAL_IDS as _EVAL_IDS_2020
from ..core.machines import MACHINE_TYPES as _MACHINES_2020

DATASET_DIRS: Mapping[str, str] = MappingProxyType({"dev": "dev_data", "eval": "eval_data"})
DOMAINS = ("source", "target")
SPLITS = ("train", "test", "supplemental")
INDEX_COLUMNS = ("edition", "dataset", "machine", "section", "domain", "split", "label", "attributes",
                 "number", "file", "path", "relpath")
NO_ATTRIBUTE = "noAttribute"

# The grammar, shared by the editions that share it. Named groups: section, domain, split,
# label, number, attrs. A grammar entry is (folder kind, regex); "labelled" names carry a label.
_SECTIONED = (r"^section_(?P<section>\d{2})_(?P<domain>source|target)_(?P<split>train|test)_"
              r"(?P<label>normal|anomaly)_(?P<number>\d{4})(?:_(?P<attrs>.+))?\.wav$")
_EVAL_2021 = r"^section_(?P<section>\d{2})_(?P<domain>source|target)_test_(?P<number>\d{4})\.wav$"
_EVAL_2022 = r"^section_(?P<section>\d{2})_(?P<number>\d{4})\.wav$"
_LABELLED_2020 = r"^(?P<label>normal|anomaly)_id_(?P<section>\d{2})_(?P<number>\d{8})\.wav$"
_EVAL_2020 = r"^id_(?P<section>\d{2})_(?P<number>\d{8})\.wav$"
# assumed: the 2025 supplemental clips keep the section prefix; the rest of the name is kept as is
_SUPPLEMENTAL = r"^section_(?P<section>\d{2})_(?P<rest>.+)\.wav$"


@dataclass(frozen=True)
class Records:
    """Zenodo record numbers: development, additional training (eval machines/sections), eval test."""

    dev: str
    additional: str
    eval: str
    note: str = ""


@dataclass(frozen=True)
class Archives:
    """Archive names in the records, as ``str.format`` patterns over ``machine``.

    ``overrides`` maps (part, machine) to a name that breaks the pattern (2024's ``_train_r2``).
    """

    dev: str
    additional: str
    eval: str
    overrides: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def name(self, part: str, machine: str) -> str:
        if part not in ("dev", "additional", "eval"):
            raise ConfigError(f"unknown archive part {part!r}; expected dev, additional or eval")
        return self.overrides.get((part, machine), getattr(self, part).format(machine=machine))


@dataclass(frozen=True)
class Edition:
    """One DCASE Task 2 edition as data.

    ``dev_sections``/``eval_sections`` map each machine type to its sections (2020: its
    machine IDs, which play the role of sections). ``train_counts`` is per section and domain
    (``{"source": 990, "target": 10}``); ``test_counts`` per section, domain and label of the
    development test set (eval counts vary per machine, see the ground truth). ``clip_seconds``
    maps a machine to its clip length; others have ``default_clip_seconds``.
    """

    year: int
    dev_machines: tuple[str, ...]
    eval_machines: tuple[str, ...]
    dev_sections: Mapping[str, tuple[str, ...]]
    eval_sections: Mapping[str, tuple[str, ...]]
    train_folders: tuple[str, ...]
    test_folders: tuple[str, ...]
    labelled_name: str
    eval_test_name: str
    domains: tuple[str, ...]
    records: Records
    archives: Archives
    train_counts: Mapping[str, int]
    test_counts: Mapping[tuple[str, str], int]
    default_clip_seconds: float = 10.0
    clip_seconds: Mapping[str, float] = field(default_factory=dict)
    clip_seconds_note: str = ""
    attributes_csv: str | None = None  # "attributes_{section}.csv" in the machine folder
    supplemental_folder: str | None = None
    supplemental_per_machine: int = 0
    ground_truth_per_domain: bool = False  # 2021: ground truth files per section and domain
    ground_truth_has_domain: bool = False  # 2022+: ground_truth_domain/ beside ground_truth_data/

    @property
    def machines(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.dev_machines + self.eval_machines))

    @property
    def folders(self) -> tuple[str, ...]:
        sup = (self.supplemental_folder,) if self.supplemental_folder else ()
        return self.train_folders + self.test_folders + sup

    def check_machine(self, machine: str, dataset: str | None = None) -> str:
        allowed = self.machines if dataset is None else (self.dev_machines if dataset == "dev" else self.eval_machines)
        if machine not in allowed:
            where = "" if dataset is None else f" {dataset}"
            raise DatasetLayoutError(f"unknown{where} machine type {machine!r} for DCASE{self.year}; "
                                     f"expected one of {', '.join(allowed)}")
        return machine

    def sections(self, machine: str, dataset: str) -> tuple[str, ...]:
        table = self.dev_sections if dataset == "dev" else self.eval_sections
        return table.get(machine, ())

    def seconds(self, machine: str) -> float:
        """The clip length of a machine type in this edition (the feature length is built from it)."""
        self.check_machine(machine)
        return float(self.clip_seconds.get(machine, self.default_clip_seconds))

    def attributes_file(self, machine: str, section: str) -> str | None:
        return None if self.attributes_csv is None else self.attributes_csv.format(section=section, machine=machine)


def _same(machines: tuple[str, ...], sections: tuple[str, ...]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({m: sections for m in machines})


_DEV_2023 = ("bearing", "fan", "gearbox", "slider", "ToyCar", "ToyTrain", "valve")
_M2021 = ("fan", "gearbox", "pump", "slider", "ToyCar", "ToyTrain", "valve")
_M2022 = ("bearing", "fan", "gearbox", "slider", "ToyCar", "ToyTrain", "valve")
_EVAL_2023 = ("bandsaw", "grinder", "shaker", "ToyDrone", "ToyNscale", "ToyTank", "Vacuum")
_EVAL_2024 = ("3DPrinter", "AirCompressor", "BrushlessMotor", "HairDryer", "HoveringDrone", "RoboticArm",
              "Scanner", "ToothBrush", "ToyCircuit")
_EVAL_2025 = ("AutoTrash", "BandSealer", "CoffeeGrinder", "HomeCamera", "Polisher", "ScrewFeeder", "ToyPet",
              "ToyRCCar")
_DEV_SECTIONS, _EVAL_SECTIONS, _S00 = ("00", "01", "02"), ("03", "04", "05"), ("00",)
_BALANCED_50 = MappingProxyType({(d, lab): 50 for d in DOMAINS for lab in ("normal", "anomaly")})
_FIRST_SHOT_ARCHIVES = Archives("dev_{machine}.zip", "eval_data_{machine}_train.zip", "eval_data_{machine}_test.zip")
_TRAIN_990_10 = MappingProxyType({"source": 990, "target": 10})


EDITIONS: Mapping[int, Edition] = MappingProxyType({
    2020: Edition(
        year=2020, dev_machines=_MACHINES_2020, eval_machines=_MACHINES_2020,
        dev_sections=MappingProxyType(dict(_DEV_IDS_2020)), eval_sections=MappingProxyType(dict(_EVAL_IDS_2020)),
        train_folders=("train",), test_folders=("test",),
        labelled_name=_LABELLED_2020, eval_test_name=_EVAL_2020, domains=(),
        records=Records("3678171", "3727685", "3841772", note="ground truth: record 3951620 (eval_data_list.csv)"),
        archives=Archives("dev_data_{machine}.zip", "eval_data_train_{machine}.zip", "eval_data_test_{machine}.zip"),
        train_counts=MappingProxyType({"source": 1000}),  # about 1,000 per ID (varies per ID)
        test_counts=MappingProxyType({}),  # varies per ID; see shared/study.md
        clip_seconds=MappingProxyType({"ToyCar": 11.0}),
        clip_seconds_note="ToyCar 11 s, others 10 s; features keep the first 10 s",
    ),
    2021: Edition(
        year=2021, dev_machines=_M2021, eval_machines=_M2021,
        dev_sections=_same(_M2021, _DEV_SECTIONS), eval_sections=_same(_M2021, _EVAL_SECTIONS),
        train_folders=("train",), test_folders=("source_test", "target_test"),
        labelled_name=_SECTIONED, eval_test_name=_EVAL_2021, domains=DOMAINS,
        records=Records("4562016", "4660992", "4884786"),
        archives=Archives("dev_data_{machine}.zip", "eval_data_{machine}_train.zip", "eval_data_{machine}_test.zip"),
        train_counts=MappingProxyType({"source": 1000, "target": 3}),
        test_counts=MappingProxyType({(d, lab): 100 for d in DOMAINS for lab in ("normal", "anomaly")}),
        ground_truth_per_domain=True,
    ),
    2022: Edition(
        year=2022, dev_machines=_M2022, eval_machines=_M2022,
        dev_sections=_same(_M2022, _DEV_SECTIONS), eval_sections=_same(_M2022, _EVAL_SECTIONS),
        train_folders=("train",), test_folders=("test",),
        labelled_name=_SECTIONED, eval_test_name=_EVAL_2022, domains=DOMAINS,
        records=Records("6355122", "6462969", "6586456"), archives=_FIRST_SHOT_ARCHIVES,
        train_counts=_TRAIN_990_10, test_counts=_BALANCED_50,
        attributes_csv="attributes_{section}.csv", ground_truth_has_domain=True,
    ),
    2023: Edition(
        year=2023, dev_machines=_DEV_2023, eval_machines=_EVAL_2023,
        dev_sections=_same(_DEV_2023, _S00), eval_sections=_same(_EVAL_2023, _S00),
        train_folders=("train",), test_folders=("test",),
        labelled_name=_SECTIONED, eval_test_name=_EVAL_2022, domains=DOMAINS,
        records=Records("7882613", "7830345", "7860847"), archives=_FIRST_SHOT_ARCHIVES,
        train_counts=_TRAIN_990_10, test_counts=_BALANCED_50,
        clip_seconds=MappingProxyType({"ToyCar": 12.0, "ToyTrain": 12.0}),
        clip_seconds_note="ToyCar and ToyTrain 12 s, others 10 s",
        attributes_csv="attributes_{section}.csv", ground_truth_has_domain=True,
    ),
    2024: Edition(
        year=2024, dev_machines=_DEV_2023, eval_machines=_EVAL_2024,
        dev_sections=_same(_DEV_2023, _S00), eval_sections=_same(_EVAL_2024, _S00),
        train_folders=("train",), test_folders=("test",),
        labelled_name=_SECTIONED, eval_test_name=_EVAL_2022, domains=DOMAINS,
        records=Records("10902294", "11259435", "11363076",
                        note="3DPrinter and RoboticArm training data as eval_data_<machine>_train_r2.zip"),
        archives=Archives(_FIRST_SHOT_ARCHIVES.dev, _FIRST_SHOT_ARCHIVES.additional, _FIRST_SHOT_ARCHIVES.eval,
                          MappingProxyType({("additional", m): f"eval_data_{m}_train_r2.zip"
                                            for m in ("3DPrinter", "RoboticArm")})),
        train_counts=_TRAIN_990_10, test_counts=_BALANCED_50,
        clip_seconds=MappingProxyType({"ToyCar": 12.0, "ToyTrain": 12.0}),
        clip_seconds_note="dev as 2023; eval machines assumed 10 s (the shortest clip rule applies)",
        attributes_csv="attributes_{section}.csv", ground_truth_has_domain=True,
    ),
    2025: Edition(
        year=2025, dev_machines=_DEV_2023, eval_machines=_EVAL_2025,
        dev_sections=_same(_DEV_2023, _S00), eval_sections=_same(_EVAL_2025, _S00),
        train_folders=("train",), test_folders=("test",),
        labelled_name=_SECTIONED, eval_test_name=_EVAL_2022, domains=DOMAINS,
        records=Records("15097779", "15392814", "15519362"), archives=_FIRST_SHOT_ARCHIVES,
        train_counts=_TRAIN_990_10, test_counts=_BALANCED_50,
        clip_seconds=MappingProxyType({"ToyCar": 12.0, "ToyTrain": 12.0}),
        # assumed: 6-10 s per eval machine; the shortest (6 s) is the safe feature length
        default_clip_seconds=10.0,
        clip_seconds_note="dev as 2023; eval machines 6-10 s (per machine not tabulated here: assumed 6 s "
                          "minimum, see min_clip_seconds)",
        attributes_csv="attributes_{section}.csv", ground_truth_has_domain=True,
        supplemental_folder="supplemental", supplemental_per_machine=100,
    ),
})
# The eval machines of 2025 are only known to be 6-10 s long: a feature length must not exceed this.
_MIN_SECONDS = {2025: {m: 6.0 for m in _EVAL_2025}}


def get_edition(edition: int | str | Edition) -> Edition:
    """The table of an edition (``2023``, ``"2023"`` or ``"dcase2023"``); clear error otherwise."""
    if isinstance(edition, Edition):
        return edition
    key = str(edition).lower().removeprefix("dcase")
    if not key.isdigit() or int(key) not in EDITIONS:
        raise ConfigError(f"unknown edition {edition!r}; expected one of {', '.join(map(str, EDITIONS))}")
    return EDITIONS[int(key)]


def min_clip_seconds(edition: int | str | Edition, machine: str) -> float:
    """The length every clip of a machine is known to reach (a safe feature length)."""
    ed = get_edition(edition)
    return float(_MIN_SECONDS.get(ed.year, {}).get(machine, ed.seconds(machine)))


def feature_seconds(edition: int | str | Edition, machines: Iterable[str] | None = None) -> float:
    """One feature length for a set of machines (default: all of the edition): the shortest clip
    length among them, so that no clip is too short (longer clips keep their first seconds)."""
    ed = get_edition(edition)
    return min(min_clip_seconds(ed, m) for m in (ed.machines if machines is None else machines))


@dataclass(frozen=True)
class Clip:
    """One clip as its name and folders say. ``label`` is ``"normal"``/``"anomaly"`` or ``None``
    (an eval test clip before its ground truth is applied, a supplemental clip); ``domain`` is
    ``"source"``/``"target"`` or ``None`` (2020; a 2022-2025 eval test clip before the ground truth)."""

    edition: int
    dataset: str
    machine: str
    section: str
    domain: str | None
    split: str
    label: str | None
    attributes: Mapping[str, str]
    number: int
    path: Path

    @property
    def file(self) -> str:
        return self.path.name


def parse_attributes(text: str | None) -> dict[str, str]:
    """``car_C2_spd_34V_mic_1`` -> ``{car: C2, spd: 34V, mic: 1}``; ``noAttribute``/``None`` -> ``{}``.

    A string that is not ``key_value`` pairs (an odd number of parts) is kept whole under
    ``"attributes"``, so no name that the organisers publish is refused for its attributes.
    """
    if not text or text == NO_ATTRIBUTE:
        return {}
    parts = text.split("_")
    if len(parts) % 2:
        return {"attributes": text}
    return {parts[i]: parts[i + 1] for i in range(0, len(parts), 2)}


def format_attributes(attributes: Mapping[str, str] | None) -> str:
    """The inverse of :func:`parse_attributes`: ``{car: C2, spd: 34V}`` -> ``car_C2_spd_34V``; empty -> ``noAttribute``."""
    if not attributes:
        return NO_ATTRIBUTE
    if set(attributes) == {"attributes"}:
        return attributes["attributes"]
    return "_".join(f"{k}_{v}" for k, v in attributes.items())


def clip_folder(edition: int | str | Edition, split: str, domain: str | None = None) -> str:
    """The folder under ``<machine>/`` that holds a clip: ``train``, ``test`` (2021: ``<domain>_test``)."""
    ed = get_edition(edition)
    if split == "train":
        return ed.train_folders[0]
    if split == "supplemental" and ed.supplemental_folder:
        return ed.supplemental_folder
    if split != "test":
        raise ConfigError(f"DCASE{ed.year} has no {split!r} clips")
    if len(ed.test_folders) == 1:
        return ed.test_folders[0]
    if domain not in DOMAINS:
        raise ConfigError(f"DCASE{ed.year} test folders are per domain: domain must be source or target, got {domain!r}")
    return f"{domain}_test"


def clip_name(edition: int | str | Edition, *, section: str, number: int, split: str = "train",
              domain: str | None = "source", label: str | None = "normal",
              attributes: Mapping[str, str] | None = None) -> str:
    """The official file name of a clip (the inverse of :func:`parse_clip`); ``label=None`` gives an
    evaluation test name (2021: with its domain; 2022-2025: ``section_XX_NNNN.wav``)."""
    ed = get_edition(edition)
    if ed.year == 2020:
        return f"{label}_id_{section}_{number:08d}.wav" if label else f"id_{section}_{number:08d}.wav"
    if label is None:
        if split != "test":
            raise ConfigError("only evaluation test clips are named without a label")
        return f"section_{section}_{domain}_test_{number:04d}.wav" if ed.year == 2021 else f"section_{section}_{number:04d}.wav"
    if domain not in DOMAINS or label not in ("normal", "anomaly") or split not in ("train", "test"):
        raise ConfigError(f"need domain source|target, split train|test, label normal|anomaly; got "
                          f"{domain!r}, {split!r}, {label!r}")
    base = f"section_{section}_{domain}_{split}_{label}_{number:04d}"
    if ed.year == 2021 and split == "test":
        return base + ".wav"  # 2021's dev test names carry no attributes
    return f"{base}_{format_attributes(attributes)}.wav"


def _dataset_of(ed: Edition, path: Path, machine: str, section: str) -> str:
    """dev or eval: from the folder above the machine when it is dev_data/eval_data, else the section."""
    parent = path.parent.parent.parent.name
    for ds, folder in DATASET_DIRS.items():
        if parent == folder:
            return ds
    in_dev, in_eval = section in ed.sections(machine, "dev"), section in ed.sections(machine, "eval")
    if in_dev and not in_eval:
        return "dev"
    if in_eval and not in_dev:
        return "eval"
    return "dev" if machine in ed.dev_machines else "eval"


def parse_clip(edition: int | str | Edition, path: str | os.PathLike, machine: str | None = None) -> Clip:
    """Parse ``.../<machine>/<folder>/<name>.wav`` against an edition's grammar.

    ``machine`` defaults to the folder two levels up. Raises :class:`DatasetLayoutError`
    naming the file for a name that breaks the grammar, an unknown machine type, a folder that
    the edition does not have, a section that is not the machine's, or an anomaly in training
    data; :class:`ConfigError` for an unknown edition.
    """
    ed = get_edition(edition)
    path = Path(path)
    name, folder = path.name, path.parent.name
    machine = machine if machine is not None else path.parent.parent.name

    def bad(reason: str) -> DatasetLayoutError:
        return DatasetLayoutError(f"{path}: {reason} (DCASE{ed.year})")

    if machine not in ed.machines:
        raise bad(f"unknown machine type {machine!r}; DCASE{ed.year} has {', '.join(ed.machines)}")
    if folder not in ed.folders:
        raise bad(f"folder {folder!r} is not one of {', '.join(ed.folders)}")
    split = "supplemental" if folder == ed.supplemental_folder else ("train" if folder in ed.train_folders else "test")
    domain: str | None = None
    label: str | None = None
    attrs: dict[str, str] = {}
    if split == "supplemental":
        m = re.match(_SUPPLEMENTAL, name)
        if m is None:
            raise bad("a supplemental clip is named section_XX_<...>.wav")
        last = m["rest"].rsplit("_", 1)[-1]
        section, number = m["section"], int(last) if last.isdigit() else 0
        attrs = {"name": m["rest"]}
    else:
        m = re.match(ed.labelled_name, name)
        unlabelled = re.match(ed.eval_test_name, name)
        if m is not None:
            label = m["label"]
            section, number = m["section"], int(m["number"])
            domain = m.groupdict().get("domain")
            attrs = parse_attributes(m.groupdict().get("attrs"))
            named_split = m.groupdict().get("split") or split
            if named_split != split:
                raise bad(f"a {named_split} clip in the {folder}/ folder")
            if split == "train" and label == "anomaly":
                raise bad("anomalous clip in a training folder (training data is normal only)")
        elif unlabelled is not None and split == "test":
            section, number = unlabelled["section"], int(unlabelled["number"])
            domain = unlabelled.groupdict().get("domain")
        else:
            example = {2020: "normal_id_00_00000000.wav or id_00_00000000.wav",
                       2021: "section_00_source_train_normal_0000_<attrs>.wav or section_03_source_test_0000.wav"}
            expected = example.get(ed.year, "section_00_<source|target>_<train|test>_<normal|anomaly>_0000_<attrs>.wav "
                                            "or section_00_0000.wav")
            raise bad(f"name does not follow the naming {expected}")
        if folder in ("source_test", "target_test") and domain is not None and folder != f"{domain}_test":
            raise bad(f"a {domain}-domain clip in the {folder}/ folder")
    dataset = _dataset_of(ed, path, machine, section)
    if dataset == "eval" and machine not in ed.eval_machines or dataset == "dev" and machine not in ed.dev_machines:
        raise bad(f"{machine} is not a machine type of the {dataset} set of DCASE{ed.year}")
    if section not in ed.sections(machine, dataset):
        raise bad(f"section {section} is not a {dataset} section of {machine} "
                  f"({', '.join(ed.sections(machine, dataset))})")
    if dataset == "eval" and split == "test" and label is not None:
        raise bad("evaluation test clips are named without a label (labels come from the ground truth)")
    return Clip(ed.year, dataset, machine, section, domain, split, label, MappingProxyType(attrs), number, path)


def read_attributes_csv(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """``attributes_XX.csv`` (``file_name,d1p,d1v,d2p,d2v,...``) -> ``{base name: {d1p value: d1v value}}``.

    Empty pairs are dropped. Raises :class:`DatasetLayoutError` naming the file when it cannot be
    read or lacks the ``file_name`` column.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetLayoutError(f"cannot read the attributes file {path}: {e}") from e
    if not rows or not rows[0] or rows[0][0].strip() != "file_name":
        raise DatasetLayoutError(f"{path}: not an attributes file (first column must be file_name)")
    out: dict[str, dict[str, str]] = {}
    for row in rows[1:]:
        if not row or not row[0].strip():
            continue
        cells = [c.strip() for c in row[1:]]
        pairs = {cells[i]: cells[i + 1] for i in range(0, len(cells) - 1, 2) if cells[i] and cells[i] != NO_ATTRIBUTE}
        out[os.path.basename(row[0].strip())] = pairs
    return out


def _gt_rows(path: Path) -> list[tuple[str, int]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetLayoutError(f"cannot read the ground truth {path}: {e}") from e
    out = []
    for lineno, r in enumerate(rows, start=1):
        if len(r) < 2 or r[1].strip() not in ("0", "1"):
            raise DatasetLayoutError(f"{path}:{lineno}: expected 'file,0|1', got {','.join(r)!r}")
        out.append((r[0].strip(), int(r[1])))
    return out


_GT_NAME = re.compile(r"^ground_truth_(?P<machine>.+)_section_(?P<section>\d{2})(?:_(?P<domain>source|target))?_test\.csv$")


def read_eval_ground_truth(folder: str | os.PathLike, edition: int | str | Edition) -> pd.DataFrame:
    """The organisers' eval ground truth: columns machine, section, domain, file, label (0/1).

    ``folder`` holds ``ground_truth_data/`` (and, 2022-2025, ``ground_truth_domain/``), as in the
    evaluator repositories. ``domain`` is source/target (2021: from the file name; 2022+: from
    ``ground_truth_domain``, 0 = source, 1 = target; ``None`` when that folder is absent).
    """
    ed = get_edition(edition)
    folder = Path(folder)
    data = folder / "ground_truth_data"
    if not data.is_dir():
        raise DatasetLayoutError(f"ground truth folder {data} not found (expected the evaluator's ground_truth_data/)")
    rows = []
    for f in sorted(data.glob("ground_truth_*.csv")):
        m = _GT_NAME.match(f.name)
        if m is None:
            raise DatasetLayoutError(f"{f}: not named ground_truth_<machine>_section_XX[_<domain>]_test.csv")
        ed.check_machine(m["machine"], "eval")
        domains: dict[str, str] = {}
        if ed.ground_truth_has_domain and (folder / "ground_truth_domain" / f.name).is_file():
            domains = {n: DOMAINS[v] for n, v in _gt_rows(folder / "ground_truth_domain" / f.name)}
        for name, label in _gt_rows(f):
            rows.append({"machine": m["machine"], "section": m["section"], "domain": m["domain"] or domains.get(name),
                         "file": name, "label": label})
    if not rows:
        raise DatasetLayoutError(f"no ground_truth_*.csv files in {data}")
    return pd.DataFrame(rows, columns=["machine", "section", "domain", "file", "label"])


def index_edition(root: str | os.PathLike, edition: int | str | Edition, *,
                  ground_truth: str | os.PathLike | pd.DataFrame | None = None,
                  attributes_csv: bool = True) -> pd.DataFrame:
    """One row per clip: edition, dataset, machine, section, domain, split, label, attributes,
    number, file, path, relpath (under the root, as :mod:`asdlib.features.cache` keys clips).

    ``label`` is ``"normal"``, ``"anomaly"`` or ``None``. Walks ``<root>/{dev_data,eval_data}/
    <machine>/<folder>/*.wav``; every badly named file is collected and reported in one
    :class:`DatasetLayoutError`. Where the edition has ``attributes_XX.csv`` files and
    ``attributes_csv`` is true, each machine folder must hold one per section present (a
    missing one is an error naming it) and its attributes fill in those the names do not carry.
    ``ground_truth`` (a folder as :func:`read_eval_ground_truth` reads, or its table) gives
    the eval test clips their label and domain; an eval test clip it does not list is an error.
    """
    ed = get_edition(edition)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetLayoutError(f"data root {root} does not exist or is not a folder")
    truth = None
    if ground_truth is not None:
        gt = ground_truth if isinstance(ground_truth, pd.DataFrame) else read_eval_ground_truth(ground_truth, ed)
        truth = {(r.machine, r.file): (r.label, r.domain) for r in gt.itertuples()}
    rows: list[dict] = []
    problems: list[str] = []
    for dataset, dirname in DATASET_DIRS.items():
        ds_dir = root / dirname
        if not ds_dir.is_dir():
            continue
        for mdir in sorted(p for p in ds_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            machine = mdir.name
            if machine not in (ed.dev_machines if dataset == "dev" else ed.eval_machines):
                kind = ed.dev_machines if dataset == "dev" else ed.eval_machines
                problems.append(f"{mdir}: unknown {dataset} machine type {machine!r} for DCASE{ed.year} "
                                f"(expected one of {', '.join(kind)})")
                continue
            clips: list[Clip] = []
            for sub in sorted(p for p in mdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
                if sub.name not in ed.folders:
                    problems.append(f"{sub}: unexpected folder (DCASE{ed.year} has {', '.join(ed.folders)})")
                    continue
                for f in sorted(sub.iterdir()):
                    if f.name.startswith(".") or f.name in ("Thumbs.db", "desktop.ini"):
                        continue
                    if not f.is_file() or f.suffix != ".wav":
                        problems.append(f"{f}: not a .wav file")
                        continue
                    try:
                        clip = parse_clip(ed, f, machine)
                    except DatasetLayoutError as e:
                        problems.append(str(e))
                        continue
                    if clip.dataset != dataset:
                        problems.append(f"{f}: a {clip.dataset} clip under {dirname}/")
                        continue
                    clips.append(clip)
            table: dict[str, dict[str, str]] = {}
            if ed.attributes_csv and attributes_csv:
                for section in sorted({c.section for c in clips}):
                    csv_path = mdir / ed.attributes_file(machine, section)
                    if not csv_path.is_file():
                        problems.append(f"{csv_path}: attributes file missing (DCASE{ed.year} has one per machine "
                                        f"and section; index without it with attributes_csv=False / --no-attributes-csv)")
                        continue
                    table.update(read_attributes_csv(csv_path))
            for c in clips:
                attrs = dict(c.attributes) or table.get(c.file, {})
                label, domain = c.label, c.domain
                if truth is not None and dataset == "eval" and c.split == "test":
                    if (machine, c.file) not in truth:
                        problems.append(f"{c.path}: missing from the ground truth")
                        continue
                    lab, dom = truth[(machine, c.file)]
                    label, domain = ("anomaly" if lab == 1 else "normal"), (domain or dom)
                rows.append({"edition": ed.year, "dataset": dataset, "machine": machine, "section": c.section,
                             "domain": domain, "split": c.split, "label": label, "attributes": attrs,
                             "number": c.number, "file": c.file, "path": str(c.path),
                             "relpath": c.path.relative_to(root).as_posix()})
    if problems:
        listed = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise DatasetLayoutError(f"{len(problems)} problem(s) under {root} (DCASE{ed.year}):\n  {listed}{more}")
    if not rows:
        raise DatasetLayoutError(f"no DCASE{ed.year} clips under {root} (expected <root>/dev_data/<machine>/"
                                 f"{{{','.join(ed.folders)}}}/*.wav or eval_data/...)")
    df = pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
    return df.sort_values(["dataset", "machine", "section", "split", "file"], kind="stable").reset_index(drop=True)


def summarize_edition(index: pd.DataFrame) -> pd.DataFrame:
    """Counts per (dataset, machine, section, split, domain, label): column ``n``; None shown as ``-``."""
    keys = ["dataset", "machine", "section", "split", "domain", "label"]
    return index[keys].fillna("-").groupby(keys, sort=True).size().rename("n").reset_index()
