"""read_wav / wav_info: every bad input a user really feeds it gives an AudioError naming the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asdlib.core.errors import AudioError
from asdlib.data.audio import read_wav, wav_info


def _tone(n: int, freq: float, sr: int = 16000, amp: float = 0.3) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)).astype(np.float32)


def _valid(tmp_path: Path, name: str = "ok.wav", n: int = 8000) -> Path:
    path = tmp_path / name
    sf.write(path, _tone(n, 440.0), 16000, subtype="PCM_16")
    return path


def test_reads_mono_pcm16_as_float32(tmp_path: Path) -> None:
    x = _tone(8000, 440.0)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="PCM_16")
    y = read_wav(tmp_path / "a.wav")
    assert y.dtype == np.float32 and y.shape == (8000,)
    assert np.abs(y).max() <= 1.0
    assert np.abs(y - x).max() < 1e-4  # 16-bit quantisation only


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, a word the message must contain)."""
    out: dict[str, tuple[Path, str]] = {}
    p = tmp_path / "eight_channels.wav"
    sf.write(p, np.tile(_tone(4000, 440.0)[:, None], (1, 8)), 16000, subtype="PCM_16")
    out["multichannel"] = (p, "channel")
    p = tmp_path / "rate44k.wav"
    sf.write(p, _tone(4410, 440.0, sr=44100), 44100, subtype="PCM_16")
    out["rate"] = (p, "44100")
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    out["empty"] = (p, "empty")
    good = _valid(tmp_path, "source.wav").read_bytes()
    p = tmp_path / "truncated.wav"
    p.write_bytes(good[: len(good) // 2])
    out["truncated"] = (p, "truncated")
    p = tmp_path / "header_only.wav"
    p.write_bytes(good[:30])
    out["header_cut"] = (p, "header")
    p = tmp_path / "bad_tag.wav"
    p.write_bytes(good[:8] + b"XXXX" + good[12:])
    out["corrupt_header"] = (p, "corrupt")
    p = tmp_path / "random.wav"
    p.write_bytes(np.random.default_rng(0).bytes(4096))
    out["random_bytes"] = (p, "not an audio file")
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio\n" * 20)
    out["text"] = (p, "text")
    p = tmp_path / "page.wav"
    p.write_text("<!DOCTYPE html><html><body>404</body></html>")
    out["html"] = (p, "HTML")
    p = tmp_path / "silent.wav"
    sf.write(p, np.zeros(8000, np.float32), 16000, subtype="PCM_16")
    out["silent"] = (p, "zero")
    p = tmp_path / "nan.wav"
    x = _tone(8000, 440.0)
    x[100] = np.nan
    sf.write(p, x, 16000, subtype="FLOAT")
    out["nan"] = (p, "NaN")
    p = tmp_path / "missing.wav"
    out["missing"] = (p, "not found")
    return out


@pytest.mark.parametrize(
    "case",
    ["multichannel", "rate", "empty", "truncated", "header_cut", "corrupt_header", "random_bytes", "text", "html",
     "silent", "nan", "missing"],
)
def test_bad_input_raises_audio_error_naming_the_file(tmp_path: Path, case: str) -> None:
    path, word = _bad_files(tmp_path)[case]
    with pytest.raises(AudioError) as err:
        read_wav(path)
    message = str(err.value)
    assert path.name in message
    assert word.lower() in message.lower()


@pytest.mark.parametrize("case", ["empty", "truncated", "random_bytes", "text", "missing"])
def test_wav_info_rejects_the_same_files(tmp_path: Path, case: str) -> None:
    path, _ = _bad_files(tmp_path)[case]
    with pytest.raises(AudioError, match=path.name):
        wav_info(path)


def test_wav_info_reads_the_header(tmp_path: Path) -> None:
    p = tmp_path / "st.wav"
    sf.write(p, np.zeros((22050, 2), np.float32) + 0.1, 22050, subtype="PCM_24")
    info = wav_info(p)
    assert (info.sample_rate, info.channels, info.frames, info.subtype) == (22050, 2, 22050, "PCM_24")
    assert info.duration_s == pytest.approx(1.0)


def test_multichannel_explicit_channel_and_mean(tmp_path: Path) -> None:
    n = 4000
    data = np.stack([_tone(n, 100.0 * (k + 1), amp=0.05 * (k + 1)) for k in range(8)], axis=1)  # (n, 8)
    p = tmp_path / "mimii8.wav"
    sf.write(p, data, 16000, subtype="FLOAT")
    for k in (0, 3, 7):
        np.testing.assert_allclose(read_wav(p, channel=k), data[:, k], atol=1e-7)
    np.testing.assert_allclose(read_wav(p, channel="mean"), data.mean(axis=1), atol=1e-6)
    with pytest.raises(AudioError, match="mimii8.wav.*8 channel"):
        read_wav(p, channel=8)
    with pytest.raises(AudioError, match="mimii8.wav"):
        read_wav(p, channel="left")


def test_resample_gives_the_right_length_and_pitch(tmp_path: Path) -> None:
    p = tmp_path / "cd.wav"
    sf.write(p, _tone(44100, 1000.0, sr=44100), 44100, subtype="PCM_16")  # 1 s at 44.1 kHz
    y = read_wav(p, resample=True)
    assert y.dtype == np.float32 and abs(len(y) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(y[:16000]))
    assert abs(np.argmax(spectrum) - 1000) <= 1  # 1-Hz bins: the tone stays at 1 kHz


def test_allow_silent(tmp_path: Path) -> None:
    p = tmp_path / "quiet.wav"
    sf.write(p, np.zeros(800, np.float32), 16000, subtype="PCM_16")
    assert not read_wav(p, allow_silent=True).any()


def test_max_samples_and_out_buffer(tmp_path: Path) -> None:
    p = _valid(tmp_path, n=8000)
    full = read_wav(p)
    assert np.array_equal(read_wav(p, max_samples=1000), full[:1000])
    batch = np.zeros((2, 6000), np.float32)
    y = read_wav(p, out=batch[1])
    assert np.shares_memory(y, batch) and len(y) == 6000
    assert np.array_equal(batch[1], full[:6000]) and not batch[0].any()
    longer = np.zeros(10000, np.float32)
    assert len(read_wav(p, out=longer)) == 8000  # a short file fills only the start
