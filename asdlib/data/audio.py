"""Read DCASE2020 WAV clips safely: mono float32 at 16 kHz, or an :class:`AudioError` that says why.

Why this module exists: the study's data comes from zip files downloaded over HTTP and from
two source corpora (ToyADMOS, MIMII) with different conventions. What a user actually feeds
a feature extractor includes the original 8-channel MIMII recordings, 44.1/48 kHz re-exports,
interrupted downloads (truncated WAVs), HTML error pages saved as ``.wav``, silent clips from a
dead microphone and float WAVs holding NaN. Each case either has an explicit, documented
handling (a keyword argument) or raises :class:`AudioError` naming the file, the problem and the
fix. Nothing is silently "repaired": a silently resampled, averaged or zero-padded clip would
change the features and hence the anomaly scores without anyone noticing.

Files are read with ``soundfile`` (libsndfile releases the GIL while decoding, so a thread pool
reads in parallel); ``torchaudio.load`` is deliberately not used (it needs torchcodec/FFmpeg).
"""
from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..core.errors import AudioError
from ..core.machines import SAMPLE_RATE

__all__ = ["WavInfo", "wav_info", "read_wav"]

_RIFF_MAGIC = (b"RIFF", b"RIFX", b"RF64")
_UNKNOWN_SIZE = 0xFFFFFFFF  # streamed WAVs write this as the data size
_PCM16_SCALE = np.float32(1.0 / 32768.0)  # what libsndfile divides 16-bit PCM by: exact (a power of two)
_scratch = threading.local()  # per-thread int16 buffer for reading PCM_16 files into ``out``


def _int16_scratch(n: int) -> np.ndarray:
    buf = getattr(_scratch, "buf", None)
    if buf is None or len(buf) < n:
        buf = _scratch.buf = np.empty(n, dtype=np.int16)
    return buf[:n]


@dataclass(frozen=True)
class WavInfo:
    """What the header of an audio file says, read without decoding the samples."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    subtype: str  # e.g. 'PCM_16', 'FLOAT'
    format: str  # e.g. 'WAV'

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _describe_non_audio(head: bytes) -> str:
    """A hint about what a non-audio file probably is (users mostly hit failed downloads)."""
    if head.lstrip().lower().startswith((b"<!doctype", b"<html", b"<?xml")):
        return "it looks like an HTML/XML page (a failed download saved as .wav?)"
    if head.startswith(b"PK"):
        return "it looks like a zip archive (extract it first)"
    try:
        head.decode("utf-8")
        return "it looks like a text file"
    except UnicodeDecodeError:
        return "its first bytes are not a known audio header"


_PCM_SUBTYPES = {(1, 8): "PCM_U8", (1, 16): "PCM_16", (1, 24): "PCM_24", (1, 32): "PCM_32", (3, 32): "FLOAT", (3, 64): "DOUBLE"}


def _check_file(path: Path) -> int:
    """Existence, emptiness and RIFF-level truncation checks; returns the file size (see :func:`_scan_file`)."""
    return _scan_file(path)[0]


def _scan_file(path: Path) -> tuple[int, tuple[int, int, int, str] | None]:
    """Existence, emptiness and RIFF-level truncation checks; returns the file size.

    libsndfile reads a truncated WAV without complaint (it just returns fewer frames), so an
    interrupted download would silently give a short clip. We compare the data chunk's
    declared size with the bytes actually present instead.

    Returns ``(size, header)``; ``header`` = ``(sample_rate, channels, frames, subtype)`` for a
    plain little-endian PCM/float WAV whose 'fmt ' chunk precedes its 'data' chunk, else None
    (then libsndfile reads the header).
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise AudioError(f"{path}: file not found") from None
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not a WAV file")
    if size == 0:
        raise AudioError(f"{path}: empty file (0 bytes); re-download or re-extract it")
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] not in _RIFF_MAGIC:
            return size, None  # not RIFF: let libsndfile decide (FLAC etc.) and explain on failure
        if len(head) < 12 or head[8:12] != b"WAVE":
            raise AudioError(f"{path}: corrupt WAV header (RIFF without a WAVE tag); re-download or re-extract it")
        if head[:4] != b"RIFF":
            return size, None  # RIFX (big-endian) / RF64 (64-bit sizes): leave to libsndfile
        pos = 12
        fmt = None
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"fmt " and chunk_size >= 16:
                raw = f.read(16)
                if len(raw) == 16:  # tag, channels, rate, byte rate, block align, bits
                    fmt = struct.unpack("<HHIIHH", raw)
            if chunk_id == b"data":
                available = size - pos - 8
                if chunk_size != _UNKNOWN_SIZE and chunk_size > available:
                    raise AudioError(
                        f"{path}: truncated WAV: header announces {chunk_size} bytes of audio, "
                        f"file holds {available}; the download or extraction was interrupted, fetch it again"
                    )
                header = None
                if fmt is not None and chunk_size != _UNKNOWN_SIZE:
                    tag, channels, rate, _, align, bits = fmt
                    subtype = _PCM_SUBTYPES.get((tag, bits))
                    if subtype and channels > 0 and rate > 0 and align == channels * bits // 8:
                        header = (rate, channels, chunk_size // align, subtype)
                return size, header
            pos += 8 + chunk_size + (chunk_size & 1)  # chunks are padded to even sizes
    raise AudioError(f"{path}: corrupt or truncated WAV header (no 'data' chunk); re-download or re-extract it")


def _open_error(path: Path, err: Exception) -> AudioError:
    with open(path, "rb") as f:
        head = f.read(64)
    if head[:4] in _RIFF_MAGIC:
        return AudioError(f"{path}: corrupt WAV header ({err}); re-download or re-extract it")
    return AudioError(f"{path}: not an audio file: {_describe_non_audio(head)}")


def wav_info(path: str | os.PathLike) -> WavInfo:
    """Read only the header (cheap: no decoding); same checks for bad files as :func:`read_wav`."""
    path = Path(path)
    _, header = _scan_file(path)
    if header is not None:  # a plain PCM/float WAV: its header was just parsed, no need to open it again
        rate, channels, frames, subtype = header
        return WavInfo(str(path), rate, channels, frames, subtype, "WAV")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise _open_error(path, e) from None
    return WavInfo(str(path), int(info.samplerate), int(info.channels), int(info.frames), info.subtype, info.format)


def _select_channel(x: np.ndarray, channel: int | str | None, path: Path) -> np.ndarray:
    """(frames, channels) -> (frames,). Several channels need an explicit choice (see read_wav)."""
    n_ch = x.shape[1]
    if channel is None:
        if n_ch == 1:
            return x[:, 0]
        raise AudioError(
            f"{path}: has {n_ch} channels, DCASE2020 clips are mono; pass channel=k (0..{n_ch - 1}) to take one "
            f"microphone (DCASE2020 distributes a single MIMII channel) or channel='mean' to average them"
        )
    if channel == "mean":
        return x.mean(axis=1, dtype=np.float64).astype(x.dtype) if n_ch > 1 else x[:, 0]
    if isinstance(channel, str) or not isinstance(channel, (int, np.integer)):
        raise AudioError(f"{path}: channel must be an int, 'mean' or None, got {channel!r}")
    if not 0 <= channel < n_ch:
        raise AudioError(f"{path}: channel={channel} asked for, but the file has {n_ch} channel(s) (0..{n_ch - 1})")
    return x[:, channel]


def read_wav(
    path: str | os.PathLike,
    *,
    sample_rate: int = SAMPLE_RATE,
    channel: int | str | None = None,
    resample: bool = False,
    allow_silent: bool = False,
    dtype: type | np.dtype = np.float32,
    max_samples: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Read one clip as a mono 1-D array at ``sample_rate``.

    Handling of what users actually feed it:

    - 16-bit/24-bit/32-bit PCM is scaled to [-1, 1) by libsndfile. Float WAVs are passed
      through unscaled (values beyond +-1 are kept: clipping would distort the features).
    - Another sample rate: :class:`AudioError`, unless ``resample=True``, which resamples
      with ``torchaudio.functional.resample`` (band-limited sinc, torchaudio's defaults).
    - Several channels (the original MIMII files have 8): :class:`AudioError` unless
      ``channel=k`` (take microphone k) or ``channel='mean'`` (average all channels).
    - Empty file, truncated WAV (header promises more bytes than the file has), corrupt
      header, a file that is not audio (text/HTML renamed .wav), zero frames: :class:`AudioError`.
    - All-zero audio (a dead recorder): :class:`AudioError` unless ``allow_silent=True``.
      A silent clip gives -156 dB everywhere and would be scored as wildly anomalous.
    - NaN or inf samples (only possible in float WAVs): always :class:`AudioError`.

    Every message starts with the file path.

    For bulk reading (the feature cache): ``max_samples`` keeps only the first samples
    (a crop; for a mono file at the right rate the rest is not even decoded), and ``out``, a
    1-D float32 array, receives the samples without a fresh allocation per clip. The
    return value is then a view ``out[:n]``, ``n`` being the number of samples read.
    """
    path = Path(path)
    _check_file(path)
    if out is not None:
        if out.ndim != 1 or out.dtype != np.float32:
            raise ValueError(f"out must be a 1-D float32 array, got {out.ndim}-D {out.dtype}")
        max_samples = len(out) if max_samples is None else min(max_samples, len(out))
    try:
        with sf.SoundFile(str(path)) as f:
            sr, n_ch, n_frames = int(f.samplerate), int(f.channels), int(f.frames)
            if sr != sample_rate and not resample:
                raise AudioError(
                    f"{path}: sample rate is {sr} Hz, expected {sample_rate} Hz; convert the file, "
                    f"or pass resample=True to resample it on reading"
                )
            fast = n_ch == 1 and sr == sample_rate and max_samples is not None
            in_out = fast and out is not None
            integer = False
            if in_out and f.subtype == "PCM_16":
                # 16-bit PCM (all DCASE clips): read the raw int16 samples and scale them in one vectorised
                # multiply; the same float32 values as libsndfile's own conversion (x / 32768, exact), cheaper.
                k = min(max_samples, n_frames)
                raw = f.read(out=_int16_scratch(k))
                x = np.multiply(raw, _PCM16_SCALE, out=out[: len(raw)])
                integer = True
            elif in_out:
                x = f.read(out=out[: min(max_samples, n_frames)])  # decode straight into the caller's buffer
            elif fast:
                x = f.read(frames=min(max_samples, n_frames), dtype="float32")
            else:
                x = f.read(dtype="float32", always_2d=True)  # (frames, channels)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise _open_error(path, e) from None
    if x.shape[0] == 0 or n_frames == 0:
        raise AudioError(f"{path}: the WAV holds no samples (0 frames); re-download or re-extract it")
    if x.ndim == 2:
        x = _select_channel(x, channel, path)
    if not integer and not np.isfinite(x).all():  # integer PCM is finite by construction
        bad = int((~np.isfinite(x)).sum())
        raise AudioError(f"{path}: {bad} sample(s) are NaN or inf; the file is damaged, regenerate or re-download it")
    if not allow_silent and not (raw if integer else x).any():
        raise AudioError(
            f"{path}: all samples are zero (silent recording); check the recording, or pass allow_silent=True to use it"
        )
    if sr != sample_rate:
        import torch
        import torchaudio.functional as AF

        x = AF.resample(torch.from_numpy(np.ascontiguousarray(x)), sr, sample_rate).numpy()
    if max_samples is not None:
        x = x[:max_samples]
    if out is not None:
        if not in_out:  # slow path (several channels, resampling): copy in
            out[: len(x)] = x
        return out[: len(x)]
    return np.ascontiguousarray(x, dtype=dtype)  # a channel slice of a multichannel read is strided
