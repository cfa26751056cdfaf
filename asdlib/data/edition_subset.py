"""Subsets of the DCASE2021-2025 Task 2 data: a *plan* per edition, fetched by the range-read client.

The plan (:func:`plan_archive`) works on the member names of one archive, in archive order,
and the edition's table (:mod:`asdlib.data.editions`): per machine and section it takes

- the first ``n_source_train`` source-domain training clips and ``n_target_train`` target-domain
  ones (``None``: all of them, about 10; 2021: 3);
- of the development test set, ``n_test`` clips per (domain, label);
- of the evaluation test set, whose names hide the label (and, 2022-2025, the domain),
  ``n_test`` x 2 labels x 2 domains clips per section (2021: x 2 labels per section and
  domain), the first in archive order;
- 2025: ``n_supplemental`` clips of each machine's ``supplemental/`` folder;
- every ``attributes_XX.csv`` of a section it takes clips of (the index needs them).

:func:`fetch_edition_subset` reads each archive's central directory and fetches the planned
members with :class:`asdlib.data.remote_zip.RemoteZip` (coalesced range requests, CRC-32
checked), writes each atomically under ``ROOT/{dev_data,eval_data}/<machine>/<folder>/`` and
records what it wrote (each member's size and CRC-32) in ``ROOT/edition_subset_manifest.json``; a
rerun skips members already on disk with the right size and CRC-32, and asks nothing of an archive
whose recorded members all are (:func:`edition_subset_complete` checks that offline). The profile ``full`` takes every member: the whole
edition through the same path. Eval labels are not on Zenodo: they come from the organisers'
evaluator repositories (``asdlib index --ground-truth``).

:func:`edition_subset_figures` gives clips, bytes and requests of a profile **computed from the
table**, not measured: clip bytes are a 44-byte header plus 16-bit mono 16 kHz samples of the
edition's clip length (2024/2025 eval machines: the 10-s default, an upper bound; see
``Edition.clip_seconds_note``), and the requests assume each group of chosen clips lies together
in the archive, as in an archive written in name order.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

from ..core.errors import ConfigError, DatasetLayoutError, DownloadError
from ..core.machines import SAMPLE_RATE
from ..core.utils import atomic_write, atomic_write_text
from .editions import DATASET_DIRS, DOMAINS, Edition, get_edition, parse_clip
from .remote_zip import DEFAULT_MAX_GAP, DEFAULT_MAX_REQUEST, DEFAULT_TAIL_BYTES, RangeClient, RemoteZip
from .zenodo import ZenodoFile, file_url

MANIFEST_FILE = "edition_subset_manifest.json"
PARTS = ("dev", "additional", "eval")
WAV_HEADER_BYTES = 44
LOCAL_HEADER_ESTIMATE = 30 + 28 + 80  # fixed part, usual extra fields, a name of about 80 characters


@dataclass(frozen=True)
class EditionSubsetProfile:
    """Clips per machine and section (see the module doc). ``None`` means all."""

    name: str
    n_source_train: int | None
    n_target_train: int | None
    n_test: int | None
    n_supplemental: int | None = 0

    def __post_init__(self) -> None:
        for v in (self.n_source_train, self.n_target_train, self.n_test, self.n_supplemental):
            if v is not None and v < 0:
                raise ConfigError(f"subset profile {self.name!r}: clip counts must not be negative")


EDITION_PROFILES: dict[str, EditionSubsetProfile] = {
    "small": EditionSubsetProfile("small", n_source_train=30, n_target_train=None, n_test=10),
    "tiny": EditionSubsetProfile("tiny", n_source_train=10, n_target_train=None, n_test=4),
    "full": EditionSubsetProfile("full", None, None, None, None),
}


def get_edition_profile(profile: str | EditionSubsetProfile) -> EditionSubsetProfile:
    if isinstance(profile, EditionSubsetProfile):
        return profile
    if profile not in EDITION_PROFILES:
        raise ConfigError(f"unknown subset profile {profile!r}; expected one of {', '.join(EDITION_PROFILES)}")
    return EDITION_PROFILES[profile]


def edition_archives(edition: int | str | Edition, machines: Iterable[str] | None = None,
                     parts: Iterable[str] = PARTS) -> list[ZenodoFile]:
    """The archives of an edition's records (dev: dev machines; additional, eval: eval machines)."""
    ed = get_edition(edition)
    parts = tuple(parts)
    bad = [p for p in parts if p not in PARTS]
    if bad:
        raise ConfigError(f"unknown part(s) {bad}; expected some of {', '.join(PARTS)}")
    wanted = None if machines is None else tuple(machines)
    if wanted is not None:
        for m in wanted:
            ed.check_machine(m)
    out = []
    for part in parts:
        for m in (ed.dev_machines if part == "dev" else ed.eval_machines):
            if wanted is None or m in wanted:
                out.append(ZenodoFile(getattr(ed.records, part), ed.archives.name(part, m), None, None, part, m))
    return out


@dataclass(frozen=True)
class Planned:
    """One member to install: its name in the archive and its path under the data root."""

    member: str
    relpath: str
    machine: str
    section: str
    split: str  # train | test | supplemental | attributes
    domain: str | None
    label: str | None


@dataclass
class ArchivePlan:
    archive: str
    chosen: list[Planned]
    shortfalls: list[str] = field(default_factory=list)


def _under_machine(name: str, machine: str) -> tuple[str, ...] | None:
    """The member path from the machine folder on (``<machine>/<folder>/<file>``), or None."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or parts[0] == "__MACOSX" or parts[-1].startswith(".") or name.endswith("/"):
        return None
    if ".." in parts or name.startswith("/"):
        raise DownloadError(f"unsafe member path {name!r}; refusing it")
    if machine not in parts:
        return None
    return parts[parts.index(machine):]


def _quota(profile: EditionSubsetProfile, ed: Edition, archive: ZenodoFile, split: str, domain: str | None,
           label: str | None) -> int | None:
    if split == "supplemental":
        return profile.n_supplemental
    if split == "train":
        return profile.n_source_train if domain == "source" else profile.n_target_train
    if profile.n_test is None:
        return None
    if label is None:  # eval test: labels (and, 2022+, domains) hidden in the names
        return profile.n_test * 2 * (1 if domain is not None else len(DOMAINS))
    return profile.n_test


def plan_archive(edition: int | str | Edition, archive: ZenodoFile, names: Sequence[str],
                 profile: str | EditionSubsetProfile) -> ArchivePlan:
    """The members of ``archive`` (``names`` in archive order) that ``profile`` takes.

    Groups: (section, split, domain, label) per the edition's grammar; the first ``quota`` of
    each group in archive order. A clip name outside the grammar is an error naming it (the
    archive is not the edition it is said to be). Shortfalls (a group with fewer clips than
    wanted) are reported as sentences.
    """
    ed = get_edition(edition)
    prof = get_edition_profile(profile)
    dataset = "dev" if archive.part == "dev" else "eval"
    machine = archive.machine_type
    groups: dict[tuple, list[Planned]] = {}
    attributes: dict[str, Planned] = {}
    for name in names:
        rel = _under_machine(name, machine)
        if rel is None:
            continue
        if len(rel) == 2 and ed.attributes_csv and rel[1].startswith("attributes_") and rel[1].endswith(".csv"):
            section = rel[1].removeprefix("attributes_").removesuffix(".csv")
            attributes[section] = Planned(name, f"{DATASET_DIRS[dataset]}/{machine}/{rel[1]}", machine, section,
                                          "attributes", None, None)
            continue
        if len(rel) != 3 or not rel[2].endswith(".wav"):
            continue
        try:
            clip = parse_clip(ed, Path(DATASET_DIRS[dataset], *rel))
        except DatasetLayoutError as e:
            raise DownloadError(f"{archive.filename}: member {name!r}: {e}") from e
        key = (clip.section, clip.split, clip.domain, clip.label)
        groups.setdefault(key, []).append(Planned(name, f"{DATASET_DIRS[dataset]}/{'/'.join(rel)}", machine,
                                                  clip.section, clip.split, clip.domain, clip.label))
    # every group the table says a section has, so that a missing one is reported too
    for section in ed.sections(machine, dataset):
        if archive.part in ("dev", "additional"):
            for domain in ed.train_counts:
                groups.setdefault((section, "train", domain, "normal"), [])
        if archive.part == "dev":
            for domain, label in ed.test_counts:
                groups.setdefault((section, "test", domain, label), [])
    chosen: list[Planned] = []
    shortfalls: list[str] = []
    for key in sorted(groups, key=lambda k: tuple("" if v is None else v for v in k)):
        section, split, domain, label = key
        quota = _quota(prof, ed, archive, split, domain, label)
        found = groups[key]
        take = found if quota is None else found[:quota]
        if (quota is None and not found) or (quota is not None and len(found) < quota):
            what = " ".join(v for v in (split, domain, label) if v)
            shortfalls.append(f"{archive.filename}: {machine} section {section} {what}: {len(found)} clip(s), "
                              f"{'all' if quota is None else quota} wanted")
        chosen += take
    sections = {p.section for p in chosen}
    chosen += [p for s, p in sorted(attributes.items()) if s in sections]
    if ed.attributes_csv and archive.part != "eval":
        for s in sorted(sections - set(attributes)):
            shortfalls.append(f"{archive.filename}: no {ed.attributes_file(machine, s)} for {machine} section {s}")
    return ArchivePlan(archive.filename, chosen, shortfalls)


# ---- figures -------------------------------------------------------------------------------------------


def edition_clip_bytes(edition: int | str | Edition, machine: str) -> int:
    """Assumed size of one clip: 44-byte header + 16-bit mono 16 kHz samples of the table's length."""
    return WAV_HEADER_BYTES + int(round(get_edition(edition).seconds(machine) * SAMPLE_RATE)) * 2


@dataclass(frozen=True)
class EditionSubsetFigures:
    edition: int
    profile: str
    archives: int
    clips: int
    train_clips: int
    test_clips: int
    clip_bytes: int
    total_bytes: int
    requests: int
    requests_worst: int

    def describe(self) -> str:
        return (f"DCASE{self.edition} subset {self.profile!r}: {self.clips:,} clips ({self.train_clips:,} train, "
                f"{self.test_clips:,} test) from {self.archives} archives; about {self.clip_bytes / 1e9:.3f} GB of clips "
                f"(computed from the clip lengths, not measured), at most {self.total_bytes:,} bytes transferred; about "
                f"{self.requests} requests (at most {self.requests_worst} if no chosen clips lie together)")


def edition_subset_figures(edition: int | str | Edition, profile: str | EditionSubsetProfile = "small",
                           machines: Iterable[str] | None = None, parts: Iterable[str] = PARTS,
                           tail_bytes: int = DEFAULT_TAIL_BYTES, max_request: int = DEFAULT_MAX_REQUEST
                           ) -> EditionSubsetFigures:
    """Clips, bytes and requests of a profile, from the edition's table (see the module doc).

    Groups per machine and section: source train, target train, dev test per (domain, label),
    eval test per section (2021: per domain); one request per group (split at ``max_request``),
    one per archive for its directory and one per attributes file. ``full`` counts the table's
    train and dev test counts and, for the eval test set, as many as a dev test section (assumed).
    """
    ed = get_edition(edition)
    prof = get_edition_profile(profile)
    files = edition_archives(ed, machines, parts)
    train = test = supplemental = total = runs = attrs = 0

    def take(quota: int | None, available: int) -> int:
        return available if quota is None else min(quota, available)

    for f in files:
        size = edition_clip_bytes(ed, f.machine_type)
        dataset = "dev" if f.part == "dev" else "eval"
        for _section in ed.sections(f.machine_type, dataset):
            groups: list[tuple[str, int]] = []
            if f.part in ("dev", "additional"):
                for domain, available in ed.train_counts.items():
                    quota = prof.n_source_train if domain == "source" else prof.n_target_train
                    groups.append(("train", take(quota, available)))
                attrs += 1 if ed.attributes_csv else 0
            if f.part == "dev":
                for (_d, _lab), available in ed.test_counts.items():
                    groups.append(("test", take(prof.n_test, available)))
            if f.part == "eval":
                per_section = (2 * len(DOMAINS) * prof.n_test if prof.n_test is not None
                               else sum(ed.test_counts.values()))  # full: assumed as large as a dev section
                n_groups = len(DOMAINS) if ed.year == 2021 else 1
                groups += [("test", per_section // n_groups)] * n_groups
            if f.part == "dev" and ed.supplemental_folder and _section == ed.sections(f.machine_type, "dev")[0]:
                groups.append(("supplemental", take(prof.n_supplemental, ed.supplemental_per_machine)))
            for kind, n in groups:
                if n == 0:
                    continue
                train += n if kind == "train" else 0
                test += n if kind == "test" else 0
                supplemental += n if kind == "supplemental" else 0
                total += n * size
                runs += max(1, math.ceil(n * size / max_request))
    clips = train + test + supplemental
    directory = len(files) * tail_bytes
    return EditionSubsetFigures(
        edition=ed.year, profile=prof.name, archives=len(files), clips=clips, train_clips=train, test_clips=test,
        clip_bytes=total, total_bytes=total + clips * LOCAL_HEADER_ESTIMATE + directory,
        requests=len(files) + runs + attrs, requests_worst=len(files) + clips + attrs,
    )


# ---- fetch ---------------------------------------------------------------------------------------------


@dataclass
class EditionArchiveResult:
    filename: str
    chosen: int
    fetched: int
    present: int
    requests: int
    bytes_received: int
    shortfalls: list[str]


def _verified(path: Path, size: int, crc: int) -> bool:
    from .subset import is_verified

    return is_verified(path, size, crc)


def _install(path: Path, data: bytes, where: str) -> None:
    from .subset import check_clip

    with atomic_write(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        if path.suffix == ".wav":
            check_clip(Path(fh.name), where)


def fetch_edition_subset(root: str | os.PathLike, edition: int | str | Edition,
                         profile: str | EditionSubsetProfile = "small", machines: Iterable[str] | None = None,
                         parts: Iterable[str] = PARTS, base_url: str | None = None, *, progress: bool = True,
                         timeout: float = 60.0, retries: int = 5, min_interval: float = 1.0,
                         max_gap: int = DEFAULT_MAX_GAP, max_request: int = DEFAULT_MAX_REQUEST,
                         tail_bytes: int = DEFAULT_TAIL_BYTES) -> list[EditionArchiveResult]:
    """Fetch the planned members of every archive into ``root``; idempotent (see the module doc)."""
    ed = get_edition(edition)
    prof = get_edition_profile(profile)
    root = Path(root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    manifest_path = root / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    manifest.update({"edition": ed.year, "profile": asdict(prof)})
    manifest.setdefault("archives", {})
    results = []
    with RangeClient(timeout=timeout, retries=retries, min_interval=min_interval) as client:
        for f in edition_archives(ed, machines, parts):
            entry = manifest["archives"].get(f.filename)
            if _archive_verified(root, entry, prof):  # as asdlib.data.subset: a verified archive asks nothing
                n = len(entry["members"])
                results.append(EditionArchiveResult(f.filename, n, 0, n, 0, 0, list(entry.get("shortfalls", []))))
                continue
            r0, b0 = client.requests, client.bytes_received
            url = file_url(f, base_url)
            rz = RemoteZip(client, url, tail_bytes)
            names = [m.name for m in sorted(rz.members.values(), key=lambda m: m.start)]
            plan = plan_archive(ed, f, names, prof)
            by_member = {p.member: p for p in plan.chosen}
            todo = [rz.members[p.member] for p in plan.chosen
                    if not _verified(root / p.relpath, rz.members[p.member].size, rz.members[p.member].crc)]
            fetched = 0
            for m, data in rz.fetch(todo, max_gap=max_gap, max_request=max_request):
                _install(root / by_member[m.name].relpath, data, f"{f.filename}:{m.name}")
                fetched += 1
            # written once every planned member is on disk: the entry is what edition_subset_complete checks
            manifest["archives"][f.filename] = {
                "record": f.record, "url": url, "size": rz.size, "directory_digest": rz.directory_digest,
                "profile": asdict(prof), "relpaths": [p.relpath for p in plan.chosen], "shortfalls": plan.shortfalls,
                "members": {p.relpath: {"size": rz.members[p.member].size, "crc32": f"{rz.members[p.member].crc:08x}"}
                            for p in plan.chosen}}
            atomic_write_text(manifest_path, json.dumps(manifest, indent=1) + "\n")
            results.append(EditionArchiveResult(f.filename, len(plan.chosen), fetched, len(plan.chosen) - len(todo),
                                                client.requests - r0, client.bytes_received - b0, plan.shortfalls))
    return results


def edition_subset_complete(root: str | os.PathLike, edition: int | str | Edition,
                            profile: str | EditionSubsetProfile = "small", machines: Iterable[str] | None = None,
                            parts: Iterable[str] = PARTS) -> bool:
    """True when ``root`` holds every member that :func:`fetch_edition_subset` planned for ``profile``
    from each archive of ``parts`` (recorded in its manifest, on disk with the right size and CRC-32);
    checked without the network."""
    ed = get_edition(edition)
    prof = get_edition_profile(profile)
    root = Path(root).expanduser()
    try:
        manifest = json.loads((root / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("edition") != ed.year:
        return False
    archives = manifest.get("archives") or {}
    return all(_archive_verified(root, archives.get(f.filename), prof) for f in edition_archives(ed, machines, parts))


def _archive_verified(root: Path, entry: dict | None, prof: EditionSubsetProfile) -> bool:
    """The manifest's entry of one archive was written for ``prof`` and each member it lists is on disk
    with its size and CRC-32."""
    if not entry or entry.get("profile") != asdict(prof) or not isinstance(entry.get("members"), dict):
        return False
    return all(_verified(root / rel, rec["size"], int(rec["crc32"], 16)) for rel, rec in entry["members"].items())


def run_cli(args) -> int:
    """``asdlib download --edition YEAR [--subset small|tiny|full]``."""
    ed = get_edition(args.edition)
    parts = [p.strip() for p in args.parts.split(",") if p.strip() and p.strip() != "truth"] if args.parts else PARTS
    machines = [t.strip() for t in args.types.split(",")] if args.types else None
    profile = args.subset or "full"
    figures = edition_subset_figures(ed, profile, machines, parts)
    print(figures.describe())
    if args.dry_run:
        for f in edition_archives(ed, machines, parts):
            print(f"{f.part:10} {file_url(f, args.base_url)}")
        return 0
    results = fetch_edition_subset(args.root, ed, profile, machines, parts, args.base_url,
                                   progress=not args.no_progress, timeout=args.timeout, retries=args.retries)
    for r in results:
        print(f"{r.filename}: {r.chosen} members chosen, {r.fetched} fetched, {r.present} already verified, "
              f"{r.requests} requests, {r.bytes_received:,} bytes")
        for s in r.shortfalls:
            print(f"warning: {s}")
    print(f"eval labels are not on Zenodo: index with `asdlib index --edition {ed.year} --ground-truth DIR` "
          f"(the organisers' evaluator repository's ground_truth_data/)")
    return 0
