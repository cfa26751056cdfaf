"""Shared test fixtures: tiny WAV files and a tiny but valid DCASE2020 data root.

``make_wav(path, seconds=1.0, sr=16000, channels=1, freq=440.0, noise=0.0, seed=0) -> Path``
    Writes a 16-bit PCM WAV (a sine at ``freq`` Hz, amplitude 0.3, plus optional white
    noise of standard deviation ``noise``) with soundfile; creates parent folders.

``tiny_manifest -> list[dict]``
    What ``tiny_dataset`` writes, one dict per clip with keys ``relpath, dataset, part,
    machine_type, machine_id, label`` (the true label, also for eval test clips).

``tiny_dataset -> Path``
    A data root in ``tmp_path/data`` with 0.5-s clips for two types, fan and ToyCar:
    dev train 2 normal clips per dev ID for two IDs; dev test 1 normal + 1 anomaly per
    those IDs; eval train 2 normal clips for one eval ID; eval test 1 normal + 1 anomaly
    for that ID (named ``id_XX_...``), and ``eval_data_list.csv`` with their labels.
    Normal clips are clean sines whose pitch depends on the ID; anomalies add noise.

``ci_study -> CIStudy`` (session scope)
    One whole study run at the ``ci`` profile (``asdlib reproduce``: synthetic data, every
    notebook, the site), made once per session the first time a test asks for it and shared
    by every test that reads a finished run (``.results``, ``.work``, ``.rows``, ``.cfg``).
    Treat it as read-only; a test that must change a run copies ``.results`` first.

``make test`` runs the suite over the machine's cores with pytest-xdist (``-n auto --dist
loadgroup``): every test that asks for ``ci_study`` is put in one group, so the run is made once,
by one worker; each worker gets an equal share of the cores as torch threads (``OMP_NUM_THREADS``,
also for the notebook kernels and processes it starts), since two processes each spinning the
machine's every core slow each other down many times over.

The session starts by measuring the machine (:mod:`asdlib.study.speed`, about 5 s): the
figure is printed in the header and the summary, kept in ``.pytest_cache`` (key
``asdlib/machine_speed``) and reused by every study run in the session (``timings.csv``), so
that the durations are read beside the speed of the machine that took them. A session started
with ``ASDLIB_NO_SPEED`` set (the GPU check's nested ``pytest -m gpu``) skips the measurement.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # set in pytest-xdist's worker processes
if _WORKER:
    _SHARE = max(1, (os.cpu_count() or 1) // max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before torch starts its thread pools
        os.environ[_var] = str(_SHARE)


def _speed_line(config) -> str | None:
    speed = getattr(config, "_asdlib_speed", None)
    if speed is None:
        return None
    return speed.line() if hasattr(speed, "line") else f"machine speed: not measured ({speed})"


def pytest_sessionstart(session) -> None:
    if _WORKER:  # the controller measured before starting the workers (its hook runs first): reuse its figure
        _reuse_controllers_speed(session.config)
        return
    if os.environ.get("ASDLIB_NO_SPEED"):  # a session started by a test or a check (gpu_check.py): not measured
        session.config._asdlib_speed = "ASDLIB_NO_SPEED is set"
        return
    try:
        from asdlib.study.speed import machine_speed

        speed = machine_speed()
    except ImportError as e:  # the GPU check runs tests where not every dependency is installed
        session.config._asdlib_speed = f"import failed: {e}"
        return
    session.config._asdlib_speed = speed
    cache = getattr(session.config, "cache", None)  # None under -p no:cacheprovider
    if cache is not None:
        cache.set("asdlib/machine_speed", speed.to_dict())


def _reuse_controllers_speed(config) -> None:
    import torch

    torch.set_num_threads(_SHARE)
    cache = getattr(config, "cache", None)
    figure = cache.get("asdlib/machine_speed", None) if cache is not None else None
    if figure is None:
        config._asdlib_speed = "measured by the controller, not found in the cache"
        return
    from asdlib.study import speed

    result = speed.SpeedResult(**figure)
    speed._MEASURED[:] = [result]  # every study run in this worker writes the controller's figure
    config._asdlib_speed = result


def pytest_itemcollected(item) -> None:
    """Under pytest-xdist (``--dist loadgroup``) the tests that read the shared CI-size run go to one
    worker, so that the run is made once (marked as collected: xdist reads the groups before any
    ``pytest_collection_modifyitems`` of a conftest runs)."""
    if "ci_study" in getattr(item, "fixturenames", ()):
        item.add_marker(pytest.mark.xdist_group("ci_study"))


def pytest_report_header(config) -> str | None:
    return _speed_line(config)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    line = _speed_line(config)
    if line:
        terminalreporter.write_line(f"{line} (asdlib.study.speed; durations above are on this machine)")


TINY_TYPES = {"fan": (("00", "02"), "01"), "ToyCar": (("01", "02"), "05")}  # type: (dev IDs, eval ID)


def _write_wav(path, seconds: float = 1.0, sr: int = 16000, channels: int = 1, freq: float = 440.0,
               noise: float = 0.0, seed: int = 0) -> Path:
    import soundfile as sf  # here, not at the top: the GPU check runs tests on machines without soundfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(round(seconds * sr))) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t)
    if noise:
        x = x + np.random.default_rng(seed).normal(0.0, noise, size=x.shape)
    x = np.clip(x, -1.0, 1.0).astype(np.float32)
    data = x if channels == 1 else np.repeat(x[:, None], channels, axis=1)
    sf.write(path, data, sr, subtype="PCM_16")
    return path


@pytest.fixture
def make_wav() -> Callable[..., Path]:
    return _write_wav


def _tiny_manifest() -> list[dict]:
    rows: list[dict] = []

    def add(dataset: str, t: str, part: str, name: str, mid: str, label: int) -> None:
        folder = "dev_data" if dataset == "dev" else "eval_data"
        rows.append(dict(relpath=f"{folder}/{t}/{part}/{name}", dataset=dataset, part=part,
                         machine_type=t, machine_id=mid, label=label))

    for t, (dev_ids, eval_id) in TINY_TYPES.items():
        for mid in dev_ids:
            for k in range(2):
                add("dev", t, "train", f"normal_id_{mid}_{k:08d}.wav", mid, 0)
            add("dev", t, "test", f"normal_id_{mid}_00000000.wav", mid, 0)
            add("dev", t, "test", f"anomaly_id_{mid}_00000000.wav", mid, 1)
        for k in range(2):
            add("eval", t, "train", f"normal_id_{eval_id}_{k:08d}.wav", eval_id, 0)
        add("eval", t, "test", f"id_{eval_id}_00000000.wav", eval_id, 1)
        add("eval", t, "test", f"id_{eval_id}_00000001.wav", eval_id, 0)
    return rows


@pytest.fixture
def tiny_manifest() -> list[dict]:
    return _tiny_manifest()


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    truth_lines: list[str] = []
    for i, row in enumerate(_tiny_manifest()):
        freq = 200.0 + 50.0 * int(row["machine_id"])
        _write_wav(root / row["relpath"], seconds=0.5, freq=freq, noise=0.2 if row["label"] else 0.0, seed=i)
        if row["dataset"] == "eval" and row["part"] == "test":
            t, name = row["machine_type"], Path(row["relpath"]).name
            if f"{t}" not in truth_lines:
                truth_lines.append(t)
            truth_lines.append(f"{name},{'anomaly' if row['label'] else 'normal'}_{name},{row['label']}")
    (root / "eval_data_list.csv").write_text("\n".join(truth_lines) + "\n", encoding="utf-8")
    return root


@dataclass(frozen=True)
class CIStudy:
    results: Path
    work: Path
    rows: list[dict[str, Any]]
    cfg: Any  # asdlib.study.pipeline.ReproduceConfig


@pytest.fixture(scope="session")
def ci_study(tmp_path_factory) -> CIStudy:
    """The whole sequence at CI size, once per session (see the module doc)."""
    from asdlib.study.pipeline import ReproduceConfig, reproduce

    base = tmp_path_factory.mktemp("ci_study")
    cfg = ReproduceConfig(profile="ci", device="cpu", results_dir=str(base / "res"), work_dir=str(base / "work"))
    rows = reproduce(cfg, progress=False)
    return CIStudy(results=base / "res", work=base / "work", rows=rows, cfg=cfg)
