"""Feature cache: build once, reuse, invalidate on changed files or settings, survive an interrupted build."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

import asdlib.features.cache as cache_mod
import asdlib.features.logmel as features_mod
from asdlib.core.errors import AudioError, CacheError
from asdlib.data.index import index_dataset
from asdlib.features.cache import build_feature_cache, cache_key, default_cache_dir, load_feature_cache
from asdlib.features.logmel import FeatureConfig, LogMel, num_frames

TINY = FeatureConfig(duration_s=0.5)  # the tiny dataset's clips are 0.5 s, not the DCASE2020 10 s


def _build(index: pd.DataFrame, cache_dir: Path, cfg: FeatureConfig = TINY):
    return build_feature_cache(index, cfg, cache_dir=cache_dir, device="cpu", batch_size=8, num_workers=2,
                               progress=False)


def _no_compute(*args, **kwargs):
    raise AssertionError("features were recomputed although the cache should have been reused")


def _complete_folders(cache_dir: Path) -> list[Path]:
    ok = []
    for d in cache_dir.iterdir() if cache_dir.exists() else []:
        try:
            load_feature_cache(d)
            ok.append(d)
        except CacheError:
            pass
    return ok


def test_build_then_reuse(tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = index_dataset(tiny_dataset)
    store = _build(index, tmp_path / "c")
    assert not store.reused and len(store) == len(index) == 24
    assert store.features.dtype == np.float16 and not store.features.flags.writeable
    assert store.shape == (24, 128, num_frames(store.config)) and store.config.duration_s == pytest.approx(0.5)
    assert list(store.index.columns) == list(index.columns)
    assert store.index["relpath"].is_monotonic_increasing
    # row i of the index describes features[i]
    lm = LogMel(store.config)
    for i in (0, 13, 23):
        x = sf.read(store.index["path"][i], dtype="float32")[0]
        ref = lm(torch.from_numpy(x))[0].numpy()
        assert np.abs(store.features[i].astype(np.float32) - ref).max() < 0.07
    meta = json.loads((store.path / "meta.json").read_text())
    assert meta["key"] == store.key == store.path.name and meta["shape"] == list(store.shape)

    monkeypatch.setattr(cache_mod, "compute_features", _no_compute)
    again = _build(index.sample(frac=1.0, random_state=0), tmp_path / "c")  # same files, another order
    assert again.reused and again.path == store.path
    assert json.loads((again.path / "meta.json").read_text())["created_ns"] == meta["created_ns"]
    assert np.array_equal(again.features, store.features)
    loaded = load_feature_cache(store.path)
    assert loaded.index["machine_id"].tolist() == store.index["machine_id"].tolist()  # '00' stays a string
    assert loaded.index["label"].dtype == np.int64


def test_changed_file_added_file_and_setting_rebuild(tiny_dataset: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "c"
    index = index_dataset(tiny_dataset)
    first = _build(index, cache_dir)
    target = Path(index["path"][3])
    old = first.features[first.index.index[first.index["path"] == str(target)][0]].copy()
    sf.write(target, 0.3 * np.sin(np.arange(8000) * 0.9).astype(np.float32), 16000, subtype="PCM_16")
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = _build(index, cache_dir)
    assert not changed.reused and changed.key != first.key
    row = changed.index.index[changed.index["path"] == str(target)][0]
    assert not np.array_equal(changed.features[row], old)

    extra = tiny_dataset / "dev_data/fan/train/normal_id_00_00000002.wav"
    sf.write(extra, 0.2 * np.sin(np.arange(8000) * 0.3).astype(np.float32), 16000, subtype="PCM_16")
    added = _build(index_dataset(tiny_dataset), cache_dir)
    assert not added.reused and len(added) == 25 and added.key not in (first.key, changed.key)

    fewer_mels = _build(index_dataset(tiny_dataset), cache_dir, TINY.replace(n_mels=64))
    assert not fewer_mels.reused and fewer_mels.shape[1] == 64
    assert len(_complete_folders(cache_dir)) == 4


def test_interrupted_build_leaves_nothing_loadable(tiny_dataset: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cache_dir = tmp_path / "c"
    index = index_dataset(tiny_dataset)
    real = features_mod._compute_batch
    calls = {"n": 0}

    def dies_on_third_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(features_mod, "_compute_batch", dies_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        _build(index, cache_dir)
    assert calls["n"] >= 3
    assert _complete_folders(cache_dir) == [] and list(cache_dir.iterdir()) == []
    monkeypatch.setattr(features_mod, "_compute_batch", real)
    store = _build(index, cache_dir)
    assert not store.reused and np.isfinite(store.features.astype(np.float32)).all()


def test_hard_kill_leftovers_are_never_accepted(tiny_dataset: Path, tmp_path: Path) -> None:
    """What a SIGKILL leaves (no meta.json, or a cut features file) is refused and rebuilt."""
    cache_dir = tmp_path / "c"
    index = index_dataset(tiny_dataset)
    key = cache_key(index, TINY)
    final = cache_dir / key
    final.mkdir(parents=True)
    (final / "features.f16").write_bytes(b"\0" * 1000)  # a half-written build renamed by hand, say
    stale_tmp = cache_dir / f".tmp-{key}-999999999-1"
    stale_tmp.mkdir()
    with pytest.raises(CacheError, match="meta.json"):
        load_feature_cache(final)
    store = _build(index, cache_dir)
    assert not store.reused and store.path == final and not stale_tmp.exists()
    # damage the complete cache: a truncated features file is refused, then rebuilt
    with open(final / "features.f16", "r+b") as f:
        f.truncate(100)
    with pytest.raises(CacheError, match="features.f16"):
        load_feature_cache(final)
    assert not _build(index, cache_dir).reused


def test_subset_selections(tiny_dataset: Path, tmp_path: Path) -> None:
    store = _build(index_dataset(tiny_dataset), tmp_path / "c")
    feats, rows = store.subset("machine_type == 'fan' and part == 'test'")
    expected = store.index[(store.index["machine_type"] == "fan") & (store.index["part"] == "test")]
    assert len(rows) == len(expected) == 6 and rows["relpath"].tolist() == expected["relpath"].tolist()
    assert feats.shape == (6, *store.shape[1:]) and np.array_equal(feats, store.features[expected.index])
    mask = (store.index["label"] == 1).to_numpy()
    feats, rows = store.subset(mask)
    assert (rows["label"] == 1).all() and np.array_equal(feats, store.features[mask])
    view, rows = store.subset(np.arange(2, 6))
    assert np.shares_memory(view, store.features) and rows["relpath"].tolist() == store.index["relpath"][2:6].tolist()
    with pytest.raises(ValueError):
        store.subset(np.ones(3, dtype=bool))
    import pickle

    blob = pickle.dumps(store)
    assert len(blob) < store.features.nbytes  # the array is reopened, not copied
    clone = pickle.loads(blob)
    assert isinstance(clone.features, np.memmap) and np.array_equal(clone.features, store.features)


def test_bad_file_and_length_checks(tiny_dataset: Path, tmp_path: Path) -> None:
    index = index_dataset(tiny_dataset)
    bad = Path(index["path"][5])
    bad.write_text("not audio")
    with pytest.raises(AudioError, match=bad.name):
        _build(index, tmp_path / "c")
    assert _complete_folders(tmp_path / "c") == []
    sf.write(bad, 0.3 * np.sin(np.arange(4000) * 0.2).astype(np.float32), 16000, subtype="PCM_16")  # 0.25 s
    with pytest.raises(AudioError, match=bad.name):
        _build(index, tmp_path / "c", FeatureConfig(duration_s=0.5))
    assert _build(index, tmp_path / "c", FeatureConfig(duration_s=0.5, short_clips="wrap")).shape[2] == 16
    store = _build(index, tmp_path / "c", FeatureConfig(duration_s=0.25))  # a length given explicitly
    assert store.config.duration_s == pytest.approx(0.25) and store.shape[2] == 1 + 4000 // 512


def test_default_cache_dir_and_empty_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASDLIB_CACHE_DIR", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    monkeypatch.delenv("ASDLIB_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "asdlib" / "features"
    with pytest.raises(CacheError, match="empty"):
        build_feature_cache(pd.DataFrame(columns=["path", "relpath"]), cache_dir=tmp_path)


def test_features_command_builds_then_reuses(tiny_dataset: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from asdlib.cli.main import main

    argv = ["features", "--root", str(tiny_dataset), "--cache-dir", str(tmp_path / "c"), "--device", "cpu",
            "--types", "fan", "--duration", "0.5", "--no-progress"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert first.startswith("built: 12 clips") and "(12, 128, 16)" in first
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("reused: 12 clips")
    assert main(["features", "--root", str(tmp_path / "nowhere"), "--cache-dir", str(tmp_path / "c")]) == 2


def test_a_new_feature_version_rebuilds(tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same files and settings, another feature computation: the cache must not be reused."""
    index = index_dataset(tiny_dataset)
    cfg = FeatureConfig(duration_s=0.5)
    first = _build(index, tmp_path / "c", cfg)
    assert _build(index, tmp_path / "c", cfg).reused
    monkeypatch.setattr(features_mod, "FEATURE_VERSION", getattr(features_mod, "FEATURE_VERSION", 1) + 1, raising=False)
    assert cache_key(index, cfg) != first.key
    bumped = _build(index, tmp_path / "c", cfg)
    assert not bumped.reused and bumped.key != first.key
    assert json.loads((bumped.path / "meta.json").read_text())["feature_version"] == features_mod.FEATURE_VERSION
    assert bumped.feature_version == features_mod.FEATURE_VERSION


def test_one_short_clip_is_an_error_not_a_shorter_cache(tmp_path: Path, make_wav, capsys: pytest.CaptureFixture[str]) -> None:
    """Four 10-s clips and one 0.3-s clip: the cache must not cut every clip to 0.3 s."""
    from asdlib.cli.main import main

    root = tmp_path / "data"
    train = root / "dev_data" / "fan" / "train"
    for k in range(4):
        make_wav(train / f"normal_id_00_{k:08d}.wav", seconds=10.0, freq=300.0 + 50 * k)
    short = make_wav(train / "normal_id_00_00000004.wav", seconds=0.3)
    make_wav(root / "dev_data" / "ToyCar" / "train" / "normal_id_01_00000000.wav", seconds=11.0)  # keeps its first 10 s
    argv = ["features", "--root", str(root), "--cache-dir", str(tmp_path / "c"), "--device", "cpu", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert short.name in err and "10 s" in err and "--pad" in err
    assert not _complete_folders(tmp_path / "c")
    assert main(argv + ["--pad", "wrap"]) == 0  # padding asked for explicitly
    out = capsys.readouterr().out
    assert "(6, 128, 313)" in out and "10 s per clip" in out and "DCASE2020 clip length" in out
    assert main(argv + ["--duration", "0.3"]) == 0  # a length given explicitly
    assert "(6, 128, 10)" in capsys.readouterr().out

    index = index_dataset(root)
    store = _build(index, tmp_path / "c", FeatureConfig(short_clips="wrap"))
    assert store.reused and store.config.duration_s == 10.0  # the length it used, recorded
    assert store.meta["clip_length"]["seconds"] == 10.0 and "DCASE2020" in store.meta["clip_length"]["source"]
    assert cache_key(index, FeatureConfig(short_clips="wrap")) == cache_key(index, FeatureConfig(duration_s=10.0, short_clips="wrap"))


def test_a_synthetic_roots_length_comes_from_its_manifest(tmp_path: Path, make_wav) -> None:
    from asdlib.data.index import known_clip_seconds
    from asdlib.data.synth import SynthProfile, generate_dataset

    profile = SynthProfile("tiny", clip_seconds=0.5, n_train=1, n_test_normal=1, n_test_anomaly=1)
    root = generate_dataset(tmp_path / "synth", profile, machine_types=["ToyCar", "fan"], progress=False)
    seconds, source = known_clip_seconds(root)
    assert seconds == 0.5 and "synth_manifest.json" in source
    assert known_clip_seconds(tmp_path) == (10.0, known_clip_seconds(tmp_path)[1])  # no manifest: the real data's
    store = _build(index_dataset(root), tmp_path / "c", FeatureConfig())
    assert store.config.duration_s == 0.5 and store.shape[2] == num_frames(FeatureConfig(duration_s=0.5))  # ToyCar's 0.55 s cropped
    short = make_wav(root / "dev_data" / "fan" / "train" / "normal_id_00_00000099.wav", seconds=0.2)
    with pytest.raises(AudioError, match=short.name):
        _build(index_dataset(root), tmp_path / "c", FeatureConfig())


def test_study_profiles_set_the_feature_length(tiny_dataset: Path, tmp_path: Path) -> None:
    from asdlib.study.context import Study
    from asdlib.study.profiles import PROFILES, StudyProfile

    assert PROFILES["ci_real"].features == {"duration_s": 1.5}  # real 10-s clips cropped to the fill clips' 1.5 s
    assert all(p.features.get("short_clips", "error") == "error" for p in PROFILES.values())  # nothing padded
    prof = StudyProfile("t", synth="ci", features={"duration_s": 0.5})
    study = Study(data_root=tiny_dataset, synthetic=False, profile=prof, device="cpu", seed=0,
                  results_dir=tmp_path / "res", work_dir=tmp_path / "work", progress=False)
    assert study.feature_config == FeatureConfig(duration_s=0.5)
    assert study.features.config.duration_s == 0.5 and len(study.features) == 24


def test_cache_records_what_the_features_come_from(tiny_dataset: Path, tmp_path: Path) -> None:
    """Synthetic or real, and the clips' own lengths per type: what `asdlib score` checks new clips against."""
    from asdlib.data.synth import SynthProfile, generate_dataset

    real = _build(index_dataset(tiny_dataset), tmp_path / "c").data_info
    assert real["synthetic"] is False and real["clip_seconds"] == {"ToyCar": [0.5, 0.5], "fan": [0.5, 0.5]}
    assert real["feature_version"] == features_mod.FEATURE_VERSION and real["clip_length"]["seconds"] == 0.5
    profile = SynthProfile("tiny", clip_seconds=0.5, n_train=1, n_test_normal=1, n_test_anomaly=1)
    root = generate_dataset(tmp_path / "synth", profile, machine_types=["ToyCar", "fan"], progress=False)
    synth = _build(index_dataset(root), tmp_path / "c", FeatureConfig()).data_info
    assert synth["synthetic"] is True and synth["synth_profile"] == ["tiny"]
    assert synth["clip_seconds"] == {"ToyCar": [0.55, 0.55], "fan": [0.5, 0.5]}
