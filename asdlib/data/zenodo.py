"""Where the DCASE2020 Task 2 data lives on Zenodo, as data rather than as prose.

The records, file names, md5 sums and (where known) sizes are those of ``shared/study.md``.
Only the development zips have a known size; the others are ``None`` and the downloader
checks free disk space against the server's ``Content-Length`` instead.

The ground truth ``eval_data_list.csv`` has no published md5. It is verified by parsing
it (every type line is a known machine type; every row is ``id_XX_NNNNNNNN.wav,<name>,<0|1>``
with an evaluation ID of its type), see :func:`asdlib.data.index.read_ground_truth`.

The base URL defaults to ``https://zenodo.org/record`` and can be overridden with an
argument or the environment variable ``ASDLIB_ZENODO_URL`` (tests point it at a local
server; a mirror works the same way, as long as it keeps the ``<record>/files/<file>`` form).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..core.errors import ConfigError
from ..core.machines import MACHINE_TYPES

DEFAULT_BASE_URL = "https://zenodo.org/record"
BASE_URL_ENV = "ASDLIB_ZENODO_URL"

# part -> Zenodo record (study.md, "Where the data lives").
RECORDS: dict[str, str] = {
    "dev": "3678171",  # development: dev train + dev test
    "additional": "3727685",  # additional training: eval IDs, train
    "eval": "3841772",  # evaluation test: eval IDs, unlabelled
    "truth": "3951620",  # evaluation ground truth
}
DOWNLOAD_PARTS: tuple[str, ...] = ("dev", "additional", "eval", "truth")


@dataclass(frozen=True)
class ZenodoFile:
    """One file of a Zenodo record.

    ``part`` is one of ``dev``, ``additional``, ``eval``, ``truth``; ``machine_type`` is
    ``None`` for the ground truth, which covers every type. ``md5``/``size`` are ``None``
    where the study does not publish them.
    """

    record: str
    filename: str
    md5: str | None
    size: int | None
    part: str
    machine_type: str | None

    @property
    def is_archive(self) -> bool:
        return self.filename.endswith(".zip")

    @property
    def dataset_dir(self) -> str | None:
        """Folder under the data root that the zip extracts into (``None`` for the csv)."""
        if self.part == "dev":
            return "dev_data"
        if self.part in ("additional", "eval"):
            return "eval_data"
        return None

    @property
    def dataset_parts(self) -> tuple[str, ...]:
        """The ``train``/``test`` folders this archive provides."""
        return {"dev": ("train", "test"), "additional": ("train",), "eval": ("test",)}.get(self.part, ())


_DEV_MD5_SIZE = {
    "fan": ("649bdfc06263ae7a838963f43b6641e6", 1354774772),
    "pump": ("90e7091ef722b7238a7f1009365779cd", 1031279015),
    "slider": ("da24a757719f0d94d5aa2d646bbfdc86", 1002998966),
    "ToyCar": ("4dec75ca8d9f666aa9e4c1894a740501", 1816443231),
    "ToyConveyor": ("03b6aa1bfd09a39d53af0ba39f71fa91", 1868564070),
    "valve": ("34d2672f55bb041589ef79c10dc89934", 1013925627),
}
_ADDITIONAL_MD5 = {
    "fan": "567798854130c8019df8b664c095ed1e",
    "pump": "4e33ae9c0db5cc88437675f5e317caee",
    "slider": "f84f186f4295fc23754abcdd1b0580a7",
    "ToyCar": "a5d4ccd498af70b04dd74b644b820006",
    "ToyConveyor": "0e808ac0b761e9fb13d5e0c65caff00d",
    "valve": "057cdd560caffb8305449541afd28c6d",
}
_EVAL_MD5 = {
    "fan": "1eb9356a768cadfd0f2e59a5c57e578b",
    "pump": "23a8f8f924be218c69df67fe07360348",
    "slider": "0193c769073840332ce3aad84b1ccaa2",
    "ToyCar": "bea2bdd612f616be8f2b8eb087b32c7c",
    "ToyConveyor": "ccfcc9847c7d3404d7ee9d6d9e0b2ba2",
    "valve": "f69c551d2088691050d20cccca9d631c",
}


def _build_files() -> tuple[ZenodoFile, ...]:
    files: list[ZenodoFile] = []
    for t in MACHINE_TYPES:
        md5, size = _DEV_MD5_SIZE[t]
        files.append(ZenodoFile(RECORDS["dev"], f"dev_data_{t}.zip", md5, size, "dev", t))
        files.append(ZenodoFile(RECORDS["additional"], f"eval_data_train_{t}.zip", _ADDITIONAL_MD5[t], None, "additional", t))
        files.append(ZenodoFile(RECORDS["eval"], f"eval_data_test_{t}.zip", _EVAL_MD5[t], None, "eval", t))
    files.append(ZenodoFile(RECORDS["truth"], "eval_data_list.csv", None, None, "truth", None))
    return tuple(files)


FILES: tuple[ZenodoFile, ...] = _build_files()


def parse_list(value: str | Iterable[str] | None, allowed: Sequence[str], what: str) -> tuple[str, ...] | None:
    """Turn ``"fan,pump"`` or ``["fan", "pump"]`` into a checked tuple (``None`` stays ``None``)."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v).strip() for v in value]
    items = [v for v in items if v]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise ConfigError(f"unknown {what} {', '.join(map(repr, bad)) or '(none given)'}; expected some of {', '.join(allowed)}")
    return tuple(dict.fromkeys(items))


def select_files(
    machine_types: Iterable[str] | None = None, parts: Iterable[str] = DOWNLOAD_PARTS
) -> list[ZenodoFile]:
    """Files of the given parts and machine types, in :data:`FILES` order.

    The ground truth (``truth``) covers all types and is kept whatever the type filter.
    """
    types = parse_list(machine_types, MACHINE_TYPES, "machine type") if machine_types is not None else MACHINE_TYPES
    wanted = parse_list(parts, DOWNLOAD_PARTS, "part") or ()
    return [f for f in FILES if f.part in wanted and (f.machine_type is None or f.machine_type in types)]


def base_url(url: str | None = None) -> str:
    """The argument, else ``$ASDLIB_ZENODO_URL``, else Zenodo; without a trailing slash."""
    chosen = url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return chosen.rstrip("/")


def file_url(f: ZenodoFile, base: str | None = None) -> str:
    """``<base>/<record>/files/<file>?download=1`` (the form Zenodo serves downloads under)."""
    return f"{base_url(base)}/{f.record}/files/{f.filename}?download=1"
