"""Classification targets for the later editions: (machine, section, attributes) classes.

The top systems of DCASE2022-2025 Task 2 train their embedding classifier on the clips'
machine type, section and attribute values (the operating condition in the file name or in
``attributes_XX.csv``) rather than on the machine type alone: the more specific the class,
the more the embedding has to notice, and the target domain's attribute values become
classes of their own. The study's 2020 (type, ID) classes are the case without attributes.

A class is named ``"<machine>/<section>/<attrs>"`` with the attributes as ``key_value`` pairs
in the order the clip lists them (``"fan/00/m-n_W_n_2"``); a machine without attributes
(``noAttribute``, hidden attributes, or 2020) has one class per section, ``"<machine>/<section>"``,
which is the study's class name (``"fan/00"``). :func:`class_map` collects the classes of some
index rows (normally the training clips) in sorted order; :meth:`ClassMap.labels` gives any rows
their class index, ready for :func:`asdlib.classify.train.fit`'s ``labels`` and ``class_names``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from ..core.errors import ConfigError

LEVELS = ("attribute", "section")


def attribute_string(attributes: Mapping[str, str] | None) -> str:
    """``{"m-n": "W", "n": "2"}`` -> ``"m-n_W_n_2"``; no attributes -> ``""``."""
    return "_".join(f"{k}_{v}" for k, v in (attributes or {}).items())


def clip_class(machine: str, section: str, attributes: Mapping[str, str] | None = None,
               level: str = "attribute") -> str:
    """The class name of one clip (see the module docstring); ``level='section'`` drops the
    attributes (one class per machine and section, the grouping of the section-wise scores)."""
    if level not in LEVELS:
        raise ConfigError(f"unknown class level {level!r}; expected one of {', '.join(LEVELS)}")
    attrs = attribute_string(attributes) if level == "attribute" else ""
    return f"{machine}/{section}/{attrs}" if attrs else f"{machine}/{section}"


def _names(rows: pd.DataFrame, level: str) -> list[str]:
    missing = {"machine", "section"} - set(rows.columns)
    if missing:
        raise ConfigError(f"index rows lack column(s) {', '.join(sorted(missing))} (expected an edition index)")
    attrs = rows["attributes"] if "attributes" in rows.columns else [None] * len(rows)
    return [clip_class(m, s, a if isinstance(a, Mapping) else None, level)
            for m, s, a in zip(rows["machine"], rows["section"], attrs)]


@dataclass(frozen=True)
class ClassMap:
    """Class names in index order and the level they were built at."""

    names: tuple[str, ...]
    level: str = "attribute"

    def __len__(self) -> int:
        return len(self.names)

    def labels(self, rows: pd.DataFrame, unknown: str = "raise") -> np.ndarray:
        """Class index of each row ``(len(rows),)`` int64. A row whose class is not in the map
        (an attribute value seen only in test clips): ``unknown='raise'`` is an error naming
        the first such clips, ``'ignore'`` gives -1."""
        if unknown not in ("raise", "ignore"):
            raise ConfigError(f"unknown must be 'raise' or 'ignore', got {unknown!r}")
        lookup = {n: k for k, n in enumerate(self.names)}
        keys = _names(rows, self.level)
        out = np.array([lookup.get(k, -1) for k in keys], dtype=np.int64)
        if unknown == "raise" and (out < 0).any():
            bad = [f"{f} ({k})" for f, k, o in zip(rows.get("file", keys), keys, out) if o < 0][:5]
            raise ConfigError(f"{int((out < 0).sum())} clip(s) of classes the map does not have: {', '.join(bad)}")
        return out


def class_map(rows: pd.DataFrame, level: str = "attribute") -> ClassMap:
    """The classes present in ``rows`` (an edition index, normally its training clips), sorted."""
    names = sorted(set(_names(rows, level)))
    if not names:
        raise ConfigError("no rows to build classes from")
    return ClassMap(tuple(names), level)


def edition_classes(rows: pd.DataFrame, level: str = "attribute") -> tuple[np.ndarray, list[str]]:
    """``(labels, class_names)`` of ``rows`` for :func:`asdlib.classify.train.fit`."""
    cmap = class_map(rows, level)
    return cmap.labels(rows), list(cmap.names)
