"""The embedded default dataset: a synthetic DCASE2020 Task 2 dataset in the official layout.

Why it exists: the real data are about 20 GB and the study's models train for hours on a
GPU. The notebooks default to this stand-in so that the whole chain (index, features,
ID classifiers, margin losses, transfer, reconstruction baseline, tables) runs on a CPU in
minutes and every table has numbers. It writes exactly what the real archives unpack to
(file names, folders, 16 kHz 16-bit mono WAV, ``eval_data_list.csv``), so code that reads
it reads the real data unchanged. The sounds come from ``asdlib.data.sounds`` (one physical
model per machine type) and ``asdlib.data.faults`` (faults per type).

Every clip has its own random stream, derived with ``numpy.random.SeedSequence`` from
(seed, type, ID, part, label, index): a clip is the same whatever order or process makes it.
A machine ID's constants depend on (type, ID) only, so the machines stay the same across
seeds and profiles; the seed changes the recordings.
"""
from __future__ import annotations

import copy
import io
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from .. import __version__
from ..core.errors import AsdlibError, ConfigError
from ..core.machines import (
    CLIP_SECONDS,
    DATASET_DIRS,
    GROUND_TRUTH_FILE,
    MACHINE_TYPES,
    SAMPLE_RATE,
    check_type,
    machine_ids,
)
from ..core.utils import atomic_write_text

SYNTH_VERSION = 1  # bump when the sound or fault models change, so old manifests stop matching
MANIFEST_FILE = "synth_manifest.json"
NOTE_FILE = "SYNTHETIC.md"
_ID_SALT = 20200301  # machine constants depend on (type, ID) only, not on the dataset seed
_SHUFFLE = 7  # stream tag for the eval test numbering


@dataclass(frozen=True)
class SynthProfile:
    """How much to generate. Counts are per machine ID; ``n_train`` serves dev and eval IDs alike."""

    name: str
    clip_seconds: float  # length of a 10-s type's clip; ToyCar gets 11/10 of it, as in the real data
    n_train: int
    n_test_normal: int
    n_test_anomaly: int
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        if self.clip_seconds <= 0 or min(self.n_train, self.n_test_normal, self.n_test_anomaly) < 0:
            raise ConfigError(f"synthetic profile {self.name!r}: clip length and counts must be positive")

    def n_samples(self, machine_type: str) -> int:
        return int(round(self.clip_seconds * CLIP_SECONDS[machine_type] / 10.0 * self.sample_rate))


PROFILES: dict[str, SynthProfile] = {
    # ~20 small models train on this within minutes on 2 CPU cores. 50 normal + 50 anomalous test clips
    # per ID make a per-type AUC interval about 8 points wide (5 + 5 gave about 25), at little cost:
    # scoring a small network is cheap next to training it.
    "smoke": SynthProfile("smoke", clip_seconds=2.0, n_train=20, n_test_normal=50, n_test_anomaly=50),
    # Real clip lengths, realistic counts (the real data has ~600-1000 train clips per ID): 14350
    # files, ~4.6 GB, ~15-20 CPU-minutes (use workers=2 on an idle machine).
    "full": SynthProfile("full", clip_seconds=10.0, n_train=250, n_test_normal=50, n_test_anomaly=50),
}


@dataclass(frozen=True)
class ClipJob:
    """One file to write: which clip it is and where it goes (relative to the root)."""

    machine_type: str
    machine_id: str
    part: str  # "train" or "test"
    label: str  # "normal" or "anomaly" (the truth, also for unlabelled eval test names)
    index: int  # number within (ID, part, label): the NNNNNNNN of the labelled name
    relpath: str


def labelled_name(label: str, machine_id: str, index: int) -> str:
    return f"{label}_id_{machine_id}_{index:08d}.wav"


def clip_rng(seed: int, job: ClipJob) -> np.random.Generator:
    key = [seed, MACHINE_TYPES.index(job.machine_type), int(job.machine_id),
           ("train", "test").index(job.part), ("normal", "anomaly").index(job.label), job.index]
    return np.random.default_rng(np.random.SeedSequence(key))


def machine_params(machine_type: str, machine_id: str) -> dict:
    """The constants of one machine (ID): speeds, sizes, resonances, recording level and site."""
    from .sounds import MODELS, site_params

    rng = np.random.default_rng(np.random.SeedSequence([_ID_SALT, MACHINE_TYPES.index(machine_type), int(machine_id)]))
    p = MODELS[check_type(machine_type)].params(rng)
    p["level_dbfs"] = rng.uniform(-30, -24)
    p["site"] = site_params(rng)
    return p


def render_clip(machine_type: str, machine_id: str, anomaly: bool, n_samples: int, rng: np.random.Generator,
                severity: float = 1.0, sr: int = SAMPLE_RATE, params: dict | None = None,
                speed: float = 1.0) -> np.ndarray:
    """One clip as floats in [-0.9, 0.9]: machine (+ fault) + room noise at the type's SNR, at the ID's level.

    ``params`` replaces the machine's constants (:func:`machine_params`) and ``speed`` scales its
    operating speed: the later editions' synthetic machines and their attribute values
    (:mod:`asdlib.data.synth_edition`). The defaults play the DCASE2020 machine (type, ID)."""
    from .faults import choose_fault
    from .sounds import MODELS, background, rms

    model = MODELS[machine_type]
    p = machine_params(machine_type, machine_id) if params is None else copy.deepcopy(params)
    p["speed"] = speed * (1.0 + 0.012 * rng.standard_normal())  # load and supply voltage vary between recordings
    fault = choose_fault(machine_type, rng) if anomaly else None
    if fault is not None and fault.modify is not None:
        fault.modify(p, rng, severity)
    r = model.render(p, rng, n_samples, sr)
    x = r.signal / rms(r.signal)
    if fault is not None and fault.add is not None:
        x = x + severity * 10 ** (rng.uniform(*fault.level_db) / 20) * fault.add(r, rng, sr)
    noise_gain = 10 ** (-(model.snr_db + rng.uniform(-2, 2)) / 20)
    x = x + noise_gain * background(rng, n_samples, sr, p["site"])
    # A fixed microphone gain per ID (a fault that adds energy makes the clip louder), then headroom.
    x *= 10 ** ((p["level_dbfs"] + rng.normal(0, 1.0)) / 20) / np.sqrt(1 + noise_gain**2)
    peak = float(np.max(np.abs(x)))
    return x * (0.9 / peak) if peak > 0.9 else x


def plan(profile: SynthProfile, seed: int, types: Sequence[str]) -> tuple[list[ClipJob], dict[str, list[tuple[str, str, int]]]]:
    """Every file to write, and the ground-truth rows (eval name, labelled name, 0/1) per type."""
    jobs: list[ClipJob] = []
    truth: dict[str, list[tuple[str, str, int]]] = {}
    for t in types:
        truth[t] = []
        for dataset in ("dev", "eval"):
            base = f"{DATASET_DIRS[dataset]}/{t}"
            for mid in machine_ids(t, dataset):
                for i in range(profile.n_train):
                    jobs.append(ClipJob(t, mid, "train", "normal", i, f"{base}/train/{labelled_name('normal', mid, i)}"))
                tests = [("normal", i) for i in range(profile.n_test_normal)]
                tests += [("anomaly", i) for i in range(profile.n_test_anomaly)]
                if dataset == "dev":
                    jobs += [ClipJob(t, mid, "test", lab, i, f"{base}/test/{labelled_name(lab, mid, i)}") for lab, i in tests]
                    continue
                # Eval test files hide the label behind a shuffled number, as the real ones do.
                rng = np.random.default_rng(np.random.SeedSequence([seed, MACHINE_TYPES.index(t), int(mid), _SHUFFLE]))
                for (lab, i), k in zip(tests, rng.permutation(len(tests))):
                    name = f"id_{mid}_{k:08d}.wav"
                    jobs.append(ClipJob(t, mid, "test", lab, i, f"{base}/test/{name}"))
                    truth[t].append((name, labelled_name(lab, mid, i), int(lab == "anomaly")))
        truth[t].sort()
    return jobs, truth


def write_clips(root: Path, jobs: Sequence[ClipJob], profile: SynthProfile, seed: int, severity: float) -> int:
    """Render and write ``jobs`` under ``root`` as 16-bit PCM WAV; returns how many were written."""
    for job in jobs:
        x = render_clip(job.machine_type, job.machine_id, job.label == "anomaly", profile.n_samples(job.machine_type),
                        clip_rng(seed, job), severity, profile.sample_rate)
        write_wav(root / job.relpath, x, profile.sample_rate)
    return len(jobs)


def write_wav(path: Path, x: np.ndarray, sample_rate: int) -> None:
    """``x`` (float in [-1, 1]) as a 16-bit PCM WAV. Encoded in memory, then written: libsndfile syncs a
    file it closes to disk (fsync), which cost 15-20 % of the smoke dataset's time; the dataset's folder
    is renamed into place only when complete anyway (:func:`building`)."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    sf.write(buf, np.round(x * 32767).astype(np.int16), sample_rate, subtype="PCM_16", format="WAV")
    path.write_bytes(buf.getvalue())


def already_made(root: Path, request: dict, overwrite: bool) -> bool:
    """True when ``root`` holds a finished dataset made with ``request``'s settings; an error when it holds
    anything else and ``overwrite`` is off."""
    if not root.exists():
        return False
    if not root.is_dir():
        raise AsdlibError(f"{root} exists and is not a folder")
    old = read_manifest(root) if (root / MANIFEST_FILE).is_file() else None
    if old is not None and {k: old.get(k) for k in request} == request:
        return True
    if any(root.iterdir()) and not overwrite:
        raise AsdlibError(f"{root} is not empty and holds no synthetic dataset made with these settings; "
                          "choose another folder or pass overwrite=True (--overwrite)")
    return False


@contextmanager
def building(root: Path) -> Iterator[Path]:
    """An empty temporary folder beside ``root`` to build a dataset in. When the block ends, the
    finished folder replaces ``root`` (a rename each; the old folder removed last); when it fails,
    the temporary folder is removed and ``root`` is left as it was."""
    tmp = root.parent / f".{root.name}.synth-{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    trash = root.parent / f".{root.name}.synth-{os.getpid()}.old"
    if root.exists():
        os.replace(root, trash)
    os.replace(tmp, root)
    shutil.rmtree(trash, ignore_errors=True)


def seal(folder: Path, note: str, manifest: dict) -> None:
    """The dataset's SYNTHETIC note, then its manifest: written last, the manifest marks the folder complete."""
    atomic_write_text(folder / NOTE_FILE, note)
    atomic_write_text(folder / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")


def _request(profile: SynthProfile, seed: int, severity: float, types: Sequence[str]) -> dict:
    return {"generator": "asdlib.data.synth", "synth_version": SYNTH_VERSION, "profile": asdict(profile),
            "seed": int(seed), "severity": float(severity), "types": list(types)}


def read_manifest(root: str | os.PathLike) -> dict | None:
    """The manifest of a synthetic dataset at ``root``, or None when there is none (e.g. real data)."""
    path = Path(root) / MANIFEST_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise AsdlibError(f"cannot read {path}: {e}") from e


def _note(request: dict) -> str:
    p = request["profile"]
    return (f"# Synthetic data: not the DCASE2020 Task 2 data\n\n"
            f"Made by asdlib {__version__} (`asdlib synth`, generator version {SYNTH_VERSION}) from physical sound\n"
            f"models of the six machine types with simulated faults. It follows the official layout and\n"
            f"naming so that the same code reads it and the real data; its figures say nothing about\n"
            f"the real data.\n\n- profile: {p['name']} ({p['clip_seconds']} s clips, ToyCar x1.1; per ID "
            f"{p['n_train']} train, {p['n_test_normal']} + {p['n_test_anomaly']} test)\n"
            f"- seed: {request['seed']}\n- severity: {request['severity']}\n"
            f"- machine types: {', '.join(request['types'])}\n")


def generate_dataset(root: str | os.PathLike, profile: str | SynthProfile = "smoke", seed: int = 0,
                     machine_types: Iterable[str] | None = None, severity: float = 1.0, progress: bool = True,
                     overwrite: bool = False, workers: int = 1) -> Path:
    """Write a synthetic DCASE2020-layout dataset at ``root`` and return ``root``.

    Idempotent: if ``root`` already holds a dataset made with the same settings, nothing is
    done. Atomic: the files are written into a hidden sibling folder that is renamed into
    place at the end, so an interrupted run never leaves a half dataset at ``root``. A
    ``root`` with other content raises :class:`AsdlibError` unless ``overwrite``.
    """
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise ConfigError(f"unknown synthetic profile {profile!r}; expected one of {', '.join(PROFILES)}")
        profile = PROFILES[profile]
    try:
        types = list(MACHINE_TYPES) if machine_types is None else [check_type(t) for t in machine_types]
    except ValueError as e:
        raise ConfigError(str(e)) from None
    types = [t for t in MACHINE_TYPES if t in types]  # canonical order
    if not types:
        raise ConfigError("no machine types to generate")
    if severity < 0:
        raise ConfigError(f"severity must be >= 0, got {severity}")
    root = Path(root).expanduser().resolve()
    request = _request(profile, seed, severity, types)
    if already_made(root, request, overwrite):
        return root
    jobs, truth = plan(profile, seed, types)
    with building(root) as tmp:
        _run_jobs(tmp, jobs, profile, seed, severity, progress, workers)
        lines = []
        for t in types:
            lines.append(t)
            lines += [f"{a},{b},{y}" for a, b, y in truth[t]]
        atomic_write_text(tmp / GROUND_TRUTH_FILE, "\n".join(lines) + "\n")
        counts = {t: {"dev_train": profile.n_train * len(machine_ids(t, "dev")),
                      "dev_test": (profile.n_test_normal + profile.n_test_anomaly) * len(machine_ids(t, "dev")),
                      "eval_train": profile.n_train * len(machine_ids(t, "eval")),
                      "eval_test": len(truth[t])} for t in types}
        manifest = dict(request, asdlib_version=__version__, sample_rate=profile.sample_rate,
                        clip_samples={t: profile.n_samples(t) for t in types}, counts=counts, files=len(jobs))
        seal(tmp, _note(request), manifest)
    return root


def _run_jobs(tmp: Path, jobs: list[ClipJob], profile: SynthProfile, seed: int, severity: float,
              progress: bool, workers: int) -> None:
    """Write all clips, in chunks of one (type, ID, part) each, in this process or a small pool."""
    from tqdm.auto import tqdm

    chunks: dict[tuple[str, str, str], list[ClipJob]] = {}
    for job in jobs:
        chunks.setdefault((job.machine_type, job.machine_id, job.part), []).append(job)
    bar = tqdm(total=len(jobs), desc="synth", unit="clip", disable=not progress)
    try:
        if workers <= 1:
            for chunk in chunks.values():
                bar.update(write_clips(tmp, chunk, profile, seed, severity))
            return
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(write_clips, tmp, c, profile, seed, severity) for c in chunks.values()]
            for f in as_completed(futures):
                bar.update(f.result())
    finally:
        bar.close()
