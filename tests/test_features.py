"""Log-mel features: shapes, the mel scale, equivalence with librosa (the DCASE baseline), length policy."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asdlib.core.errors import AudioError, ConfigError
from asdlib.features.logmel import FeatureConfig, LogMel, compute_features, fit_length, mel_frequencies, num_frames

SR = 16000


def _tone(freq: float, n: int = SR) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * freq * np.arange(n) / SR)).astype(np.float32)


@pytest.mark.parametrize("n_samples", [8000, 16000, 160000, 176000, 16001])
def test_shape_matches_num_frames(n_samples: int) -> None:
    cfg = FeatureConfig()
    wave = torch.randn(2, n_samples) * 0.1
    out = LogMel(cfg)(wave)
    assert out.shape == (2, 128, num_frames(cfg, n_samples)) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_num_frames_values() -> None:
    cfg = FeatureConfig()
    assert num_frames(cfg, 160000) == 313  # 10-s clip: 1 + 160000 // 512
    assert num_frames(cfg.replace(duration_s=11.0)) == 1 + 176000 // 512
    nc = cfg.replace(center=False)
    assert num_frames(nc, 160000) == LogMel(nc)(torch.randn(1, 160000)).shape[-1]
    with pytest.raises(ConfigError):
        num_frames(cfg)  # no length known


@pytest.mark.parametrize("freq", [250.0, 1000.0, 3000.0])
def test_tone_peaks_in_the_nearest_mel_bin(freq: float) -> None:
    cfg = FeatureConfig()
    spec = LogMel(cfg)(torch.from_numpy(_tone(freq)))[0]  # (n_mels, T)
    centres = mel_frequencies(cfg)
    assert centres.shape == (128,) and np.all(np.diff(centres) > 0)
    peak = int(spec[:, 5:-5].mean(dim=1).argmax())
    assert peak == int(np.argmin(np.abs(centres - freq)))


def test_mel_centres_agree_with_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    for htk in (False, True):
        cfg = FeatureConfig(mel_scale="htk" if htk else "slaney")
        ref = librosa.mel_frequencies(n_mels=130, fmin=0.0, fmax=8000.0, htk=htk)[1:-1]
        np.testing.assert_allclose(mel_frequencies(cfg), ref, rtol=1e-9, atol=1e-6)


def test_matches_librosa_the_dcase_baseline_way() -> None:
    """Reference equivalence: librosa.feature.melspectrogram (slaney scale and norm) + 10*log10(mel + eps)."""
    librosa = pytest.importorskip("librosa")
    x = (np.random.default_rng(0).standard_normal(2 * SR) * 0.1).astype(np.float32)
    x += _tone(440.0, 2 * SR)
    mel = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=1024, hop_length=512, n_mels=128, power=2.0,
                                         center=True, pad_mode="reflect")
    ref = 20.0 / 2.0 * np.log10(mel + sys.float_info.epsilon)
    ours = LogMel(FeatureConfig())(torch.from_numpy(x))[0].numpy()
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 0.01  # dB


def test_fast_power_path_equals_torchaudio_melspectrogram() -> None:
    lm = LogMel(FeatureConfig())
    x = torch.randn(3, 20000) * 0.2
    direct = 10.0 * torch.log10(lm.mel(x) + lm.cfg.eps)  # torchaudio's own |X|^2 path
    assert (lm(x) - direct).abs().max() < 1e-3


def test_batch_equals_one_by_one() -> None:
    lm = LogMel(FeatureConfig())
    x = torch.randn(4, 24000) * 0.1
    batch = lm(x)
    single = torch.stack([lm(x[i])[0] for i in range(4)])
    assert torch.allclose(batch, single, atol=1e-4)


def test_silence_floor_and_top_db() -> None:
    out = LogMel(FeatureConfig())(torch.zeros(1, 4000))
    assert torch.allclose(out, torch.full_like(out, 10 * np.log10(sys.float_info.epsilon)), atol=1e-3)
    x = torch.from_numpy(_tone(1000.0))
    clamped = LogMel(FeatureConfig(top_db=60.0))(x)
    assert clamped.max() - clamped.min() <= 60.0 + 1e-3
    assert LogMel(FeatureConfig())(x).max() - LogMel(FeatureConfig())(x).min() > 60.0


def test_config_roundtrip_key_and_validation() -> None:
    cfg = FeatureConfig()
    assert cfg.mel_scale == "slaney" and cfg.norm == "slaney"  # librosa's defaults, as in the DCASE baseline
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.key() == FeatureConfig().key() and len(cfg.key()) == 16
    assert cfg.key() != cfg.replace(n_mels=64).key() != cfg.replace(duration_s=10.0).key()
    with pytest.raises(ConfigError, match="unknown"):
        FeatureConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    for bad in (dict(win_length=2048), dict(f_max=9000.0), dict(mel_scale="bark"), dict(short_clips="loop"),
                dict(duration_s=0.0), dict(norm="l2")):
        with pytest.raises(ConfigError):
            FeatureConfig(**bad)


def test_fit_length_policies() -> None:
    x = np.arange(5, dtype=np.float32) + 1
    assert np.array_equal(fit_length(x, 3), [1, 2, 3])
    assert np.array_equal(fit_length(x, 12, "wrap"), [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2])
    assert np.array_equal(fit_length(x, 7, "zeros"), [1, 2, 3, 4, 5, 0, 0])
    with pytest.raises(AudioError, match="short.wav.*short_clips"):
        fit_length(x, 7, "error", path="short.wav")


def test_compute_features_matches_logmel_and_crops(tmp_path: Path) -> None:
    paths = []
    for k, (freq, n) in enumerate([(300.0, 9000), (900.0, 8000), (2000.0, 11000), (500.0, 8000), (700.0, 8500)]):
        paths.append(str(tmp_path / f"c{k}.wav"))
        sf.write(paths[-1], _tone(freq, n), SR, subtype="PCM_16")
    cfg = FeatureConfig(duration_s=0.5)  # 8000 samples: the longer clips keep their start
    feats = compute_features(paths, cfg, progress=False, num_workers=2)
    assert feats.shape == (5, 128, num_frames(cfg)) and feats.dtype == np.float16
    lm = LogMel(cfg)
    for k, p in enumerate(paths):
        ref = lm(torch.from_numpy(sf.read(p, dtype="float32")[0][:8000]))[0].numpy()
        assert np.abs(feats[k].astype(np.float32) - ref).max() < 0.07  # float16 step at |x| < 128 is 1/16
    with pytest.raises(AudioError, match="c1.wav"):
        compute_features(paths, FeatureConfig(duration_s=0.55), progress=False)
    wrapped = compute_features(paths, FeatureConfig(duration_s=0.55, short_clips="wrap"), progress=False)
    assert np.isfinite(wrapped.astype(np.float32)).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    lm = LogMel(FeatureConfig())
    x = torch.randn(2, 32000) * 0.1
    assert torch.allclose(lm.to("cuda")(x.cuda()).cpu(), LogMel(FeatureConfig())(x), atol=1e-2)
