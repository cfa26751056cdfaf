"""Log-mel spectrogram features: one frozen config, one torch module, one length policy.

Settings (the study's input): 16 kHz, n_fft = win_length = 1024, hop 512, 128 mel bins,
power spectrum, converted to dB as the DCASE2020 baseline does
(``20 / power * log10(mel + eps)`` with ``eps`` = the float64 machine epsilon; for power 2
that is ``10 * log10(mel + eps)``; silence floors at -156.5 dB).

Mel scale: the DCASE2020 baseline calls ``librosa.feature.melspectrogram`` with librosa's
defaults, i.e. the **Slaney** mel scale (``htk=False``) and **Slaney** area normalisation
(``norm='slaney'``). ``torchaudio.transforms.MelSpectrogram`` defaults to ``mel_scale='htk'``
and ``norm=None``, so both are set explicitly here (``mel_scale='slaney', norm='slaney'``),
which reproduces librosa's filterbank; ``tests/test_features.py`` checks the equivalence.
``center=True`` with ``pad_mode='reflect'`` matches librosa up to 0.9 (what the 2020
baseline ran on; librosa >= 0.10 pads with zeros), and the periodic Hann window is what both use.

Length policy (ToyCar clips are 11 s, every other type 10 s): all clips in one feature
cache get the same length so that they stack into one array. ``duration_s=None`` means
"the dataset's known clip length" (:func:`asdlib.data.index.known_clip_seconds`, resolved by
:func:`asdlib.features.cache.build_feature_cache`): 10 s for the real data, i.e. ToyCar keeps
its **first 10 s**; a synthetic dataset's own (shorter) length, read from its manifest. It is
never taken from the clips found, so one short clip cannot shorten every clip. A length given
explicitly (``duration_s``) wins. Cropping keeps the start of the clip, so every clip sees the
same time origin. A clip *shorter* than the target is an error naming the file, unless
``short_clips`` explicitly allows padding: ``'wrap'`` (repeat the clip from its start; keeps
the stationary machine sound's spectrum, and is the recommended choice) or ``'zeros'`` (pads
with digital silence, which shows up as -156 dB frames and looks anomalous). The cache records
the length it used (``duration_s`` of its config) and where it came from.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..core.errors import AudioError, CacheError, ConfigError
from ..core.machines import SAMPLE_RATE
from ..data.audio import read_wav
from . import fastmel

__all__ = ["FEATURE_VERSION", "FeatureConfig", "LogMel", "num_frames", "mel_frequencies", "fit_length", "compute_features"]

# The version of the feature *computation*: part of every feature cache key (and so of every model
# key built on a cache), because the settings and the files' sizes and times alone cannot see a
# change in the code. Rule: bump it with every change that can change a feature value for the same
# settings and files: the log-mel here or in fastmel.py, the length policy (fit_length), WAV
# decoding, channel mixing or resampling in asdlib.data.audio. Do not bump it for changes that
# keep the numbers (speed, memory, messages); tests/test_features.py checks those against librosa.
FEATURE_VERSION = 1

CPU_CHUNK = 4  # clips per worker job on CPU (read, then log-mel clip by clip in reused scratch tensors)

SHORT_CLIP_POLICIES = ("error", "wrap", "zeros")


@dataclass(frozen=True)
class FeatureConfig:
    """Every setting that changes the feature values; its :meth:`key` names a feature cache."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 512
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float = 8000.0
    power: float = 2.0
    center: bool = True
    pad_mode: str = "reflect"
    mel_scale: str = "slaney"  # librosa's default, hence the DCASE2020 baseline's
    norm: str | None = "slaney"  # likewise
    eps: float = sys.float_info.epsilon  # the baseline's log floor
    top_db: float | None = None  # None: no dynamic-range clamp (the baseline has none)
    duration_s: float | None = None  # None: the dataset's known clip length (10 s for the real data)
    short_clips: str = "error"  # 'error' | 'wrap' | 'zeros' for clips shorter than duration_s
    channel: int | str | None = None  # passed to read_wav for multichannel files
    resample: bool = False  # passed to read_wav for files at another sample rate

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft:
            raise ConfigError(f"win_length ({self.win_length}) must not exceed n_fft ({self.n_fft})")
        if self.hop_length <= 0 or self.n_mels <= 0 or self.n_fft <= 0:
            raise ConfigError("n_fft, hop_length and n_mels must be positive")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ConfigError(f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={self.f_min}, f_max={self.f_max}")
        if self.mel_scale not in ("slaney", "htk"):
            raise ConfigError(f"mel_scale must be 'slaney' or 'htk', got {self.mel_scale!r}")
        if self.norm not in (None, "slaney"):
            raise ConfigError(f"norm must be None or 'slaney', got {self.norm!r}")
        if self.short_clips not in SHORT_CLIP_POLICIES:
            raise ConfigError(f"short_clips must be one of {SHORT_CLIP_POLICIES}, got {self.short_clips!r}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ConfigError(f"duration_s must be positive or None, got {self.duration_s}")
        if not self.eps > 0 or self.power <= 0:
            raise ConfigError("eps and power must be positive")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a cache from another version)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown feature settings {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d)

    def key(self) -> str:
        """A stable 16-hex-digit hash of the settings (independent of Python's hash seed)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> FeatureConfig:
        return dataclasses.replace(self, **changes)

    @property
    def num_samples(self) -> int | None:
        """Samples per clip after length equalisation (None until ``duration_s`` is resolved)."""
        return None if self.duration_s is None else int(round(self.duration_s * self.sample_rate))


def num_frames(cfg: FeatureConfig, num_samples: int | None = None) -> int:
    """Frames that :class:`LogMel` returns for ``num_samples`` samples (default: the config's length)."""
    n = cfg.num_samples if num_samples is None else num_samples
    if n is None:
        raise ConfigError("num_frames needs num_samples or a config with duration_s set")
    if cfg.center:
        return 1 + n // cfg.hop_length
    if n < cfg.n_fft:
        raise ConfigError(f"{n} samples are fewer than n_fft={cfg.n_fft} with center=False")
    return 1 + (n - cfg.n_fft) // cfg.hop_length


def _hz_to_mel(f: np.ndarray, scale: str) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0  # Slaney: linear below 1 kHz, logarithmic above
    logstep = np.log(6.4) / 27.0
    lin = f / f_sp
    return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-12) / min_log_hz) / logstep, lin)


def _mel_to_hz(m: np.ndarray, scale: str) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_frequencies(cfg: FeatureConfig) -> np.ndarray:
    """Centre frequency (Hz) of each mel bin, on the config's mel scale; for plots and checks."""
    lo, hi = _hz_to_mel(np.array([cfg.f_min, cfg.f_max]), cfg.mel_scale)
    return _mel_to_hz(np.linspace(lo, hi, cfg.n_mels + 2), cfg.mel_scale)[1:-1]


def fit_length(x: np.ndarray, num_samples: int, policy: str = "error", path: str = "<array>") -> np.ndarray:
    """Crop ``x`` to its first ``num_samples`` samples, or pad it per ``policy`` (see module doc)."""
    n = x.shape[-1]
    if n >= num_samples:
        return x[..., :num_samples]
    if policy == "error":
        raise AudioError(
            f"{path}: clip has {n} samples, shorter than the {num_samples} that these features use; "
            f"remove the file, set a shorter duration_s, or allow padding with short_clips='wrap' (or 'zeros')"
        )
    if policy == "wrap":
        return np.resize(x, num_samples) if x.ndim == 1 else np.concatenate([x] * (num_samples // n + 1), -1)[..., :num_samples]
    if policy == "zeros":
        out = np.zeros(x.shape[:-1] + (num_samples,), dtype=x.dtype)
        out[..., :n] = x
        return out
    raise ConfigError(f"unknown short_clips policy {policy!r}; expected one of {SHORT_CLIP_POLICIES}")


class LogMel(nn.Module):
    """Waveform (B, S) -> log-mel power spectrogram in dB, (B, n_mels, T) float32.

    A module (not a function) so that the filterbank and window live on the device with
    ``.to(device)`` and the same object serves the cache builder and on-the-fly use.
    """

    def __init__(self, cfg: FeatureConfig = FeatureConfig()) -> None:
        super().__init__()
        import torchaudio

        self.cfg = cfg
        # Every argument explicit: torchaudio's defaults (htk scale, no norm, n_fft 400) differ from librosa's.
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate,
            n_fft=cfg.n_fft,
            win_length=cfg.win_length,
            hop_length=cfg.hop_length,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            pad=0,
            n_mels=cfg.n_mels,
            window_fn=torch.hann_window,  # periodic Hann, like scipy.signal.get_window('hann') in librosa
            power=cfg.power,
            normalized=False,
            wkwargs=None,
            center=cfg.center,
            pad_mode=cfg.pad_mode,
            onesided=None,  # deprecated in torchaudio (always one-sided); None avoids its warning
            norm=cfg.norm,
            mel_scale=cfg.mel_scale,
        )
        self.scale = 20.0 / cfg.power  # 10 for a power spectrogram, 20 for magnitude

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.ndim == 1:
            wave = wave.unsqueeze(0)  # (S,) -> (1, S)
        if wave.ndim != 2:
            raise ValueError(f"LogMel expects (B, S) or (S,) waveforms, got shape {tuple(wave.shape)}")
        wave = wave.float()
        if fastmel.applies(self, wave):
            out = torch.empty((wave.shape[0], self.cfg.n_mels, 1 + wave.shape[1] // self.cfg.hop_length))
            fastmel.logmel_into(self, wave, out, fastmel.Workspace())
            return out
        if self.cfg.power == 2.0:  # GPU (or an unusual config): torch.stft, |X|^2 as re*re + im*im, one matmul
            spec = self.mel.spectrogram
            stft = torch.stft(
                wave, n_fft=spec.n_fft, hop_length=spec.hop_length, win_length=spec.win_length,
                window=spec.window, center=spec.center, pad_mode=spec.pad_mode, normalized=False,
                onesided=True, return_complex=True,
            )  # (B, n_fft//2 + 1, T) complex
            power = stft.real.square()
            power.addcmul_(stft.imag, stft.imag)  # (B, F, T)
            db = torch.matmul(self.mel.mel_scale.fb.T, power)  # (B, n_mels, T)
            db.add_(self.cfg.eps).log10_().mul_(self.scale)
        else:
            db = self.scale * torch.log10(self.mel(wave) + self.cfg.eps)
        if self.cfg.top_db is not None:
            db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - self.cfg.top_db)
        return db


F16_MAX = 65504.0


def _compute_batch(
    logmel: LogMel, wave: np.ndarray, device: str, out: np.ndarray | None = None, workspace: fastmel.Workspace | None = None
) -> np.ndarray:
    """(B, S) float32 waveforms -> (B, n_mels, T) float16 log-mel on the host (written into ``out`` if given)."""
    with torch.inference_mode():
        x = torch.from_numpy(wave)
        if out is not None and device == "cpu" and fastmel.applies(logmel, x):
            lo, hi = fastmel.logmel_into(logmel, x, torch.from_numpy(out), workspace or fastmel.Workspace())
            if not -F16_MAX <= lo <= hi <= F16_MAX:  # False for NaN too
                raise CacheError("log-mel features overflow float16 or are not finite; check the input levels")
            return out
        if device != "cpu":
            x = x.pin_memory().to(device, non_blocking=True)
        y = logmel(x).to(torch.float16)  # (B, n_mels, T)
        if not bool(torch.isfinite(y).all()):
            raise CacheError("log-mel features overflow float16 or are not finite; check the input levels")
        y = y.cpu().numpy()
        if out is not None:
            out[...] = y
        return y


def compute_features(
    paths: Sequence[str],
    cfg: FeatureConfig,
    out: np.ndarray | None = None,
    *,
    device: str = "cpu",
    batch_size: int = 64,
    num_workers: int = 2,
    progress: bool = True,
) -> np.ndarray:
    """Log-mel features of ``paths`` in order, into ``out`` (N, n_mels, T) float16 (allocated if None).

    ``cfg.duration_s`` must be set (every clip is cropped or padded to it, see the module doc).
    How the work is split, and why: on CPU each of ``num_workers`` threads reads *and*
    transforms its own groups of ``CPU_CHUNK`` clips with one torch thread each (decoding
    and torch kernels release the GIL), clip by clip in scratch tensors that the worker
    reuses (:func:`asdlib.features.fastmel.logmel_into`: no fresh pages per clip, the STFT stays in
    cache) and writes float16 straight into ``out``, so ``num_workers`` is the number of cores used. On CUDA the threads only read, one batch of
    ``batch_size`` ahead, and the main thread transforms whole batches on the GPU.
    """
    from tqdm.auto import tqdm

    from ..core.utils import resolve_device

    device = resolve_device(device)
    S = cfg.num_samples
    if S is None:
        raise ConfigError("compute_features needs cfg.duration_s set (build_feature_cache resolves it)")
    n = len(paths)
    if out is None:
        out = np.empty((n, cfg.n_mels, num_frames(cfg)), dtype=np.float16)
    on_cpu = device == "cpu"
    chunk = min(batch_size, CPU_CHUNK) if on_cpu else batch_size
    logmel = LogMel(cfg).to(device)

    local = threading.local()  # on CPU each worker reuses one wave buffer (no fresh pages per chunk)

    def load(lo: int, hi: int) -> np.ndarray:
        if on_cpu:
            if getattr(local, "buf", None) is None:
                local.buf = np.empty((chunk, S), dtype=np.float32)
            buf = local.buf[: hi - lo]  # (B, S); consumed by this worker before its next chunk
        else:
            buf = np.empty((hi - lo, S), dtype=np.float32)  # (B, S): handed to the main thread
        for j, path in enumerate(paths[lo:hi]):
            x = read_wav(path, sample_rate=cfg.sample_rate, channel=cfg.channel, resample=cfg.resample, out=buf[j])
            if len(x) < S:
                buf[j] = fit_length(x.copy(), S, cfg.short_clips, str(path))
        return buf

    def job(lo: int, hi: int) -> np.ndarray | None:
        buf = load(lo, hi)
        if not on_cpu:
            return buf
        if getattr(local, "ws", None) is None:
            local.ws = fastmel.Workspace()
            # OpenMP's thread count is a per-thread setting: without this a worker's kernels would start
            # their own teams of get_num_threads() threads, oversubscribing the cores the workers share.
            torch.set_num_threads(1)
        _compute_batch(logmel, buf, device, out[lo:hi], workspace=local.ws)
        return None

    threads = torch.get_num_threads()
    if on_cpu:
        torch.set_num_threads(1)  # parallelism comes from the workers; restored below
    starts = iter(range(0, n, chunk))
    pending: deque = deque()
    try:
        with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool, tqdm(
            total=n, unit="clip", desc="log-mel", disable=not progress
        ) as bar:

            def submit_next() -> None:
                lo = next(starts, None)
                if lo is not None:
                    pending.append((lo, min(lo + chunk, n), pool.submit(job, lo, min(lo + chunk, n))))

            for _ in range(2 * max(1, num_workers) if on_cpu else 2):  # bounded read-ahead
                submit_next()
            try:
                while pending:
                    lo, hi, future = pending.popleft()
                    submit_next()
                    buf = future.result()  # re-raises the AudioError of a bad file
                    if buf is not None:
                        out[lo:hi] = _compute_batch(logmel, buf, device)
                    bar.update(hi - lo)
            except BaseException:
                for _, _, future in pending:
                    future.cancel()  # do not finish the whole job list after a failure
                raise
    finally:
        torch.set_num_threads(threads)
    return out
