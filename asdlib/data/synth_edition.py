"""Synthetic stand-ins for the later DCASE Task 2 editions (2022-2025), in their layout and names.

What :mod:`asdlib.data.synth` is for DCASE2020, this is for the editions with domains,
sections and attributes: the notebooks run offline and the domain-shift code paths are
exercised. It writes what the organisers' archives unpack to (16 kHz 16-bit mono WAV):

- ``dev_data/<machine>/{train,test}/`` and ``eval_data/<machine>/{train,test}/`` for the
  edition's development and (first-shot) evaluation machine types and sections
  (:data:`asdlib.data.editions.EDITIONS`); train names
  ``section_XX_<source|target>_train_normal_NNNN_<attrs>.wav``, dev test names
  ``section_XX_<domain>_test_<label>_NNNN_<attrs>.wav``, eval test names ``section_XX_NNNN.wav``
  (a shuffled number hides label and domain);
- ``attributes_XX.csv`` per machine and section (``file_name,d1p,d1v``; eval test clips not listed);
- ``ground_truth/ground_truth_{data,domain}/ground_truth_<machine>_section_XX_test.csv``: the
  eval test labels and domains, as the organisers' evaluator repositories publish them;
- ``SYNTHETIC.md`` and ``synth_manifest.json`` (labelled synthetic, as the 2020 stand-in).

**Domain shift.** Every machine has one attribute, ``op`` (operating condition). The source
domain has two values (``op_1``, ``op_2``: speed x1.00 and x1.08); the target domain a third
(``op_3``: speed x1.25, which moves every harmonic and rhythm of the machine up by a quarter,
and a room noise 3 dB/octave brighter). Training has ``n_source_train`` source clips and
``n_target_train`` (10, as the real editions) target clips per section. Machine types reuse
the six physical models of :mod:`asdlib.data.sounds` (:func:`base_model`), with constants
drawn per (machine, section), so machines of the same model still differ.
"""
from __future__ import annotations

import os
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from .. import __version__
from ..core.errors import ConfigError
from ..core.machines import MACHINE_TYPES, SAMPLE_RATE
from ..core.utils import atomic_write_text
from .editions import DATASET_DIRS, DOMAINS, Edition, clip_folder, clip_name, get_edition
from .synth import already_made, building, render_clip, seal, write_wav

SYNTH_EDITION_VERSION = 1
GROUND_TRUTH_DIR = "ground_truth"
ATTRIBUTE = "op"
# attribute value -> speed factor; the target value also brightens the room noise
SOURCE_VALUES: dict[str, float] = {"1": 1.0, "2": 1.08}
TARGET_VALUES: dict[str, float] = {"3": 1.25}
TARGET_TILT_DB_OCT = 3.0
_SALT = 20230501
_BASE = {"bearing": "pump", "fan": "fan", "gearbox": "pump", "slider": "slider", "ToyCar": "ToyCar",
         "ToyTrain": "ToyConveyor", "valve": "valve", "pump": "pump", "bandsaw": "slider", "grinder": "fan",
         "shaker": "valve", "ToyDrone": "fan", "ToyNscale": "ToyConveyor", "ToyTank": "ToyCar", "Vacuum": "pump"}


@dataclass(frozen=True)
class EditionSynthProfile:
    """How much to write, per machine and section: ``n_test`` clips per (domain, label) of the test set."""

    name: str
    clip_seconds: float  # a 10-s machine's clip; a 12-s machine gets 12/10 of it
    n_source_train: int
    n_target_train: int
    n_test: int

    def __post_init__(self) -> None:
        if self.clip_seconds <= 0 or min(self.n_source_train, self.n_target_train) < 1 or self.n_test < 1:
            raise ConfigError(f"synthetic edition profile {self.name!r}: clip length and counts must be positive")


EDITION_PROFILES: dict[str, EditionSynthProfile] = {
    "tiny": EditionSynthProfile("tiny", clip_seconds=1.0, n_source_train=6, n_target_train=10, n_test=4),
    "smoke": EditionSynthProfile("smoke", clip_seconds=2.0, n_source_train=30, n_target_train=10, n_test=12),
    "full": EditionSynthProfile("full", clip_seconds=10.0, n_source_train=240, n_target_train=10, n_test=50),
}


def base_model(machine: str) -> str:
    """The physical model (a DCASE2020 type) a machine type is played with."""
    return _BASE.get(machine) or MACHINE_TYPES[zlib.crc32(machine.encode()) % len(MACHINE_TYPES)]


def _key(name: str) -> int:
    return zlib.crc32(name.encode())


def section_params(machine: str, section: str) -> dict:
    """The constants of one machine (type, section): the same whatever the seed or profile."""
    from .sounds import MODELS, site_params

    rng = np.random.default_rng(np.random.SeedSequence([_SALT, _key(machine), int(section)]))
    p = MODELS[base_model(machine)].params(rng)
    p["level_dbfs"] = rng.uniform(-30, -24)
    p["site"] = site_params(rng)
    return p


def attribute_value(domain: str, index: int) -> str:
    values = list(SOURCE_VALUES if domain == "source" else TARGET_VALUES)
    return values[index % len(values)]


def domain_params(machine: str, section: str, domain: str, value: str) -> tuple[dict, float]:
    """The machine's constants and speed factor in a domain with an attribute value."""
    p = section_params(machine, section)
    if domain == "target":
        p["site"]["tilt"] += TARGET_TILT_DB_OCT
        return p, TARGET_VALUES[value]
    return p, SOURCE_VALUES[value]


@dataclass(frozen=True)
class EditionClip:
    dataset: str
    machine: str
    section: str
    split: str
    domain: str
    label: str
    index: int  # number within (machine, section, split, domain, label)
    value: str  # the attribute value
    relpath: str


def _n_samples(ed: Edition, profile: EditionSynthProfile, machine: str) -> int:
    return int(round(profile.clip_seconds * ed.seconds(machine) / 10.0 * SAMPLE_RATE))


def plan_edition(ed: Edition, profile: EditionSynthProfile, seed: int,
                 machines: Iterable[str] | None = None) -> list[EditionClip]:
    """Every clip to write, dev and eval machines of the edition (or those in ``machines``)."""
    wanted = None if machines is None else set(machines)
    jobs: list[EditionClip] = []
    for dataset in ("dev", "eval"):
        for machine in (ed.dev_machines if dataset == "dev" else ed.eval_machines):
            if wanted is not None and machine not in wanted:
                continue
            base = f"{DATASET_DIRS[dataset]}/{machine}"
            for section in ed.sections(machine, dataset):
                for domain, n in (("source", profile.n_source_train), ("target", profile.n_target_train)):
                    for i in range(n):
                        v = attribute_value(domain, i)
                        name = clip_name(ed, section=section, number=i, split="train", domain=domain, label="normal",
                                         attributes={ATTRIBUTE: v})
                        jobs.append(EditionClip(dataset, machine, section, "train", domain, "normal", i, v,
                                                f"{base}/{clip_folder(ed, 'train')}/{name}"))
                tests = [(d, lab, i) for d in DOMAINS for lab in ("normal", "anomaly") for i in range(profile.n_test)]
                shuffle = np.random.default_rng(np.random.SeedSequence([seed, _key(machine), int(section), 7]))
                for (d, lab, i), k in zip(tests, shuffle.permutation(len(tests))):
                    v = attribute_value(d, i)
                    name = (clip_name(ed, section=section, number=i, split="test", domain=d, label=lab,
                                      attributes={ATTRIBUTE: v}) if dataset == "dev"
                            else clip_name(ed, section=section, number=int(k), split="test", domain=d, label=None))
                    jobs.append(EditionClip(dataset, machine, section, "test", d, lab, i, v,
                                            f"{base}/{clip_folder(ed, 'test', d)}/{name}"))
    if wanted is not None and not jobs:
        raise ConfigError(f"none of {sorted(wanted)} is a machine type of DCASE{ed.year}; "
                          f"expected some of {', '.join(ed.machines)}")
    return jobs


def clip_rng(seed: int, job: EditionClip) -> np.random.Generator:
    key = [seed, _key(job.machine), int(job.section), ("dev", "eval").index(job.dataset),
           ("train", "test").index(job.split), DOMAINS.index(job.domain), ("normal", "anomaly").index(job.label),
           job.index]
    return np.random.default_rng(np.random.SeedSequence(key))


def render_edition_clip(ed: Edition, profile: EditionSynthProfile, job: EditionClip, seed: int,
                        severity: float = 1.0) -> np.ndarray:
    p, speed = domain_params(job.machine, job.section, job.domain, job.value)
    return render_clip(base_model(job.machine), job.section, job.label == "anomaly",
                       _n_samples(ed, profile, job.machine), clip_rng(seed, job), severity, SAMPLE_RATE,
                       params=p, speed=speed)


def _write_tables(tmp: Path, jobs: list[EditionClip]) -> None:
    """attributes_XX.csv per machine and section; the eval ground truth (labels and domains)."""
    attrs: dict[tuple[str, str, str], list[str]] = {}
    truth: dict[tuple[str, str], list[tuple[str, int, int]]] = {}
    for j in jobs:
        folder, name = j.relpath.split("/")[-2:]
        if not (j.dataset == "eval" and j.split == "test"):
            attrs.setdefault((j.dataset, j.machine, j.section), []).append(
                f"{j.machine}/{folder}/{name},{ATTRIBUTE},{j.value}")
        else:
            truth.setdefault((j.machine, j.section), []).append(
                (name, int(j.label == "anomaly"), DOMAINS.index(j.domain)))
    for (dataset, machine, section), lines in attrs.items():
        path = tmp / DATASET_DIRS[dataset] / machine / f"attributes_{section}.csv"
        atomic_write_text(path, "\n".join(["file_name,d1p,d1v", *sorted(lines)]) + "\n")
    for (machine, section), rows in truth.items():
        rows.sort()
        for sub, col in (("ground_truth_data", 1), ("ground_truth_domain", 2)):
            path = tmp / GROUND_TRUTH_DIR / sub / f"ground_truth_{machine}_section_{section}_test.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, "".join(f"{r[0]},{r[col]}\n" for r in rows))


def _note(request: dict) -> str:
    p = request["profile"]
    return (f"# Synthetic data: not the DCASE{request['edition']} Task 2 data\n\n"
            f"Made by asdlib {__version__} (`asdlib synth --edition {request['edition']}`) from physical sound\n"
            f"models with simulated faults and a simulated domain shift (target domain: attribute\n"
            f"{ATTRIBUTE}_3, the machine 25% faster and a brighter room). It follows the edition's layout\n"
            f"and naming so that the same code reads it and the real data; its figures say nothing about\n"
            f"the real data.\n\n- profile: {p['name']} ({p['clip_seconds']} s clips; per section "
            f"{p['n_source_train']} source + {p['n_target_train']} target train, {p['n_test']} test clips per "
            f"domain and label)\n- seed: {request['seed']}\n- severity: {request['severity']}\n"
            f"- machine types: {', '.join(request['machines'])}\n")


def generate_edition(root: str | os.PathLike, edition: int | str = 2023, profile: str | EditionSynthProfile = "smoke",
                     seed: int = 0, machines: Iterable[str] | None = None, severity: float = 1.0,
                     overwrite: bool = False, progress: bool = False) -> Path:
    """Write a synthetic dataset of a later edition at ``root`` and return ``root``.

    Idempotent (same settings: nothing is done) and atomic (written beside ``root`` and renamed
    into place), as :func:`asdlib.data.synth.generate_dataset`.
    """
    ed = get_edition(edition)
    if ed.year < 2022:
        raise ConfigError(f"synthetic editions cover DCASE2022-2025 (one test folder, attributes files); "
                          f"DCASE{ed.year}: use generate_dataset (2020) or real data")
    if isinstance(profile, str):
        if profile not in EDITION_PROFILES:
            raise ConfigError(f"unknown synthetic profile {profile!r}; expected one of {', '.join(EDITION_PROFILES)}")
        profile = EDITION_PROFILES[profile]
    if severity < 0:
        raise ConfigError(f"severity must be >= 0, got {severity}")
    jobs = plan_edition(ed, profile, seed, machines)
    names = list(dict.fromkeys(j.machine for j in jobs))
    request = {"generator": "asdlib.data.synth_edition", "synth_version": SYNTH_EDITION_VERSION, "edition": ed.year,
               "profile": asdict(profile), "seed": int(seed), "severity": float(severity), "machines": names}
    root = Path(root).expanduser().resolve()
    if already_made(root, request, overwrite):
        return root
    from tqdm.auto import tqdm

    with building(root) as tmp:
        for job in tqdm(jobs, desc=f"synth {ed.year}", unit="clip", disable=not progress):
            x = render_edition_clip(ed, profile, job, seed, severity)
            write_wav(tmp / job.relpath, x, SAMPLE_RATE)
        _write_tables(tmp, jobs)
        seal(tmp, _note(request), dict(request, asdlib_version=__version__, sample_rate=SAMPLE_RATE,
                                       files=len(jobs), ground_truth=GROUND_TRUTH_DIR, synthetic=True))
    return root
