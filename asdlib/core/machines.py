"""What DCASE2020 Task 2 defines: machine types, machine IDs, clip lengths and file naming.

Source: the DCASE2020 Task 2 description (Koizumi et al., DCASE 2020) and the Zenodo
records listed in ``shared/study.md``. Development IDs come with dev train + dev test;
evaluation IDs with the additional training set + the evaluation test set.
"""
from __future__ import annotations

import re
from typing import Iterable

SAMPLE_RATE = 16_000

MACHINE_TYPES: tuple[str, ...] = ("ToyCar", "ToyConveyor", "fan", "pump", "slider", "valve")

DEV_IDS: dict[str, tuple[str, ...]] = {
    "ToyCar": ("01", "02", "03", "04"),
    "ToyConveyor": ("01", "02", "03"),
    "fan": ("00", "02", "04", "06"),
    "pump": ("00", "02", "04", "06"),
    "slider": ("00", "02", "04", "06"),
    "valve": ("00", "02", "04", "06"),
}
EVAL_IDS: dict[str, tuple[str, ...]] = {
    "ToyCar": ("05", "06", "07"),
    "ToyConveyor": ("04", "05", "06"),
    "fan": ("01", "03", "05"),
    "pump": ("01", "03", "05"),
    "slider": ("01", "03", "05"),
    "valve": ("01", "03", "05"),
}
# Official clip lengths in seconds (ToyADMOS ToyCar clips are 11 s, the rest 10 s).
CLIP_SECONDS: dict[str, float] = {t: (11.0 if t == "ToyCar" else 10.0) for t in MACHINE_TYPES}
# The length every clip of a feature cache of the real data gets: ToyCar's 11-s clips keep their
# first 10 s; a shorter clip is an error (see asdlib.features.logmel), never a shorter cache.
STANDARD_CLIP_SECONDS: float = min(CLIP_SECONDS.values())

DATASETS = ("dev", "eval")
DATASET_DIRS = {"dev": "dev_data", "eval": "eval_data"}
PARTS = ("train", "test")
GROUND_TRUTH_FILE = "eval_data_list.csv"

LABEL_NORMAL, LABEL_ANOMALY, LABEL_UNKNOWN = 0, 1, -1

# train: normal_id_XX_NNNNNNNN.wav (dev and eval); dev test: {normal,anomaly}_id_..; eval test: id_..
LABELLED_NAME = re.compile(r"^(?P<label>normal|anomaly)_id_(?P<id>\d{2})_(?P<num>\d{8})\.wav$")
EVAL_TEST_NAME = re.compile(r"^id_(?P<id>\d{2})_(?P<num>\d{8})\.wav$")


def check_type(machine_type: str) -> str:
    if machine_type not in MACHINE_TYPES:
        raise ValueError(f"unknown machine type {machine_type!r}; expected one of {', '.join(MACHINE_TYPES)}")
    return machine_type


def machine_ids(machine_type: str, dataset: str | None = None) -> tuple[str, ...]:
    """IDs of a type: development (``dataset='dev'``), evaluation (``'eval'``) or all (``None``)."""
    check_type(machine_type)
    if dataset == "dev":
        return DEV_IDS[machine_type]
    if dataset == "eval":
        return EVAL_IDS[machine_type]
    if dataset is None:
        return tuple(sorted(DEV_IDS[machine_type] + EVAL_IDS[machine_type]))
    raise ValueError(f"unknown dataset {dataset!r}; expected 'dev', 'eval' or None")


def dataset_of(machine_type: str, machine_id: str) -> str:
    """'dev' or 'eval' for an ID of a type; ValueError for an ID that is not of that type."""
    if machine_id in DEV_IDS[check_type(machine_type)]:
        return "dev"
    if machine_id in EVAL_IDS[machine_type]:
        return "eval"
    raise ValueError(f"ID {machine_id!r} is not an ID of {machine_type} (valid: {', '.join(machine_ids(machine_type))})")


def class_labels(types: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """The (type, ID) classes of an ID classifier, in a fixed order.

    All six types give the integrated model's 41 classes; one type gives an individual
    model's 7 (ToyConveyor 6). The class index of a pair is its position in this list.
    """
    types = MACHINE_TYPES if types is None else tuple(types)
    return [(t, i) for t in MACHINE_TYPES if t in types for i in machine_ids(t)]


def class_index(types: Iterable[str] | None = None) -> dict[tuple[str, str], int]:
    return {pair: k for k, pair in enumerate(class_labels(types))}


assert len(class_labels()) == 41
