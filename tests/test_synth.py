"""The synthetic dataset: official layout and format, ground truth, determinism, idempotency,
and a difficulty check (a simple detector is better than chance but not perfect)."""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdlib.core import machines as M
from asdlib.core.errors import AsdlibError, ConfigError
from asdlib.data import synth
from asdlib.data.synth import PROFILES, ClipJob, SynthProfile, clip_rng, generate_dataset, render_clip

TINY = SynthProfile("tiny", clip_seconds=0.25, n_train=2, n_test_normal=2, n_test_anomaly=1)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("synth") / "data", TINY, seed=3, progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_profiles_and_lengths():
    smoke = PROFILES["smoke"]
    assert smoke.n_samples("fan") == 32000 and smoke.n_samples("ToyCar") == 35200
    assert PROFILES["full"].n_samples("ToyCar") == 176000 and PROFILES["full"].n_samples("valve") == 160000
    with pytest.raises(dataclasses.FrozenInstanceError):
        smoke.n_train = 3  # type: ignore[misc]


def test_layout_names_and_counts(tiny_root: Path):
    for t in M.MACHINE_TYPES:
        for dataset in M.DATASETS:
            base = tiny_root / M.DATASET_DIRS[dataset] / t
            train = sorted(p.name for p in (base / "train").iterdir())
            test = sorted(p.name for p in (base / "test").iterdir())
            ids = M.machine_ids(t, dataset)
            assert len(train) == TINY.n_train * len(ids)
            assert len(test) == (TINY.n_test_normal + TINY.n_test_anomaly) * len(ids)
            matches = [M.LABELLED_NAME.match(n) for n in train]
            assert all(m and m["label"] == "normal" for m in matches)
            assert {m["id"] for m in matches} == set(ids)
            if dataset == "dev":
                tm = [M.LABELLED_NAME.match(n) for n in test]
                assert all(tm) and {m["id"] for m in tm} == set(ids)
                for mid in ids:  # numbering starts at 00000000 per (ID, label), as in the real data
                    for label, count in (("normal", TINY.n_test_normal), ("anomaly", TINY.n_test_anomaly)):
                        nums = sorted(int(m["num"]) for m in tm if m["id"] == mid and m["label"] == label)
                        assert nums == list(range(count))
            else:
                em = [M.EVAL_TEST_NAME.match(n) for n in test]
                assert all(em) and {m["id"] for m in em} == set(ids)
                for mid in ids:
                    nums = sorted(int(m["num"]) for m in em if m["id"] == mid)
                    assert nums == list(range(TINY.n_test_normal + TINY.n_test_anomaly))


def test_wav_format_and_headroom(tiny_root: Path):
    wavs = sorted(tiny_root.rglob("*.wav"))
    assert len(wavs) == 41 * (TINY.n_train + TINY.n_test_normal + TINY.n_test_anomaly)
    for p in wavs:
        info = sf.info(p)
        t = p.parent.parent.name
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
        assert info.frames == TINY.n_samples(t)
        x, _ = sf.read(p, dtype="int16")
        peak = int(np.max(np.abs(x.astype(np.int32))))
        assert 300 < peak < 32000, f"{p}: peak {peak}"  # audible, never clipped


def test_ground_truth_matches_eval_test_files(tiny_root: Path):
    rows = list(csv.reader((tiny_root / M.GROUND_TRUTH_FILE).read_text().splitlines()))
    by_type: dict[str, list[list[str]]] = {}
    for row in rows:
        if len(row) == 1:
            current = by_type.setdefault(row[0], [])
        else:
            current.append(row)
    assert list(by_type) == list(M.MACHINE_TYPES)
    for t, entries in by_type.items():
        on_disk = {p.name for p in (tiny_root / "eval_data" / t / "test").iterdir()}
        assert {e[0] for e in entries} == on_disk
        for name, original, label in entries:
            m, o = M.EVAL_TEST_NAME.match(name), M.LABELLED_NAME.match(original)
            assert m and o and m["id"] == o["id"] and label == str(int(o["label"] == "anomaly"))
        assert sum(e[2] == "1" for e in entries) == TINY.n_test_anomaly * len(M.EVAL_IDS[t])
    # The hidden label is the true one: the eval file is the clip rendered as its original name.
    name, original, _ = by_type["valve"][0]
    o = M.LABELLED_NAME.match(original)
    job = ClipJob("valve", o["id"], "test", o["label"], int(o["num"]), "")
    expect = np.round(render_clip("valve", o["id"], o["label"] == "anomaly", TINY.n_samples("valve"),
                                  clip_rng(3, job)) * 32767).astype(np.int16)
    got, _ = sf.read(tiny_root / "eval_data" / "valve" / "test" / name, dtype="int16")
    np.testing.assert_array_equal(got, expect)


def test_note_and_manifest(tiny_root: Path):
    note = (tiny_root / "SYNTHETIC.md").read_text()
    assert "not the DCASE2020" in note and "seed: 3" in note and "tiny" in note
    man = json.loads((tiny_root / "synth_manifest.json").read_text())
    assert man["seed"] == 3 and man["profile"]["name"] == "tiny" and man["types"] == list(M.MACHINE_TYPES)
    assert man["files"] == len(list(tiny_root.rglob("*.wav")))
    assert man["counts"]["ToyConveyor"]["eval_test"] == 3 * (TINY.n_test_normal + TINY.n_test_anomaly)


def test_deterministic_per_seed_and_order_free(tmp_path: Path):
    a = _files(generate_dataset(tmp_path / "a", TINY, seed=1, machine_types=["valve", "fan"], progress=False))
    b = _files(generate_dataset(tmp_path / "b", TINY, seed=1, machine_types=["fan", "valve"], progress=False,
                                workers=2))
    c = _files(generate_dataset(tmp_path / "c", TINY, seed=2, machine_types=["valve", "fan"], progress=False))
    assert a == b  # byte-identical, whatever the order or number of processes
    assert a.keys() == c.keys()
    wav = [k for k in a if k.endswith(".wav")]
    assert sum(a[k] != c[k] for k in wav) == len(wav)


def test_idempotent_and_overwrite(tmp_path: Path):
    root = generate_dataset(tmp_path / "d", TINY, seed=0, machine_types=["slider"], progress=False)
    stamp = (root / "synth_manifest.json").stat().st_mtime_ns
    assert generate_dataset(root, TINY, seed=0, machine_types=["slider"], progress=False) == root
    assert (root / "synth_manifest.json").stat().st_mtime_ns == stamp  # nothing redone
    with pytest.raises(AsdlibError, match="overwrite"):
        generate_dataset(root, TINY, seed=5, machine_types=["slider"], progress=False)
    generate_dataset(root, TINY, seed=5, machine_types=["slider"], progress=False, overwrite=True)
    assert json.loads((root / "synth_manifest.json").read_text())["seed"] == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(AsdlibError):
        generate_dataset(other, TINY, machine_types=["slider"], progress=False)
    assert (other / "notes.txt").read_text() == "mine"
    with pytest.raises(ConfigError):
        generate_dataset(tmp_path / "e", "huge", progress=False)
    with pytest.raises(ConfigError, match="drill"):
        generate_dataset(tmp_path / "e", TINY, machine_types=["drill"], progress=False)


def test_cli(tmp_path: Path, monkeypatch, capsys):
    from asdlib.cli.main import main

    monkeypatch.setitem(synth.PROFILES, "smoke", TINY)
    assert main(["synth", "--root", str(tmp_path / "s"), "--types", "pump", "--seed", "4", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "synthetic" in out.lower() and str(tmp_path / "s") in out
    assert len(list((tmp_path / "s" / "dev_data" / "pump" / "train").iterdir())) == 4 * TINY.n_train
    assert main(["synth", "--root", str(tmp_path / "s"), "--types", "pump", "--seed", "9", "--quiet"]) == 2


# --------------------------------------------------------------------------- difficulty
def mean_log_mel(x: np.ndarray, mel: np.ndarray) -> np.ndarray:
    """Clip-mean log-mel spectrum (n_fft 1024, hop 512, 128 bins), with NumPy's FFT."""
    frames = np.lib.stride_tricks.sliding_window_view(x, 1024)[::512] * np.hanning(1024)
    return np.log10((np.abs(np.fft.rfft(frames, axis=1)) ** 2) @ mel.T + 1e-10).mean(0)


def detector_auc(machine_type: str, profile: SynthProfile, seed: int = 0, severity: float = 1.0,
                 ids: tuple[str, ...] | None = None) -> tuple[list[float], float]:
    """Per dev ID: AUC of the z-scored distance to the ID's normal train mean; and the
    nearest-centroid ID accuracy of normal test clips among the type's dev IDs."""
    librosa = pytest.importorskip("librosa")
    from sklearn.metrics import roc_auc_score

    mel = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=128)
    n = profile.n_samples(machine_type)

    def feats(mid: str, part: str, label: str, count: int) -> np.ndarray:
        return np.array([mean_log_mel(render_clip(machine_type, mid, label == "anomaly", n,
                                                  clip_rng(seed, ClipJob(machine_type, mid, part, label, i, "")), severity), mel)
                         for i in range(count)])

    aucs, centroids, normals = [], [], []
    for mid in ids or M.machine_ids(machine_type, "dev"):
        train = feats(mid, "train", "normal", profile.n_train)
        normal = feats(mid, "test", "normal", profile.n_test_normal)
        anomaly = feats(mid, "test", "anomaly", profile.n_test_anomaly)
        mu, sd = train.mean(0), train.std(0) + 1e-3
        score = lambda f: np.mean(((f - mu) / sd) ** 2, axis=1)  # noqa: E731
        y = np.r_[np.zeros(len(normal)), np.ones(len(anomaly))]
        aucs.append(float(roc_auc_score(y, np.r_[score(normal), score(anomaly)])))
        centroids.append(mu)
        normals.append(normal)
    c = np.array(centroids)
    hits = [np.argmin(((c - f) ** 2).sum(1)) == k for k, fs in enumerate(normals) for f in fs]
    return aucs, float(np.mean(hits))


@pytest.mark.parametrize("machine_type", ["pump", "valve"])
def test_difficulty_neither_trivial_nor_hopeless(machine_type: str):
    # Smoke clip length and train count; more test clips than smoke so that the AUC is stable.
    profile = dataclasses.replace(PROFILES["smoke"], n_test_normal=10, n_test_anomaly=10)
    aucs, id_accuracy = detector_auc(machine_type, profile)
    assert 0.6 < np.mean(aucs) < 0.99, aucs
    assert id_accuracy > 0.8  # chance: 0.25


def test_severity_scales_the_faults():
    profile = dataclasses.replace(PROFILES["smoke"], clip_seconds=1.0, n_train=10, n_test_normal=8, n_test_anomaly=8)
    at0, _ = detector_auc("slider", profile, severity=0.0, ids=("00", "02"))
    at3, _ = detector_auc("slider", profile, severity=3.0, ids=("00", "02"))
    assert abs(np.mean(at0) - 0.5) < 0.15  # no fault: anomalies are just more normal clips
    assert np.mean(at3) > np.mean(at0) + 0.2
