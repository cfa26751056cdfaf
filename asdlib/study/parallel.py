"""Independent trainings spread over several devices before the notebooks run (``asdlib reproduce --devices``).

The study trains many models that do not depend on each other: E1's six individual models,
E2 and the loss variants, each for every seed, and one autoencoder and one WaveNet per
machine type and seed; E5's fine-tunings depend only on the E2 run of their seed. Every run
is keyed by its settings and resumable (:mod:`asdlib.study.experiments`), so they can be
trained anywhere beforehand: :func:`pretrain` lists the runs the notebooks about to run will
ask for (:func:`plan`), trains them in a pool of worker processes, one per device, and
returns. The notebooks then run serially as always; each of their training calls finds its
run finished and reuses it, and evaluation, tables and figures are made exactly as in a
serial run. The notebooks know nothing of this.

Devices: ``0,1,2,3`` (or ``cuda:0,...``) are GPUs, each worker seeing only its own
(``CUDA_VISIBLE_DEVICES``) and calling it ``cuda``, as the serial run does (a run's key
holds no device, but the reconstruction models' keys hold the device string, so the two
must agree); ``cpu`` entries are CPU workers (tests, or a CPU machine with many cores:
each worker gets an equal share of the cores). A device may be listed twice to train two
runs on it at once.

Results are the serial run's: a run's randomness comes from its seed alone. On CPU with the
same number of threads the checkpoints are bit-identical; on GPUs, as in any two serial runs,
they are equal up to the non-determinism of CUDA kernels (unless ``deterministic``).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..core.errors import AsdlibError, ConfigError
from ..core.machines import MACHINE_TYPES
from .registry import EXPERIMENTS, get_experiment

# Notebooks that train (or reuse) E2 besides notebook 03, whose experiment it is.
USES_INTEGRATED = ("04_loss_ablation", "05_transfer_learning", "06_tsne", "07_anomaly_scores")
_ORDER = {"classifier": 0, "reconstruction": 1}  # integrated models first: the longest runs start first


@dataclass(frozen=True)
class Job:
    """One training run: a registered experiment, a seed, and the run within it (a group of
    types for classifiers, a machine type for reconstruction models, ``type__selection`` for E5)."""

    experiment: str
    seed: int
    run: str

    @property
    def label(self) -> str:
        return f"{self.experiment}/{self.run} seed {self.seed}"


def experiments_for(notebooks: Iterable[str]) -> list[str]:
    """The registered experiments the given notebooks train, E2 included where they reuse it."""
    notebooks = set(notebooks)
    names = [n for n, e in EXPERIMENTS.items() if e.notebook in notebooks]
    if notebooks & set(USES_INTEGRATED) and "integrated" not in names:
        names.insert(0, "integrated")
    return names


def plan(study, notebooks: Iterable[str]) -> tuple[list[Job], list[Job]]:
    """The runs the notebooks will ask for: ``(independent runs, runs that need E2 first)``."""
    from .experiments import SELECTIONS, rows

    index = study.features.index
    first, second = [], []
    for name in experiments_for(notebooks):
        exp = get_experiment(name)
        for seed in study.seeds:
            if exp.kind == "classifier":
                first += [Job(name, seed, run) for run in exp.groups]
            elif exp.kind == "reconstruction":
                first += [Job(name, seed, t) for t in MACHINE_TYPES
                          if len(rows(index, [t], "train")) and len(rows(index, [t], "test"))]
            elif exp.kind == "transfer":
                first.append(Job("integrated", seed, "integrated"))
                second += [Job(name, seed, f"{t}__{sel}") for sel in SELECTIONS for t in MACHINE_TYPES]
    first = list(dict.fromkeys(first))  # E2 once, even when asked for by several notebooks
    first.sort(key=_longest_first)
    return first, second


def _longest_first(job: Job) -> tuple[int, int]:
    """Classifiers before reconstruction models, and among them the most machine types first."""
    exp = get_experiment(job.experiment)
    return _ORDER[exp.kind], -len(exp.groups.get(job.run, ()))


AUTO_MAX_WORKERS = 8  # a process each holds torch and the feature cache's pages: 8 is plenty on a CPU


def auto_devices(serial_device: str, cores: int | None = None) -> tuple[str, ...]:
    """``--devices auto``: on a CPU with at least 2 usable cores, one CPU worker per core (at most
    :data:`AUTO_MAX_WORKERS`), each training on one thread; otherwise none (the notebooks train
    serially, e.g. on one GPU).

    Small networks use two threads poorly (evaluation and the Python around each step barely
    at all), while two one-thread runs side by side keep both cores busy: on the 2-core machine
    of the README the smoke profile's trainings finish about 1.7 times as fast. One thread per run
    also makes a run's weights independent of the machine's core count.
    """
    from .run_config import usable_cores

    cores = usable_cores(AUTO_MAX_WORKERS) if cores is None else min(cores, AUTO_MAX_WORKERS)
    return ("cpu",) * cores if serial_device == "cpu" and cores >= 2 else ()


def worker_devices(devices: Sequence[str], serial_device: str) -> list[tuple[str | None, str]]:
    """``(CUDA_VISIBLE_DEVICES value or None, device string)`` per worker.

    ``serial_device`` is the notebooks' device (resolved): GPU workers need ``cuda`` there,
    CPU workers ``cpu``, so that every run's key is the one the notebooks compute.
    """
    out = []
    for d in devices:
        d = d.strip()
        if d == "cpu":
            out.append((None, "cpu"))
        elif d.isdigit() or (d.startswith("cuda:") and d[5:].isdigit()):
            out.append((d.removeprefix("cuda:"), "cuda"))
        else:
            raise ConfigError(f"--devices entry {d!r}: give GPU indices (0,1,...), cuda:N or cpu")
    kinds = {dev for _, dev in out}
    if not out:
        raise ConfigError("--devices is empty")
    if kinds != {serial_device}:
        raise ConfigError(f"--devices {','.join(devices)} trains on {'/'.join(sorted(kinds))} but the notebooks run "
                          f"on {serial_device!r}; give --device {'cuda' if 'cuda' in kinds else 'cpu'} (a run trained "
                          "on one kind of device is reused only by notebooks on the same kind)")
    return out


# ---------------------------------------------------------------- the worker side

_STUDY = None
_DEVICE = "cpu"


def _init_worker(slots, study_kwargs: dict[str, Any], threads: int | None) -> None:
    """Runs once in each worker: take a device slot, restrict CUDA to it, open the study."""
    global _STUDY, _DEVICE
    visible, _DEVICE = slots.get()
    if visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible  # before CUDA is first touched in this process
    import torch

    if threads:
        torch.set_num_threads(threads)
    from .context import Study

    _STUDY = Study.open(**study_kwargs, device=_DEVICE, progress=False)
    _ = _STUDY.features  # the cache the main process built: opened, not rebuilt
    if visible is not None:
        _DEVICE = f"cuda (GPU {visible})"


def _run(job: Job) -> dict[str, Any]:
    t0 = time.perf_counter()
    status = train_job(_STUDY, job)
    return {"job": job.label, "device": _DEVICE, "seconds": round(time.perf_counter() - t0, 2), "status": status,
            "pid": os.getpid()}


def train_job(study, job: Job) -> str:
    """Train (or find finished) one run exactly as the notebooks' calls would; ``'trained'`` or ``'skipped'``."""
    from . import experiments as ex

    exp = get_experiment(job.experiment)
    if exp.kind == "classifier":
        ex.train_classifier(study, ex.run_folder(exp, job.run), exp.groups[job.run], exp.overrides, job.seed)
    elif exp.kind == "reconstruction":
        per_type = ex.autoencoder_type if exp.name == "autoencoder" else ex.wavenet_type
        per_type(study, job.run, ex.recon_config(study, exp.name, job.seed))
    else:  # transfer: the fine-tuning of one type on one selection rule's checkpoint of E2
        machine_type, selection = job.run.split("__")
        e2 = get_experiment("integrated")
        integrated = ex.train_classifier(study, ex.run_folder(e2, "integrated"), e2.groups["integrated"],
                                         e2.overrides, job.seed)
        if selection not in integrated.best:
            return "skipped"
        source = ex.transfer_source(integrated, selection)
        if source != integrated.best[selection].path:
            return "skipped"  # an earlier rule chose the same epoch: its job fine-tunes these weights
        ex.transfer_classifier(study, source, machine_type, None, job.seed)
    return "trained"


# ---------------------------------------------------------------- the main side

def pretrain(study, notebooks: Iterable[str], devices: Sequence[str], threads: int | None = None,
             progress: bool = True) -> list[dict[str, Any]]:
    """Train every run the ``notebooks`` will ask for, in parallel over ``devices``.

    ``study`` is the notebooks' :class:`~asdlib.study.context.Study` (its feature cache is
    built here first, once). ``threads``: torch CPU threads per worker (default: for CPU
    workers an equal share of the cores, for GPU workers torch's default). Returns one row
    per run (job, device, seconds, status). A failing run stops the others and raises
    :class:`AsdlibError` naming it; finished runs are kept, so running again continues.
    """
    first, second = plan(study, notebooks)
    if not first and not second:
        return []
    slots_spec = worker_devices(devices, study.device)
    if threads is None and study.device == "cpu":
        from .run_config import usable_cores

        threads = max(1, usable_cores(cap=1024) // len(slots_spec))
    kwargs = {"data_root": str(study.data_root), "synthetic": study.synthetic, "profile": study.profile,
              "seed": study.seed, "results_dir": str(study.results_dir), "work_dir": str(study.work_dir),
              "seeds": study.n_seeds}
    ctx = mp.get_context("spawn")  # fresh interpreters: CUDA_VISIBLE_DEVICES is set before CUDA starts
    slots = ctx.Queue()
    for spec in slots_spec:
        slots.put(spec)
    order = {job: k for k, job in enumerate(first + second)}
    rows: list[dict[str, Any]] = []
    pool = ProcessPoolExecutor(len(slots_spec), mp_context=ctx, initializer=_init_worker,
                               initargs=(slots, kwargs, threads))
    try:
        for wave in (first, second):  # E5's fine-tunings start once every E2 run is there
            futures = {pool.submit(_run, job): job for job in wave}
            for f in as_completed(futures):
                job = futures[f]
                if f.exception() is not None:
                    raise AsdlibError(f"pre-training {job.label} failed: {type(f.exception()).__name__}: "
                                      f"{f.exception()}; finished runs are kept, so running again continues") \
                        from f.exception()
                row = f.result() | {"order": order[job]}
                rows.append(row)
                if progress:
                    print(f"[pretrain] {row['job']} on {row['device']}: {row['status']}, {row['seconds']:.1f} s "
                          f"({len(rows)}/{len(order)})", flush=True)
    except BaseException:
        # stop the other runs now rather than after they finish (they resume from their last epoch)
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return [{k: v for k, v in r.items() if k != "order"} for r in sorted(rows, key=lambda r: r["order"])]
