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
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

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
