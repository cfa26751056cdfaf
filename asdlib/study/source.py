"""Which data the run uses: each real subset where Zenodo answers, else the synthetic default.

Two real sources follow the same rules (:class:`RealSource`): the DCASE2020 subset of the main
job (:data:`DCASE2020`, notebooks 01-09) and the DCASE2023 development subset of notebook 10
(:data:`DCASE2023`). ``asdlib reproduce --data auto`` (the default of ``make reproduce``), for each:

1. a verified subset already in its folder (``data/dcase2020-subset``, ``data/dcase2023-small``;
   every clip its manifest lists on disk with the right size and CRC-32, and for 2020 the ground
   truth) is used as it is, without asking the network;
2. else one short request probes one file of the source's Zenodo record (2020: the ground truth
   file; 2023: the first development archive): only a 2xx answer for that file counts (a redirect
   chain that ends on another page, a captive portal's login page say, does not); then the subset
   (profile ``small``: :mod:`asdlib.data.subset`, :mod:`asdlib.data.edition_subset`) is fetched
   into that folder;
3. where the probe fails (no network, as on CI; it gives up after a few seconds), or where it
   passed but the subset's fetch then fails (a rate limit past its patience, a server without
   ``Range``, a network drop), the run says why and uses the synthetic data (2020: the embedded
   dataset; 2023: the synthetic edition of ``asdlib synth --edition 2023``).

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


@dataclass(frozen=True)
class RealSource:
    """A real subset the run may fetch: DCASE2020 (:mod:`asdlib.data.subset`) or a later edition's
    development data (:mod:`asdlib.data.edition_subset`, ``dev`` archives only: notebook 10's)."""

    edition: int
    folder: str  # under <repo>/data/
    profile: str = SUBSET_PROFILE
    root: str | None = None  # None: <repo>/data/<folder>

    @property
    def name(self) -> str:
        return f"DCASE{self.edition} subset"

    def default_root(self) -> Path:
        return Path(self.root) if self.root is not None else repo_root() / "data" / self.folder

    def probe_file(self):
        """The one file the probe asks for: 2020's small ground truth file, else the first dev archive."""
        if self.edition == 2020:
            from ..data.zenodo import select_files

            return next(f for f in select_files(None, ["truth"]))
        from ..data.edition_subset import edition_archives

        return edition_archives(self.edition, parts=["dev"])[0]

    def complete(self, root: str) -> bool:
        if self.edition == 2020:
            from ..data.subset import subset_complete

            return subset_complete(root, self.profile)
        from ..data.edition_subset import edition_subset_complete

        return edition_subset_complete(root, self.edition, self.profile, parts=["dev"])

    def fetch(self, root: str, base_url: str | None, progress: bool) -> tuple[str, list[str]]:
        """Fetch (or verify and reuse) the subset into ``root``: its root and the shortfalls to warn of."""
        if self.edition == 2020:
            from ..data.subset import fetch_subset

            result = fetch_subset(root, self.profile, base_url=base_url, progress=progress)
            return str(result.root), list(result.shortfalls)
        from ..data import edition_subset

        results = edition_subset.fetch_edition_subset(root, self.edition, self.profile, parts=["dev"],
                                                      base_url=base_url, progress=progress)
        return str(Path(root).resolve()), [s for r in results for s in r.shortfalls]


DCASE2020 = RealSource(2020, "dcase2020-subset")  # notebooks 01-09
DCASE2023 = RealSource(2023, f"dcase2023-{SUBSET_PROFILE}")  # notebook 10 (its dev archives)


def probe_zenodo(base_url: str | None = None, timeout: float = PROBE_TIMEOUT_S,
                 source: RealSource | None = None) -> tuple[bool, str]:
    """``(reachable, detail)``: one request for the first byte of the source's probe file
    (:meth:`RealSource.probe_file`; default DCASE2020's ground truth), bounded by ``timeout``.

    Only a 2xx answer whose final URL (after redirects) still names that file in its path (Zenodo
    redirects ``/record/...`` to ``/records/...``), and that is not a web page, counts.
    """
    import requests

    from ..data.zenodo import file_url

    wanted = (source or DCASE2020).probe_file()
    url = file_url(wanted, base_url)
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
    if wanted.filename not in urlsplit(final).path.split("/") or kind in ("text/html", "application/xhtml+xml"):
        return False, f"{url} answered HTTP {code}{via} with {kind or 'something'}, not the file {wanted.filename}"
    return True, f"{url} answered HTTP {code}{via}"


def _short(root: str) -> str:
    """The subset folder as the results may show it: relative to the repository, else its name."""
    try:
        return Path(root).resolve().relative_to(repo_root()).as_posix()
    except ValueError:
        return Path(root).name


def _synthetic_data(source: RealSource) -> str:
    return "the embedded synthetic dataset" if source.edition == 2020 else \
        f"the synthetic DCASE{source.edition} edition"


def choose_data(mode: str | None = None, base_url: str | None = None, subset_root: str | os.PathLike | None = None,
                timeout: float = PROBE_TIMEOUT_S, source: RealSource | None = None) -> DataChoice:
    """Decide between ``source``'s real subset (default :data:`DCASE2020`) and the synthetic data
    (see the module docstring)."""
    source = source or DCASE2020
    mode = (mode or os.environ.get(DATA_ENV) or "auto").lower()
    if mode not in MODES:
        raise ConfigError(f"data source must be one of {MODES} (--data or ${DATA_ENV}), got {mode!r}")
    root = str(Path(subset_root or source.default_root()).resolve())
    if mode == "synthetic":
        return DataChoice("synthetic", f"asked for (--data synthetic or {DATA_ENV}=synthetic)", asked=True)
    if mode == "real":
        return DataChoice("real", f"asked for (--data real or {DATA_ENV}=real)", root, asked=True)
    if source.complete(root):
        return DataChoice("real", f"the verified {source.profile!r} {source.name} is on disk ({_short(root)}); "
                          "Zenodo was not asked", root)
    ok, detail = probe_zenodo(base_url, timeout, source)
    if ok:
        return DataChoice("real", f"Zenodo reachable: {detail}", root)
    return DataChoice("synthetic", f"Zenodo not reachable: {detail}; {_synthetic_data(source)} is used instead")


def ensure_subset(choice: DataChoice, base_url: str | None = None, progress: bool = True,
                  source: RealSource | None = None) -> str:
    """Fetch (or verify and reuse) ``source``'s real subset for ``choice``; returns its root."""
    if choice.kind != "real" or choice.root is None:
        raise ConfigError("ensure_subset needs a real-data choice")
    root, shortfalls = (source or DCASE2020).fetch(choice.root, base_url, progress)
    for s in shortfalls:
        print(f"[reproduce] warning: {s}", flush=True)
    return root


def settle_data(choice: DataChoice, base_url: str | None = None, progress: bool = True,
                source: RealSource | None = None) -> DataChoice:
    """``choice`` made good: real with its subset fetched (or verified), or, where the fetch fails and the
    real data was not insisted on, synthetic with the reason; the console is told either way."""
    import requests

    source = source or DCASE2020
    if choice.kind != "real":
        return choice
    try:
        root = ensure_subset(choice, base_url, progress, source)
    except (DownloadError, requests.RequestException) as e:
        if choice.asked:
            raise
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"[reproduce] {source.name}: the real subset could not be fetched: {why}", flush=True)
        print(f"[reproduce] {source.name}: synthetic instead (--data real insists on the real subset)", flush=True)
        return DataChoice("synthetic", f"{choice.reason}, but fetching the {source.name} failed ({why}); "
                          f"{_synthetic_data(source)} is used instead (verified clips are kept for the next run)")
    return replace(choice, root=root)


def pick_data(mode: str | None = None, source: RealSource | None = None,
              base_url: str | None = None) -> tuple[str | None, str]:
    """:func:`choose_data` then :func:`settle_data`, told on the console: the real subset's root (None:
    synthetic) and the reason, as ``asdlib reproduce`` passes them on."""
    source = source or DCASE2020
    label = "data" if source.edition == 2020 else f"notebook 10 data ({source.name})"
    choice = choose_data(mode, base_url, source=source)
    print(f"[reproduce] {label}: {choice.kind} ({choice.reason})", flush=True)
    choice = settle_data(choice, base_url, source=source)  # a failed fetch falls back to synthetic unless --data real
    return (choice.root if choice.kind == "real" else None), choice.reason
