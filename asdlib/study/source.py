"""Which data the main job runs on: the real DCASE2020 subset where Zenodo answers, else the synthetic default.

``asdlib reproduce --data auto`` (the default of ``make reproduce``) probes the Zenodo record of
the ground truth with one short request. When it answers, the real subset
(:mod:`asdlib.data.subset`, profile ``small``) is fetched once into ``data/dcase2020-subset``
and reused after that, and the study runs with the ``real`` profile. When it does not (no
network, as on CI; the probe gives up after a few seconds), the embedded synthetic dataset is
used, as before. ``--data real`` or ``--data synthetic`` (or ``ASDLIB_DATA``) forces either.
The choice and its reason go to the console, ``results/README.md`` and ``run_info.json``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ConfigError
from ..core.utils import repo_root

DATA_ENV = "ASDLIB_DATA"
MODES = ("auto", "real", "synthetic")
SUBSET_PROFILE = "small"
REAL_PROFILE = "real"
PROBE_TIMEOUT_S = 4.0


@dataclass(frozen=True)
class DataChoice:
    """What to run on: ``kind`` is ``real`` or ``synthetic``; ``root`` the real subset's folder (or None)."""

    kind: str
    reason: str
    root: str | None = None


def default_subset_root() -> Path:
    return repo_root() / "data" / "dcase2020-subset"


def probe_zenodo(base_url: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """``(reachable, detail)``: one HEAD request for the small ground-truth file, bounded by ``timeout``."""
    import requests

    from ..data.zenodo import file_url, select_files

    truth = next(f for f in select_files(None, ["truth"]))
    url = file_url(truth, base_url)
    try:
        r = requests.head(url, timeout=(timeout, timeout), allow_redirects=True)
    except requests.RequestException as e:
        return False, f"{url} could not be reached ({type(e).__name__})"
    if r.status_code >= 400:
        return False, f"{url} answered HTTP {r.status_code}"
    return True, f"{url} answered HTTP {r.status_code}"


def choose_data(mode: str | None = None, base_url: str | None = None, subset_root: str | os.PathLike | None = None,
                timeout: float = PROBE_TIMEOUT_S) -> DataChoice:
    """Decide between the real subset and the synthetic default (see the module docstring)."""
    mode = (mode or os.environ.get(DATA_ENV) or "auto").lower()
    if mode not in MODES:
        raise ConfigError(f"data source must be one of {MODES} (--data or ${DATA_ENV}), got {mode!r}")
    root = str(Path(subset_root or default_subset_root()).resolve())
    if mode == "synthetic":
        return DataChoice("synthetic", f"asked for (--data synthetic or {DATA_ENV}=synthetic)")
    if mode == "real":
        return DataChoice("real", f"asked for (--data real or {DATA_ENV}=real)", root)
    ok, detail = probe_zenodo(base_url, timeout)
    if ok:
        return DataChoice("real", f"Zenodo reachable: {detail}", root)
    return DataChoice("synthetic", f"Zenodo not reachable: {detail}; the embedded synthetic dataset is used instead")


def ensure_subset(choice: DataChoice, base_url: str | None = None, progress: bool = True) -> str:
    """Fetch (or verify and reuse) the real subset for ``choice``; returns its root."""
    from ..data.subset import fetch_subset

    if choice.kind != "real" or choice.root is None:
        raise ConfigError("ensure_subset needs a real-data choice")
    result = fetch_subset(choice.root, SUBSET_PROFILE, base_url=base_url, progress=progress)
    for s in result.shortfalls:
        print(f"[reproduce] warning: {s}", flush=True)
    return str(result.root)
