"""Which data the main job runs on: the real DCASE2020 subset where Zenodo answers, else the synthetic default.

``asdlib reproduce --data auto`` (the default of ``make reproduce``):

1. a verified ``small`` subset already in ``data/dcase2020-subset`` (every clip its manifest
   lists on disk with the right size and CRC-32, and the ground truth) is used as it is, without
   asking the network;
2. else one short request probes the ground truth file of Zenodo: only a 2xx answer for that file
   counts (a redirect chain that ends on another page, a captive portal's login page say, does
   not); then the real subset (:mod:`asdlib.data.subset`, profile ``small``) is fetched into
   ``data/dcase2020-subset`` and the study runs with the ``real`` profile;
3. where the probe fails (no network, as on CI; it gives up after a few seconds), or where it
   passed but the subset's fetch then fails (a rate limit past its patience, a server without
   ``Range``, a network drop), the run says why and uses the embedded synthetic dataset.

``--data real`` (or ``ASDLIB_DATA=real``) insists: a failed fetch stops the run. ``--data
synthetic`` forces the synthetic data. The choice and its reason go to the console,
``results/README.md`` and ``run_info.json``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from ..core.errors import ConfigError, DownloadError
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
    asked: bool = False  # --data real/synthetic (or $ASDLIB_DATA): no fallback


def default_subset_root() -> Path:
    return repo_root() / "data" / "dcase2020-subset"


def probe_zenodo(base_url: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """``(reachable, detail)``: one request for the first byte of the small ground-truth file, bounded by ``timeout``.

    Only a 2xx answer whose final URL (after redirects) still names that file in its path (Zenodo
    redirects ``/record/...`` to ``/records/...``), and that is not a web page, counts.
    """
    import requests

    from ..data.zenodo import file_url, select_files

    truth = next(f for f in select_files(None, ["truth"]))
    url = file_url(truth, base_url)
    try:
        with requests.Session() as session:
            session.max_redirects = 5
            with session.get(url, headers={"Range": "bytes=0-0", "Accept-Encoding": "identity"}, stream=True,
                             timeout=(timeout, timeout), allow_redirects=True) as r:
                final, code = r.url, r.status_code
                kind = r.headers.get("Content-Type", "").split(";")[0].strip().lower()
    except requests.RequestException as e:
        return False, f"{url} could not be reached ({type(e).__name__})"
    via = f" (redirected to {final})" if final != url else ""
    if not 200 <= code < 300:
        return False, f"{url} answered HTTP {code}{via}"
    if truth.filename not in urlsplit(final).path.split("/") or kind in ("text/html", "application/xhtml+xml"):
        return False, f"{url} answered HTTP {code}{via} with {kind or 'something'}, not the file {truth.filename}"
    return True, f"{url} answered HTTP {code}{via}"


def _short(root: str) -> str:
    """The subset folder as the results may show it: relative to the repository, else its name."""
    try:
        return Path(root).resolve().relative_to(repo_root()).as_posix()
    except ValueError:
        return Path(root).name


def choose_data(mode: str | None = None, base_url: str | None = None, subset_root: str | os.PathLike | None = None,
                timeout: float = PROBE_TIMEOUT_S) -> DataChoice:
    """Decide between the real subset and the synthetic default (see the module docstring)."""
    from ..data.subset import subset_complete

    mode = (mode or os.environ.get(DATA_ENV) or "auto").lower()
    if mode not in MODES:
        raise ConfigError(f"data source must be one of {MODES} (--data or ${DATA_ENV}), got {mode!r}")
    root = str(Path(subset_root or default_subset_root()).resolve())
    if mode == "synthetic":
        return DataChoice("synthetic", f"asked for (--data synthetic or {DATA_ENV}=synthetic)", asked=True)
    if mode == "real":
        return DataChoice("real", f"asked for (--data real or {DATA_ENV}=real)", root, asked=True)
    if subset_complete(root, SUBSET_PROFILE):
        return DataChoice("real", f"the verified {SUBSET_PROFILE!r} subset is on disk ({_short(root)}); "
                          "Zenodo was not asked", root)
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


def settle_data(choice: DataChoice, base_url: str | None = None, progress: bool = True) -> DataChoice:
    """``choice`` made good: real with its subset fetched (or verified), or, where the fetch fails and the
    real data was not insisted on, synthetic with the reason; the console is told either way."""
    import requests

    if choice.kind != "real":
        return choice
    try:
        root = ensure_subset(choice, base_url, progress)
    except (DownloadError, requests.RequestException) as e:
        if choice.asked:
            raise
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"[reproduce] the real subset could not be fetched: {why}", flush=True)
        print("[reproduce] data: synthetic instead (--data real insists on the real subset)", flush=True)
        return DataChoice("synthetic", f"{choice.reason}, but fetching the subset failed ({why}); the embedded "
                          "synthetic dataset is used instead (verified clips are kept for the next run)")
    return replace(choice, root=root)
