"""A real DCASE2020 Task 2 subset, read out of the official Zenodo zips without downloading them.

``asdlib download --subset NAME --root DIR`` (or :func:`fetch_subset`) reads the central
directory of each archive with a range request from its end, chooses the clips of a named
:class:`SubsetProfile`, and fetches only those members (coalesced into a few requests per
archive, see :mod:`asdlib.data.remote_zip`). The result is the official layout, which
:func:`asdlib.data.index.index_dataset` reads unchanged:

- ``ROOT/dev_data/<type>/train/``: ``n_train`` normal clips per development ID (dev archives);
- ``ROOT/dev_data/<type>/test/``: ``n_test`` normal and ``n_test`` anomalous clips per dev ID;
- ``ROOT/eval_data/<type>/train/``: ``n_train`` clips per evaluation ID (additional training);
- ``ROOT/eval_data/<type>/test/``: ``n_eval_test`` normal and ``n_eval_test`` anomalous clips per
  evaluation ID (evaluation test archives), labelled by the ground truth of record 3951620,
  which is fetched whole (it is small) to ``ROOT/eval_data_list.csv``, where the whole-archive
  downloader puts it too;
- ``ROOT/subset_manifest.json``: where each clip came from (record, archive, member, CRC-32,
  size), the profile, and per archive its size, entry count and a digest of its directory.

Which clips: within each (ID, part, label), the first ones in **archive order** (by offset;
``order="name"`` takes the first by file name instead). Both are deterministic, since the
archives are fixed (their md5 sums are published). Archive order is the default because it
keeps the chosen members next to each other whatever order the archive was written in, so
they come in a few requests; first-by-name members lie apart in an archive that was not
written in name order, and then cost up to one request each (bounded, and spaced for the
rate limit, but slower).

Safety: each clip is checked against the CRC-32 of the central directory and as a WAV (16 kHz,
mono, 16-bit PCM), and written atomically (temporary file, fsync, rename). A rerun skips the
clips already on disk with the right size and CRC; an archive whose chosen clips are all
present and listed in the manifest costs no request at all. One fetch at a time fills a root
(:mod:`asdlib.data.lock`). A root holds one profile's clips: fetching another profile (``tiny``
after ``small``, or the reverse) deletes the clips that the manifest lists and the new profile
does not choose, archives outside this run included (only the manifest's clips: nothing else
under the root is touched). :func:`subset_complete` says whether a root holds a profile whole.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable

from .. import __version__
from ..core.errors import AudioError, ConfigError, DatasetLayoutError, DownloadError
from ..core.machines import (
    CLIP_SECONDS,
    EVAL_TEST_NAME,
    GROUND_TRUTH_FILE,
    LABELLED_NAME,
    SAMPLE_RATE,
    machine_ids,
)
from ..core.utils import atomic_write, atomic_write_text
from .download import free_bytes, plan_members
from .httpclient import HttpClient
from .lock import root_lock
from .remote_zip import DEFAULT_MAX_GAP, DEFAULT_MAX_REQUEST, DEFAULT_TAIL_BYTES, Member, RemoteZip, coalesce
from .zenodo import DOWNLOAD_PARTS, FILES, ZenodoFile, file_url, select_files

MANIFEST_FILE = "subset_manifest.json"
MANIFEST_FORMAT = "asdlib-subset-manifest"
MANIFEST_VERSION = 1
MAX_GROUND_TRUTH_BYTES = 16 << 20  # the real file is about 0.3 MB
DEFAULT_DEADLINE_S = 600.0  # one request of at most 64 MiB (max_request) at 110 KB/s or faster
WAV_HEADER_BYTES = 44
LOCAL_HEADER_ESTIMATE = 30 + 28  # fixed part + Info-ZIP's usual extra fields (the name is added per clip)
ORDERS = ("archive", "name")


@dataclass(frozen=True)
class SubsetProfile:
    """How many clips to take, per machine ID.

    ``n_train``: normal training clips of every ID (dev IDs from the dev archives, eval IDs
    from the additional-training archives). ``n_test``: normal and as many anomalous test
    clips of every dev ID. ``n_eval_test``: the same for every eval ID from the
    evaluation-test archives (default: ``n_test``). ``order``: ``archive`` or ``name``.
    """

    name: str
    n_train: int
    n_test: int
    n_eval_test: int | None = None
    order: str = "archive"

    def __post_init__(self) -> None:
        if min(self.n_train, self.n_test, self.eval_test) < 0:
            raise ConfigError(f"subset profile {self.name!r}: clip counts must not be negative")
        if self.order not in ORDERS:
            raise ConfigError(f"subset profile {self.name!r}: order must be one of {ORDERS}, got {self.order!r}")

    @property
    def eval_test(self) -> int:
        return self.n_test if self.n_eval_test is None else self.n_eval_test

    def quota(self, part: str, train_or_test: str) -> int:
        """Clips per (ID, label) that an archive of ``part`` (dev/additional/eval) gives."""
        if train_or_test == "train":
            return self.n_train
        return self.n_test if part == "dev" else self.eval_test

    def selection(self, f: ZenodoFile) -> dict:
        """What decides the choice in archive ``f`` (stored in the manifest, compared on a rerun)."""
        return {"profile": self.name, "order": self.order,
                "per_label": {p: self.quota(f.part, p) for p in f.dataset_parts}}


PROFILES: dict[str, SubsetProfile] = {
    # 41 IDs x 30 training clips, 23 dev IDs x (10 + 10) and 18 eval IDs x (10 + 10) test clips:
    # 2,050 clips, 667,290,200 bytes of clips, about 124 requests (subset_figures).
    "small": SubsetProfile("small", n_train=30, n_test=10),
    # A quick look at real data: 410 + 184 + 144 = 738 clips, 0.24 GB.
    "tiny": SubsetProfile("tiny", n_train=10, n_test=4),
}
DEFAULT_PROFILE = "small"


def get_profile(profile: str | SubsetProfile) -> SubsetProfile:
    if isinstance(profile, SubsetProfile):
        return profile
    if profile not in PROFILES:
        raise ConfigError(f"unknown subset profile {profile!r}; expected one of {', '.join(PROFILES)}")
    return PROFILES[profile]


def clip_bytes(machine_type: str) -> int:
    """Size of one official clip: 44-byte header + 16-bit mono samples (320,044 B; ToyCar 352,044 B)."""
    return WAV_HEADER_BYTES + int(round(CLIP_SECONDS[machine_type] * SAMPLE_RATE)) * 2


# ---- figures ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubsetFigures:
    """What a profile costs, computed from the clip sizes (no network).

    ``clip_bytes``: the clips themselves; ``total_bytes`` adds the local headers and one
    ``tail_bytes`` read of each archive's directory (an upper bound for deflated members, which
    are at most as large as the clips). ``requests``: one directory request per archive, one
    request per run of (ID, part, label) clips (for the evaluation test set one per ID: its
    file names hide the label), split at ``max_request`` bytes, plus the ground truth; this is
    the count when each run lies together in the archive, as it does in an archive written in
    name order (archive-order selection needs fewer in an archive written in any other order).
    ``requests_worst``: one request per clip plus the directories and the ground truth.
    Redirect hops (Zenodo redirects a record URL once; the target is then reused) add at
    most ``archives + 1``.
    """

    profile: str
    types: tuple[str, ...]
    archives: int
    clips: int
    train_clips: int
    dev_test_clips: int
    eval_test_clips: int
    clip_bytes: int
    total_bytes: int
    requests: int
    requests_worst: int

    def describe(self) -> str:
        return (f"subset {self.profile!r}: {self.clips:,} clips ({self.train_clips:,} train, {self.dev_test_clips:,} dev test, "
                f"{self.eval_test_clips:,} eval test) from {self.archives} archives; {self.clip_bytes:,} bytes of clips "
                f"({self.clip_bytes / 1e9:.3f} GB), at most {self.total_bytes:,} bytes transferred; about {self.requests} "
                f"requests (at most {self.requests_worst} if no chosen clips lie together)")


def subset_figures(profile: str | SubsetProfile = DEFAULT_PROFILE, machine_types: Iterable[str] | None = None,
                   parts: Iterable[str] = DOWNLOAD_PARTS, tail_bytes: int = DEFAULT_TAIL_BYTES,
                   max_request: int = DEFAULT_MAX_REQUEST) -> SubsetFigures:
    """Clips, bytes and requests of ``profile`` for the chosen types and parts (see :class:`SubsetFigures`)."""
    prof = get_profile(profile)
    files = [f for f in select_files(machine_types, parts) if f.is_archive]
    counts = {"train": 0, "dev_test": 0, "eval_test": 0}
    clip_total = header_total = runs = 0
    for f in files:
        t = f.machine_type
        size = clip_bytes(t)
        dataset = "dev" if f.part == "dev" else "eval"
        for mid in machine_ids(t, dataset):
            for p in f.dataset_parts:
                q = prof.quota(f.part, p)
                if q == 0:
                    continue
                if p == "train":
                    labels, key, name = 1, "train", f"{t}/train/normal_id_{mid}_00000000.wav"
                elif f.part == "dev":
                    labels, key, name = 2, "dev_test", f"{t}/test/anomaly_id_{mid}_00000000.wav"
                else:
                    labels, key, name = 2, "eval_test", f"{t}/test/id_{mid}_00000000.wav"
                n = q * labels
                counts[key] += n
                clip_total += n * size
                header_total += n * (LOCAL_HEADER_ESTIMATE + len(name))
                per_run = q if (p == "train" or f.part == "dev") else 2 * q
                n_runs = labels if (p == "train" or f.part == "dev") else 1
                runs += n_runs * max(1, math.ceil(per_run * size / max_request))
    truth = 1 if ("truth" in tuple(parts) or any(f.part == "eval" for f in files)) else 0
    clips = sum(counts.values())
    types = tuple(dict.fromkeys(f.machine_type for f in files))
    return SubsetFigures(
        profile=prof.name, types=types, archives=len(files), clips=clips, train_clips=counts["train"],
        dev_test_clips=counts["dev_test"], eval_test_clips=counts["eval_test"], clip_bytes=clip_total,
        total_bytes=clip_total + header_total + len(files) * tail_bytes, requests=len(files) + runs + truth,
        requests_worst=len(files) + clips + truth,
    )


# ---- selection ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chosen:
    """A member to install: where it is in the archive and where it goes under the root."""

    member: Member
    relpath: str  # e.g. dev_data/fan/train/normal_id_00_00000000.wav
    machine_id: str
    part: str
    label: int


def select_members(zf_entries: list[tuple[Member, PurePosixPath]], f: ZenodoFile, profile: SubsetProfile,
                   truth: dict[tuple[str, str], int] | None = None) -> tuple[list[Chosen], list[str]]:
    """The profile's choice among an archive's members, and the shortfalls (as sentences).

    ``zf_entries``: ``(member, <type>/<part>/<file>)`` pairs. Clips are grouped by (ID, part,
    label); the label of an evaluation test clip comes from ``truth`` (clips it does not
    list are not chosen). Within a group the first ``profile.quota`` clips in archive order (or
    by name) are chosen. Names outside the official naming and IDs of the other dataset are
    ignored.
    """
    dataset = "dev" if f.part == "dev" else "eval"
    valid_ids = machine_ids(f.machine_type, dataset)
    groups: dict[tuple[str, str, int], list[tuple[Member, PurePosixPath]]] = {}
    for member, rel in zf_entries:
        if len(rel.parts) != 3:
            continue
        part, name = rel.parts[1], rel.parts[2]
        if f.part == "eval":
            m = EVAL_TEST_NAME.match(name)
            if m is None or truth is None or (f.machine_type, name) not in truth:
                continue
            label = truth[(f.machine_type, name)]
        else:
            m = LABELLED_NAME.match(name)
            if m is None:
                continue
            label = int(m["label"] == "anomaly")
            if part == "train" and label:
                continue
        if m["id"] not in valid_ids:
            continue
        groups.setdefault((m["id"], part, label), []).append((member, rel))
    chosen: list[Chosen] = []
    shortfalls: list[str] = []
    key = (lambda e: e[0].start) if profile.order == "archive" else (lambda e: e[1].name)
    for mid in valid_ids:
        for part in f.dataset_parts:
            quota = profile.quota(f.part, part)
            if quota == 0:
                continue
            for label in ((0,) if part == "train" else (0, 1)):
                found = sorted(groups.get((mid, part, label), []), key=key)
                if len(found) < quota:
                    what = "normal" if label == 0 else "anomalous"
                    shortfalls.append(f"{f.filename}: {f.machine_type} id_{mid} {part} has {len(found)} {what} clip(s), "
                                      f"{quota} wanted")
                for member, rel in found[:quota]:
                    chosen.append(Chosen(member, f"{f.dataset_dir}/{rel.as_posix()}", mid, part, label))
    return chosen, shortfalls


# ---- manifest -----------------------------------------------------------------------------------------


def manifest_path(root: str | os.PathLike) -> Path:
    return Path(root) / MANIFEST_FILE


def read_manifest(root: str | os.PathLike) -> dict | None:
    """The manifest of a subset root, or None (absent or unreadable: it is rebuilt then)."""
    try:
        data = json.loads(manifest_path(root).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        return None
    data.setdefault("archives", {})
    data.setdefault("members", {})
    return data


def _new_manifest() -> dict:
    return {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION, "archives": {}, "members": {}}


def _save_manifest(root: Path, manifest: dict) -> None:
    manifest["updated_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest["asdlib_version"] = __version__
    atomic_write_text(manifest_path(root), json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _member_record(f: ZenodoFile, m: Member) -> dict:
    return {"record": f.record, "archive": f.filename, "member": m.name, "crc32": f"{m.crc:08x}", "size": m.size,
            "compressed_size": m.compressed_size, "offset": m.start,
            "compression": {0: "stored", 8: "deflated"}.get(m.info.compress_type, str(m.info.compress_type))}


# ---- files on disk ------------------------------------------------------------------------------------


def file_crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return crc


def is_verified(path: Path, size: int, crc: int) -> bool:
    """The file exists with the expected size and CRC-32."""
    try:
        if path.stat().st_size != size:
            return False
        return file_crc32(path) == crc
    except OSError:
        return False


def check_clip(path: Path, where: str) -> None:
    """A DCASE2020 clip: 16 kHz, mono, 16-bit PCM WAV with samples (else :class:`DownloadError`)."""
    from .audio import wav_info

    try:
        info = wav_info(path)
    except AudioError as e:
        raise DownloadError(f"{where}: the CRC-32 is right but the clip is not a usable WAV: {e}") from e
    problems = []
    if info.sample_rate != SAMPLE_RATE:
        problems.append(f"{info.sample_rate} Hz instead of {SAMPLE_RATE}")
    if info.channels != 1:
        problems.append(f"{info.channels} channels instead of 1")
    if info.subtype != "PCM_16":
        problems.append(f"{info.subtype} instead of PCM_16")
    if info.frames <= 0:
        problems.append("no samples")
    if problems:
        raise DownloadError(f"{where}: the CRC-32 is right but the clip is not a DCASE2020 clip (16 kHz mono 16-bit): "
                            + ", ".join(problems))


def _write_clip(path: Path, data: bytes, where: str) -> None:
    """Write, check as a WAV, fsync and rename into place (nothing half-written is ever visible)."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        check_clip(Path(fh.name), where)


def _remove_stale_temps(folder: Path) -> int:
    """Temporary files of a killed run (``.<clip>.wav.<random>.tmp``, see ``atomic_write``)."""
    n = 0
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp") and ".wav." in p.name:
                p.unlink(missing_ok=True)
                n += 1
    return n


def _prune(root: Path, manifest: dict, archive: str, keep: set[str]) -> int:
    """Delete the clips of ``archive`` that the manifest lists and ``keep`` does not; returns how many."""
    stale = [rel for rel, rec in manifest["members"].items() if rec.get("archive") == archive and rel not in keep]
    for rel in stale:
        (root / rel).unlink(missing_ok=True)
        del manifest["members"][rel]
    return len(stale)


def _prune_other_profiles(root: Path, manifest: dict, prof: SubsetProfile, run: set[str]) -> int:
    """Archives outside this run whose clips another profile chose: their clips go (one profile per root)."""
    by_name = {f.filename: f for f in FILES}
    removed = 0
    for name, entry in list(manifest["archives"].items()):
        f = by_name.get(name)
        if name in run or (f is not None and entry.get("selection") == prof.selection(f)):
            continue
        removed += _prune(root, manifest, name, set())
        del manifest["archives"][name]
    listed = {rec.get("archive") for rec in manifest["members"].values()}
    for name in listed - set(manifest["archives"]) - run:  # clips of an archive the manifest lost track of
        removed += _prune(root, manifest, name, set())
    return removed


# ---- the fetch ----------------------------------------------------------------------------------------


@dataclass
class ArchiveResult:
    """What happened to one archive: ``status`` is ``fetched``, ``verified`` (all chosen clips were
    on disk already, checked by size and CRC-32; no request at all when the manifest lists them)
    or ``skipped`` (the profile chooses nothing in it)."""

    filename: str
    status: str
    chosen: int = 0
    fetched: int = 0
    present: int = 0  # already on disk and verified
    requests: int = 0  # HTTP requests of this archive, redirect hops included
    bytes_received: int = 0
    shortfalls: list[str] = field(default_factory=list)
    removed: int = 0  # clips of another profile deleted


@dataclass
class SubsetResult:
    profile: SubsetProfile
    root: Path
    archives: list[ArchiveResult]
    ground_truth: str  # fetched | present | not needed
    requests: int
    bytes_received: int
    waited_s: float
    removed: int = 0  # clips of another profile deleted (archives of this run and others)

    @property
    def fetched(self) -> int:
        return sum(a.fetched for a in self.archives)

    @property
    def shortfalls(self) -> list[str]:
        return [s for a in self.archives for s in a.shortfalls]


def _ensure_ground_truth(root: Path, client: HttpClient, base_url: str | None, manifest: dict,
                         types: Iterable[str] | None) -> tuple[dict[tuple[str, str], int], str]:
    from .index import find_ground_truth, read_ground_truth

    existing = find_ground_truth(root)
    if existing is not None:
        try:
            labels = read_ground_truth(existing)
        except DatasetLayoutError:
            pass  # damaged: fetched again and replaced
        else:
            manifest.setdefault("ground_truth", {"path": existing.relative_to(root).as_posix(), "source": "present before"})
            return labels, "present"
    f = select_files(types, ("truth",))[0]
    url = file_url(f, base_url)
    data = client.read_whole(url, MAX_GROUND_TRUTH_BYTES)
    target = root / GROUND_TRUTH_FILE
    try:
        with atomic_write(target, "wb") as fh:
            fh.write(data)
            fh.flush()
            labels = read_ground_truth(fh.name)
    except DatasetLayoutError as e:
        raise DownloadError(f"{f.filename} from {url} is not a valid ground truth file: {e}") from e
    manifest["ground_truth"] = {"record": f.record, "file": f.filename, "url": url, "path": GROUND_TRUTH_FILE,
                                "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return labels, "fetched"


def subset_complete(root: str | os.PathLike, profile: str | SubsetProfile = DEFAULT_PROFILE,
                    machine_types: Iterable[str] | None = None, parts: Iterable[str] = DOWNLOAD_PARTS) -> bool:
    """True when ``root`` holds every clip of ``profile`` (listed in its manifest, on disk with the right
    size and CRC-32) and the ground truth it needs; checked without the network."""
    from .index import find_ground_truth

    prof = get_profile(profile)
    manifest = read_manifest(root)
    if manifest is None or (manifest.get("profile") or {}).get("name") != prof.name:
        return False
    parts = tuple(parts)
    files = [f for f in select_files(machine_types, parts) if f.is_archive]
    wanted = [f for f in files if any(prof.quota(f.part, p) for p in f.dataset_parts)]
    needs_truth = "truth" in parts or any(f.part == "eval" and prof.eval_test > 0 for f in files)
    if needs_truth and find_ground_truth(Path(root)) is None:
        return False
    return all(_all_recorded_present(Path(root), manifest, f, prof.selection(f)) for f in wanted)


def _all_recorded_present(root: Path, manifest: dict, f: ZenodoFile, selection: dict) -> bool:
    entry = manifest["archives"].get(f.filename)
    if not entry or not entry.get("complete") or entry.get("selection") != selection:
        return False
    members = entry.get("relpaths") or []
    for rel in members:
        rec = manifest["members"].get(rel)
        if rec is None or not is_verified(root / rel, rec["size"], int(rec["crc32"], 16)):
            return False
    return True


def _fetch_archive(f: ZenodoFile, root: Path, prof: SubsetProfile, client: HttpClient, manifest: dict,
                   truth: dict | None, base_url: str | None, opts: dict, progress: bool) -> ArchiveResult:
    from tqdm.auto import tqdm

    selection = prof.selection(f)
    if _all_recorded_present(root, manifest, f, selection):
        relpaths = manifest["archives"][f.filename]["relpaths"]
        removed = _prune(root, manifest, f.filename, set(relpaths))
        return ArchiveResult(f.filename, "verified", chosen=len(relpaths), present=len(relpaths), removed=removed)
    requests0, bytes0 = client.requests, client.bytes_received
    url = file_url(f, base_url)
    rz = RemoteZip(client, url, opts["tail_bytes"])

    class _Listing:  # what plan_members needs of a ZipFile
        def infolist(self):
            return rz.infos

    try:
        entries = [(rz.members[info.filename], rel) for info, rel in plan_members(_Listing(), f)]
    except DownloadError as e:
        raise DownloadError(f"{url}: {e}") from e
    chosen, shortfalls = select_members(entries, f, prof, truth)
    manifest["archives"][f.filename] = {
        "record": f.record, "url": url, "size": rz.size, "entries": len(rz.infos),
        "directory_digest": rz.directory_digest, "selection": selection, "complete": False,
        "relpaths": [c.relpath for c in chosen],
    }
    removed = _prune(root, manifest, f.filename, {c.relpath for c in chosen})  # another profile's clips
    for folder in {(root / c.relpath).parent for c in chosen}:
        _remove_stale_temps(folder)
    todo, present = [], 0
    for c in chosen:
        if is_verified(root / c.relpath, c.member.size, c.member.crc):
            present += 1
            manifest["members"][c.relpath] = _member_record(f, c.member)
        else:
            todo.append(c)
    need = sum(c.member.size for c in todo)
    if need and need * 1.05 > free_bytes(root):
        raise DownloadError(f"not enough disk space under {root} for {f.filename}'s clips: {need / 1e9:.2f} GB needed, "
                            f"{free_bytes(root) / 1e9:.2f} GB free")
    by_name = {c.member.name: c for c in todo}
    fetched = 0
    last_save = time.monotonic()
    try:
        groups = coalesce([c.member for c in todo], opts["max_gap"], opts["max_request"])
        with tqdm(total=sum(g[-1].end - g[0].start for g in groups), unit="B", unit_scale=True,
                  unit_divisor=1024, desc=f.filename, disable=not progress or not todo, leave=False) as bar:
            for m, data in rz.fetch([c.member for c in todo], max_gap=opts["max_gap"], max_request=opts["max_request"],
                                    crc_retries=opts["crc_retries"], progress=bar):
                c = by_name[m.name]
                _write_clip(root / c.relpath, data, f"{f.filename}:{m.name}")
                manifest["members"][c.relpath] = _member_record(f, m)
                fetched += 1
                if time.monotonic() - last_save > 5.0:
                    _save_manifest(root, manifest)
                    last_save = time.monotonic()
        manifest["archives"][f.filename]["complete"] = True
    finally:
        _save_manifest(root, manifest)  # also after a failure: what is verified is recorded
    return ArchiveResult(f.filename, "fetched" if fetched else "verified", chosen=len(chosen), fetched=fetched,
                         present=present, requests=client.requests - requests0,
                         bytes_received=client.bytes_received - bytes0, shortfalls=shortfalls, removed=removed)


def fetch_subset(
    root: str | os.PathLike,
    profile: str | SubsetProfile = DEFAULT_PROFILE,
    machine_types: Iterable[str] | None = None,
    parts: Iterable[str] = DOWNLOAD_PARTS,
    base_url: str | None = None,
    *,
    progress: bool = True,
    timeout: float = 60.0,
    retries: int = 5,
    min_interval: float = 1.0,
    backoff: float = 2.0,
    max_wait: float = 120.0,
    max_gap: int = DEFAULT_MAX_GAP,
    max_request: int = DEFAULT_MAX_REQUEST,
    tail_bytes: int = DEFAULT_TAIL_BYTES,
    crc_retries: int = 2,
    deadline: float | None = DEFAULT_DEADLINE_S,
    client: HttpClient | None = None,
    lock_wait: float = 0.0,
) -> SubsetResult:
    """Fetch the clips of ``profile`` from the Zenodo archives into ``root`` (official layout); idempotent.

    ``machine_types``/``parts`` restrict the archives as for :func:`asdlib.data.download.download`
    (the ground truth is fetched when evaluation test clips are chosen, or when ``truth`` is
    asked for). The HTTP settings are those of :class:`~asdlib.data.httpclient.HttpClient`
    (``min_interval`` 1 s keeps within Zenodo's 60 requests a minute; ``deadline``: seconds one
    request may take in all), or ``client`` replaces them (tests pass one whose waits do not
    sleep); the request settings are those of :meth:`~asdlib.data.remote_zip.RemoteZip.fetch`.
    ``lock_wait``: seconds to wait for another fetch into ``root`` (default: stop at once).
    Clips of another profile that the manifest lists are deleted (see the module docstring).
    """
    prof = get_profile(profile)
    root = Path(root).expanduser().resolve()
    parts = tuple(parts)
    files = [f for f in select_files(machine_types, parts) if f.is_archive]
    own = client is None
    if own:  # checks the settings before anything is written
        client = HttpClient(timeout=timeout, retries=retries, min_interval=min_interval, backoff=backoff,
                            max_wait=max_wait, deadline=deadline, user_agent="asdlib-subset")
    try:
        with root_lock(root, f"asdlib download --subset {prof.name}", wait_s=lock_wait):
            return _fetch_subset(root, prof, files, parts, machine_types, base_url, client, progress,
                                 {"tail_bytes": tail_bytes, "max_gap": max_gap, "max_request": max_request,
                                  "crc_retries": crc_retries})
    finally:
        if own:
            client.close()


def _fetch_subset(root: Path, prof: SubsetProfile, files: list[ZenodoFile], parts: tuple[str, ...],
                  machine_types: Iterable[str] | None, base_url: str | None, client: HttpClient, progress: bool,
                  opts: dict) -> SubsetResult:
    requests0, bytes0, waited0 = client.requests, client.bytes_received, client.waited_s
    for stale in (*root.glob(f".{MANIFEST_FILE}.*.tmp"), *root.glob(f".{GROUND_TRUTH_FILE}.*.tmp")):
        stale.unlink(missing_ok=True)  # left by a killed run (atomic_write's temporary files)
    manifest = read_manifest(root) or _new_manifest()
    removed = _prune_other_profiles(root, manifest, prof, {f.filename for f in files})
    manifest["profile"] = asdict(prof)
    manifest["base_url"] = base_url
    results: list[ArchiveResult] = []
    try:
        truth, gt_status = None, "not needed"
        needs_truth = "truth" in parts or any(f.part == "eval" and prof.eval_test > 0 for f in files)
        if needs_truth:
            truth, gt_status = _ensure_ground_truth(root, client, base_url, manifest, machine_types)
            _save_manifest(root, manifest)
        for f in files:
            if not any(prof.quota(f.part, p) for p in f.dataset_parts):
                removed += _prune(root, manifest, f.filename, set())
                manifest["archives"].pop(f.filename, None)
                results.append(ArchiveResult(f.filename, "skipped"))
                continue
            results.append(_fetch_archive(f, root, prof, client, manifest, truth, base_url, opts, progress))
    finally:
        _save_manifest(root, manifest)
    return SubsetResult(prof, root, results, gt_status, client.requests - requests0, client.bytes_received - bytes0,
                        client.waited_s - waited0, removed + sum(a.removed for a in results))


# ---- command line ---------------------------------------------------------------------------------------


def run_cli(args) -> int:
    """``asdlib download --subset NAME``: the download command's options, applied to a subset."""
    parts = [p.strip() for p in args.parts.split(",") if p.strip()] if args.parts else list(DOWNLOAD_PARTS)
    figures = subset_figures(args.subset, args.types, parts)
    if args.dry_run:
        root = Path(args.root).expanduser().resolve()
        manifest = read_manifest(root) or _new_manifest()
        print(figures.describe())
        prof = get_profile(args.subset)
        for f in select_files(args.types, parts):
            if f.is_archive:
                done = _all_recorded_present(root, manifest, f, prof.selection(f))
            else:
                done = (root / GROUND_TRUTH_FILE).is_file()
            state = "done" if done else "to do"
            print(f"{state:6} {f.part:10} {file_url(f, args.base_url)}")
        return 0
    print(figures.describe())
    result = fetch_subset(args.root, args.subset, args.types, parts, args.base_url, progress=not args.no_progress,
                          timeout=args.timeout, retries=args.retries)
    for a in result.archives:
        print(f"{a.status:9} {a.filename}: {a.chosen} clips chosen, {a.fetched} fetched, {a.present} already verified, "
              f"{a.requests} requests, {a.bytes_received:,} bytes")
    print(f"ground truth: {result.ground_truth}; {result.requests} requests, {result.bytes_received:,} bytes in all; "
          f"manifest {manifest_path(result.root)}")
    for s in result.shortfalls:
        print(f"warning: {s}")
    return 0
