"""Download the DCASE2020 Task 2 data from Zenodo, verify it and extract it into the official layout.

Every step is safe to interrupt and to rerun:

* a file streams into ``<root>/downloads/<file>.part``; a later run resumes it with an HTTP
  ``Range`` request (a server that ignores ``Range`` and answers 200 makes it start over);
* the finished ``.part`` is verified (md5, or for the ground truth, by parsing it, since it
  has no published md5) and only then renamed to ``<root>/downloads/<file>``; a file that
  fails verification is deleted, so nothing unverified is ever kept;
* a zip is extracted into ``<root>/downloads/.extract-<file>/`` and each ``<type>/<part>``
  folder is then renamed into ``dev_data/`` (dev zips) or ``eval_data/`` (additional and
  eval zips), so a kill mid-extraction leaves no half-filled part folder. An existing
  ``<type>/<part>`` folder is replaced: the verified zip is the source of truth for it;
* a marker ``<root>/downloads/<file>.done`` (JSON) is written last; a rerun skips a file whose
  marker exists and whose extracted folders are still there;
* one run at a time fills a root (:mod:`asdlib.data.lock`): a second one stops with a message
  naming the lock and the process that holds it.

The HTTP side is :class:`asdlib.data.httpclient.HttpClient`, the subset's client too: 429/5xx
answers are retried after ``Retry-After`` (up to ``max_wait`` seconds; a longer one is reported)
or a backoff, and ``retries`` bounds the retries of a file in all (busy answers and cut
connections together).

Zip members may start with ``<type>/`` or with ``dev_data/<type>/`` (``eval_data/<type>/``);
both land in the same place. Archives are deleted after extraction unless ``keep_archives``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable

from tqdm.auto import tqdm

from ..core.errors import DatasetLayoutError, DownloadError
from ..core.machines import GROUND_TRUTH_FILE
from ..core.utils import atomic_write_text
from .httpclient import BodyCut, HttpClient, RangeMismatch, transport_errors
from .index import read_ground_truth
from .lock import root_lock
from .zenodo import DOWNLOAD_PARTS, ZenodoFile, file_url, select_files

SPACE_FACTOR = 2.2  # a zip plus its extracted WAVs (deflate barely compresses PCM)


@dataclass(frozen=True)
class DownloadResult:
    """What happened to one file: ``status`` is ``downloaded`` or ``skipped`` (already done)."""

    file: ZenodoFile
    status: str
    targets: tuple[str, ...]  # what it provides, relative to the root (posix)


def downloads_dir(root: Path) -> Path:
    return root / "downloads"


def marker_path(root: Path, f: ZenodoFile) -> Path:
    return downloads_dir(root) / f"{f.filename}.done"


def is_done(root: str | os.PathLike, f: ZenodoFile) -> bool:
    """True when ``f`` was verified and installed and what it installed is still there."""
    root = Path(root)
    try:
        marker = json.loads(marker_path(root, f).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(marker.get("targets")) and all((root / t).exists() for t in marker["targets"])


def md5sum(path: Path, chunk_size: int = 1 << 22) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            h.update(block)
    return h.hexdigest()


def free_bytes(path: Path) -> int:
    """Free bytes on the file system that holds ``path`` (or would hold it)."""
    while not path.exists():  # the root may not exist yet: ask its nearest existing parent
        path = path.parent
    return shutil.disk_usage(path).free


def _need_bytes(f: ZenodoFile, size: int, already: int = 0) -> int:
    extract = int(size * (SPACE_FACTOR - 1.0)) if f.is_archive else 0
    return max(size - already, 0) + extract


def check_disk_space(root: Path, files: Iterable[ZenodoFile]) -> None:
    """Refuse to start when the known sizes (times 2.2 for zip + extraction) exceed free space."""
    need = 0
    for f in files:
        if f.size is not None:
            part = downloads_dir(root) / f"{f.filename}.part"
            need += _need_bytes(f, f.size, part.stat().st_size if part.exists() else 0)
    free = free_bytes(root)
    if need > free:
        raise DownloadError(
            f"not enough disk space under {root}: about {need / 1e9:.2f} GB needed (archives plus extracted clips), "
            f"{free / 1e9:.2f} GB free; free some space or choose fewer --types/--parts"
        )


def _fetch(client: HttpClient, url: str, part: Path, f: ZenodoFile, chunk_size: int, progress: bool) -> None:
    """Stream ``url`` into ``part``, resuming what is there; a cut connection is resumed within ``client.retries``."""
    attempts = client.attempts()
    while True:
        offset = part.stat().st_size if part.exists() else 0
        if f.size is not None and offset == f.size:
            return  # complete already (killed before verification); verification decides
        if f.size is not None and offset > f.size:
            part.unlink()
            offset = 0
        written, total = offset, None
        try:
            with client.open(url, f"bytes={offset}-" if offset else None, (offset, None) if offset else None,
                             whole_ok=True, attempts=attempts) as resp:
                resumed = resp.status_code == 206
                if not resumed:
                    offset = written = 0  # the server ignored Range and sends everything: start over
                length = resp.headers.get("Content-Length")
                total = offset + int(length) if length and length.isdigit() else f.size
                if total is not None and _need_bytes(f, total, offset) > free_bytes(part.parent):
                    raise DownloadError(
                        f"not enough disk space for {f.filename} ({total / 1e9:.2f} GB, about "
                        f"{_need_bytes(f, total, offset) / 1e9:.2f} GB with extraction) in {part.parent}: "
                        f"{free_bytes(part.parent) / 1e9:.2f} GB free"
                    )
                with open(part, "ab" if resumed else "wb") as out, tqdm(
                    total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=f.filename, disable=not progress, leave=False,
                ) as bar:
                    for chunk in client.body(resp, chunk_size):
                        out.write(chunk)
                        written += len(chunk)
                        bar.update(len(chunk))
            if total is not None and written != total:
                raise BodyCut(f"connection closed after {written} of {total} bytes")
            return
        except RangeMismatch:  # 416 or another range: our partial file is not a prefix of theirs
            part.unlink(missing_ok=True)  # start over without Range (no Range, no mismatch: this happens once)
        except transport_errors() as e:
            try:
                client.retry_after_cut(attempts, url, "the download", e)
            except DownloadError as err:
                kept = f"; the partial file {part} is kept: run again to resume" if part.exists() else ""
                raise DownloadError(f"{err}{kept}") from e


def _verify(f: ZenodoFile, path: Path, url: str) -> None:
    """md5 for archives; the ground truth (no md5 published) is verified by parsing it."""
    try:
        if f.md5 is not None:
            got = md5sum(path)
            if got != f.md5:
                raise DownloadError(f"checksum mismatch for {f.filename} from {url}: md5 {got}, expected {f.md5}; "
                                    "the file was deleted, run again to download it afresh")
        elif f.part == "truth":
            try:
                read_ground_truth(path)
            except DatasetLayoutError as e:
                raise DownloadError(f"{f.filename} from {url} is not a valid ground truth file: {e}") from e
        if f.is_archive and not zipfile.is_zipfile(path):
            raise DownloadError(f"{f.filename} from {url} is not a zip archive; the file was deleted")
    except DownloadError:
        path.unlink(missing_ok=True)
        raise


def plan_members(zf: zipfile.ZipFile, f: ZenodoFile) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Map each zip member to ``<type>/<part>/...`` (the path under the dataset folder).

    Accepts members that start with ``<type>/`` or ``<dataset_dir>/<type>/``; skips folders,
    ``__MACOSX/`` and hidden files; rejects anything else, including unsafe paths.
    """
    plan = []
    for info in zf.infolist():
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if not parts or parts[0] == "__MACOSX" or parts[-1].startswith("."):
            continue
        if info.filename.startswith("/") or ".." in parts or ":" in parts[0]:
            raise DownloadError(f"{f.filename}: unsafe member path {info.filename!r}; refusing to extract")
        if parts[0] in ("dev_data", "eval_data"):
            if parts[0] != f.dataset_dir:
                raise DownloadError(f"{f.filename}: member {info.filename!r} belongs under {parts[0]}/, expected {f.dataset_dir}/")
            parts = parts[1:]
        if info.is_dir():
            continue
        if len(parts) < 3 or parts[0] != f.machine_type or parts[1] not in f.dataset_parts:
            raise DownloadError(
                f"{f.filename}: unexpected member {info.filename!r}; expected "
                f"{f.machine_type}/{{{','.join(f.dataset_parts)}}}/<clip>.wav (optionally under {f.dataset_dir}/)"
            )
        plan.append((info, PurePosixPath(*parts)))
    if not plan:
        raise DownloadError(f"{f.filename}: the archive holds no clips")
    return plan


def extract(f: ZenodoFile, archive: Path, root: Path, progress: bool = True) -> tuple[str, ...]:
    """Extract into a temporary folder, then rename each ``<type>/<part>`` into place."""
    tmp = downloads_dir(root) / f".extract-{f.filename}"
    shutil.rmtree(tmp, ignore_errors=True)  # leftovers of a killed run
    try:
        with zipfile.ZipFile(archive) as zf:
            plan = plan_members(zf, f)
            for info, rel in tqdm(plan, desc=f"extract {f.filename}", unit="file", disable=not progress, leave=False):
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        targets = []
        for machine_type, part in sorted({(rel.parts[0], rel.parts[1]) for _, rel in plan}):
            target = root / f.dataset_dir / machine_type / part
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / machine_type / part, target)
            targets.append(target.relative_to(root).as_posix())
        return tuple(targets)
    except (zipfile.BadZipFile, OSError) as e:
        raise DownloadError(f"extracting {archive} failed: {e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download(
    root: str | os.PathLike,
    machine_types: Iterable[str] | None = None,
    parts: Iterable[str] = DOWNLOAD_PARTS,
    base_url: str | None = None,
    files: Iterable[ZenodoFile] | None = None,
    progress: bool = True,
    chunk_size: int = 1 << 20,
    timeout: float = 60.0,
    retries: int = 3,
    retry_wait: float = 2.0,
    keep_archives: bool = False,
    *,
    max_wait: float = 120.0,
    client: HttpClient | None = None,
    lock_wait: float = 0.0,
) -> list[DownloadResult]:
    """Download, verify and install the chosen files under ``root``; idempotent.

    ``files`` overrides the selection by ``machine_types``/``parts`` (tests pass their own).
    ``timeout`` is per network read, in seconds; ``retries`` bounds the retries of each file
    (reconnections resumed with ``Range`` after a broken connection, and 429/5xx answers, retried
    after ``Retry-After`` up to ``max_wait`` s or after ``retry_wait``, ``2 * retry_wait``, ... s).
    ``client`` replaces the HTTP client these settings make (tests pass one whose waits do not
    sleep). ``lock_wait``: seconds to wait for another run that fills ``root`` (default: stop at once).
    """
    root = Path(root).expanduser().resolve()
    chosen = list(files) if files is not None else select_files(machine_types, parts)
    own = client is None
    if own:  # checks the settings before anything else
        client = HttpClient(timeout=timeout, retries=retries, backoff=retry_wait, max_wait=max_wait,
                            user_agent="asdlib-downloader")
    try:
        with root_lock(root, "asdlib download", wait_s=lock_wait):
            return _download(root, chosen, client, base_url, progress, chunk_size, keep_archives)
    finally:
        if own:
            client.close()


def _download(root: Path, chosen: list[ZenodoFile], client: HttpClient, base_url: str | None, progress: bool,
              chunk_size: int, keep_archives: bool) -> list[DownloadResult]:
    todo = [f for f in chosen if not is_done(root, f)]
    results = [DownloadResult(f, "skipped", ()) for f in chosen if f not in todo]
    if not todo:
        return results
    check_disk_space(root, todo)
    downloads_dir(root).mkdir(parents=True, exist_ok=True)
    for f in tqdm(todo, desc="files", unit="file", disable=not progress or len(todo) < 2):
        url = file_url(f, base_url)
        final = downloads_dir(root) / f.filename
        if not final.exists():  # ``final`` only ever exists verified
            part = final.with_name(f.filename + ".part")
            _fetch(client, url, part, f, chunk_size, progress)
            _verify(f, part, url)
            os.replace(part, final)
        if f.is_archive:
            targets = extract(f, final, root, progress)
        else:
            os.replace(final, root / GROUND_TRUTH_FILE)
            targets = (GROUND_TRUTH_FILE,)
        record = {**asdict(f), "targets": list(targets), "completed_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write_text(marker_path(root, f), json.dumps(record, indent=2) + "\n")
        if f.is_archive and not keep_archives:  # after the marker: a kill here costs no re-download
            final.unlink()
        results.append(DownloadResult(f, "downloaded", targets))
    return results
