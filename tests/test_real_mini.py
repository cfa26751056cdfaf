"""The 93 real DCASE2020 dev-test clips of ../shared/data/dcase2020-mini: read, index, features.

Skipped when that folder is absent (it is not part of the repository). The shared folder is
read-only, so the cache goes to a temporary folder.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asdlib.data.audio import read_wav, wav_info
from asdlib.data.index import index_dataset
from asdlib.features.cache import build_feature_cache
from asdlib.features.logmel import FeatureConfig, num_frames

MINI = Path(__file__).resolve().parents[2] / "shared/data/dcase2020-mini"
pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(not (MINI / "dev_data").is_dir(), reason=f"real mini dataset not found at {MINI}"),
]

# (normal, anomaly) per type, from the mini dataset's README
EXPECTED = {"ToyCar": (8, 8), "ToyConveyor": (6, 6), "fan": (9, 8), "pump": (10, 6), "slider": (8, 8), "valve": (8, 8)}


def test_real_clips_read_as_expected() -> None:
    index = index_dataset(MINI, datasets=("dev",), parts=("test",))
    for machine_type, seconds in (("ToyCar", 11.0), ("fan", 10.0)):
        path = index.loc[index["machine_type"] == machine_type, "path"].iloc[0]
        info = wav_info(path)
        assert (info.sample_rate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.duration_s == pytest.approx(seconds)
        x = read_wav(path)
        assert x.shape == (int(seconds * 16000),) and np.isfinite(x).all() and 0 < np.abs(x).max() <= 1.0


def test_real_mini_features(tmp_path: Path) -> None:
    index = index_dataset(MINI, datasets=("dev",), parts=("test",))
    store = build_feature_cache(index, FeatureConfig(), cache_dir=tmp_path, device="cpu", progress=False)
    assert len(store) == 93
    counts = store.index.groupby(["machine_type", "label"]).size()
    for machine_type, (normal, anomaly) in EXPECTED.items():
        assert counts[(machine_type, 0)] == normal and counts[(machine_type, 1)] == anomaly
    # ToyCar's 11-s clips are cropped to the common 10 s
    assert store.config.duration_s == pytest.approx(10.0)
    assert store.shape == (93, 128, num_frames(store.config, 160000)) == (93, 128, 313)
    feats = store.features.astype(np.float32)
    assert np.isfinite(feats).all()
    assert -160.0 < feats.min() and feats.max() < 100.0  # dB: above the eps floor, far inside float16
    per_clip_range = feats.max(axis=(1, 2)) - feats.min(axis=(1, 2))
    assert (per_clip_range > 20.0).all()  # real recordings, not silence or a constant
    again = build_feature_cache(index, FeatureConfig(), cache_dir=tmp_path, device="cpu", progress=False)
    assert again.reused and again.key == store.key
