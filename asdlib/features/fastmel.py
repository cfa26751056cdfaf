"""The fast CPU log-mel path: the same numbers as torchaudio's, about 3-4x faster on a CPU.

:class:`~asdlib.features.logmel.LogMel` uses it on CPU for power spectrograms with centred,
reflect-padded, full-length windows (:func:`applies`); everything else goes through
``torch.stft`` or torchaudio. Why it is faster: scratch tensors reused from clip to clip
(:class:`Workspace`: no fresh pages per clip), ``re**2 + im**2`` summed inside the mel
projection, and a projection that skips the filterbank's exact zeros (:func:`mel_blocks`).
``tests/test_features.py`` checks it against ``torchaudio.transforms.MelSpectrogram``.
"""
from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import torch

MEL_BLOCK = 16  # mel bins per block of the CPU mel projection (see mel_blocks)


class LogMel(Protocol):
    """What this module reads of :class:`asdlib.features.logmel.LogMel` (described here, so that
    ``logmel`` imports ``fastmel`` and not the other way round)."""

    cfg: Any  # its FeatureConfig: power, n_mels, eps, top_db
    mel: Any  # its torchaudio MelSpectrogram: .spectrogram (window, n_fft, hop), .mel_scale.fb
    scale: float  # 20 / power


class Workspace:
    """Scratch tensors of :func:`logmel_into`, kept by one thread and reused from call to call."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        t = self.tensors.get(name)
        if t is None or tuple(t.shape) != shape or t.dtype != dtype:
            t = self.tensors[name] = torch.empty(shape, dtype=dtype)
        return t


def mel_blocks(logmel: LogMel) -> list[tuple[int, int, int, int, torch.Tensor]]:
    """The filterbank for the CPU path: blocks of ``MEL_BLOCK`` consecutive mel bins, each cut to
    the frequency rows where it is non-zero, with every row doubled (interleaved) so that it
    applies to ``re**2, im**2`` pairs: ``(m0, m1, 2*f0, 2*f1, W)``, ``W[:, 2k] = W[:, 2k+1] = fb.T[m0:m1, f0+k]``.

    A mel filter touches only a few FFT bins (about 1,000 of the 65,664 entries of the default
    filterbank are non-zero), so projecting block by block does a small fraction of the dense
    matmul's work; summing ``re**2`` and ``im**2`` inside the matmul saves a pass over the
    spectrum. Only exact zeros are skipped, so the sums equal ``fb.T @ |X|**2`` up to float32
    summation order. Rebuilt when the filterbank tensor changes (e.g. moved to another device).
    """
    fb = logmel.mel.mel_scale.fb  # (n_freq, n_mels), torchaudio's own filterbank
    cached = getattr(logmel, "_fast_blocks", None)
    if cached is not None and cached[0] is fb:
        return cached[1]
    nonzero = (fb != 0).cpu().numpy()
    n_freq, n_mels = nonzero.shape
    used = nonzero.any(axis=0)
    first = np.where(used, nonzero.argmax(axis=0), n_freq)
    last = np.where(used, n_freq - nonzero[::-1].argmax(axis=0), 0)  # exclusive
    pairs = fb.T.repeat_interleave(2, dim=1)  # (n_mels, 2 * n_freq)
    blocks = []
    for m0 in range(0, n_mels, MEL_BLOCK):
        m1 = min(m0 + MEL_BLOCK, n_mels)
        f0, f1 = int(first[m0:m1].min()), int(last[m0:m1].max())
        if f1 <= f0:  # filters with no support (possible with many mels): rows stay zero
            f0 = f1 = 0
        blocks.append((m0, m1, 2 * f0, 2 * f1, pairs[m0:m1, 2 * f0 : 2 * f1].contiguous()))
    logmel._fast_blocks = (fb, blocks)
    return blocks


def applies(logmel: LogMel, wave: torch.Tensor) -> bool:
    """Whether :func:`logmel_into` applies: CPU, power 2, centred reflect-padded full-length windows."""
    spec = logmel.mel.spectrogram
    return (
        wave.device.type == "cpu" and logmel.cfg.power == 2.0 and bool(spec.center) and spec.pad_mode == "reflect"
        and spec.win_length == spec.n_fft and wave.shape[-1] > spec.n_fft // 2
    )


def logmel_into(logmel: LogMel, wave: torch.Tensor, out: torch.Tensor, ws: Workspace) -> tuple[float, float]:
    """(B, S) float32 -> log-mel dB written into ``out`` (B, n_mels, T) (float32 or float16), clip by clip.

    The same computation as ``torch.stft`` + ``torchaudio``'s mel projection (reflect padding
    by n_fft // 2, periodic Hann window, one-sided FFT, ``re*re + im*im``, Slaney filterbank,
    ``scale * log10(mel + eps)``), done with the scratch tensors of ``ws``, reused from clip to
    clip: fresh ~1 MB temporaries per clip cost about as much in page faults as the arithmetic.
    The mel projection skips the filterbank's exact zeros (:func:`mel_blocks`).
    ``tests/test_features.py`` checks the result against ``torchaudio.transforms.MelSpectrogram``.
    Returns the smallest and largest value written (NaN if any is NaN).
    """
    spec = logmel.mel.spectrogram
    n_fft, hop, p = spec.n_fft, spec.hop_length, spec.n_fft // 2
    B, S = wave.shape
    T, F, M = 1 + S // hop, n_fft // 2 + 1, logmel.cfg.n_mels
    if tuple(out.shape) != (B, M, T):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {(B, M, T)}")
    padded = ws.get("padded", (S + 2 * p,), torch.float32)
    frames = ws.get("frames", (T, n_fft), torch.float32)
    fourier = ws.get("fourier", (T, F), torch.complex64)
    squares = ws.get("squares", (T, 2 * F), torch.float32)  # re**2, im**2 interleaved; used as (2F, T)
    scratch = ws.get("mel", (M, T), torch.float32)
    window, blocks = spec.window, mel_blocks(logmel)
    flat = torch.view_as_real(fourier).view(T, 2 * F)  # (T, F) complex as (T, 2F) real
    lo, hi, nan = float("inf"), float("-inf"), False
    direct = out.dtype == torch.float32  # else: computed in float32 scratch, converted on the copy into out
    for b in range(B):
        x = wave[b]
        padded[p : p + S].copy_(x)
        padded[:p].copy_(x[1 : p + 1].flip(0))  # reflect: x[p], ..., x[1]
        padded[p + S :].copy_(x[S - 1 - p : S - 1].flip(0))  # x[S-2], ..., x[S-1-p]
        torch.mul(padded.unfold(0, n_fft, hop), window, out=frames)  # (T, n_fft) windowed frames
        torch.fft.rfft(frames, out=fourier)  # (T, F)
        torch.mul(flat, flat, out=squares)
        mel = out[b] if direct else scratch  # (M, T)
        pairs_t = squares.T  # (2F, T)
        for m0, m1, f0, f1, w in blocks:  # mel = fb.T @ (re**2 + im**2), the zeros of fb skipped
            if f1 > f0:
                torch.mm(w, pairs_t[f0:f1], out=mel[m0:m1])
            else:
                mel[m0:m1].zero_()
        mel.add_(logmel.cfg.eps)
        np.log10(mel.numpy(), out=mel.numpy())  # numpy's float32 log10 is SIMD, ~10x torch's on CPU
        mel.mul_(logmel.scale)
        if logmel.cfg.top_db is not None:
            mel.clamp_(min=float(mel.max()) - logmel.cfg.top_db)
        if not direct:
            out[b].copy_(mel)
        mn, mx = (float(v) for v in torch.aminmax(mel))
        lo, hi = min(lo, mn), max(hi, mx)
        if math.isnan(mn) or math.isnan(mx):
            nan = True
    return (float("nan"), float("nan")) if nan else (lo, hi)
