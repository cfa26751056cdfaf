"""Frame stacking and streaming readers over a (memory-mapped) log-mel array.

The DCASE2020 baseline builds, for one machine type, an in-RAM array of every 5-frame
vector of every training clip (N * 309 * 640 float32: about 6 GB for 3000 clips) and lets
Keras shuffle it. Here the same vectors are drawn from the feature cache in chunks of
``chunk_clips`` clips: each epoch shuffles the clip order, reads one chunk of clips
(float16, 256 clips = 20 MB), shuffles the (clip, offset) pairs of that chunk and gathers
each minibatch of vectors from a strided view, so peak memory depends on the chunk size
and not on the number of clips. Every vector is still seen exactly once per
epoch; only the mixing is local to a chunk (plus the carried-over remainder).
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from ..core.errors import ConfigError


def stack_frames(logmel: np.ndarray | torch.Tensor, n_frames: int = 5) -> np.ndarray | torch.Tensor:
    """Concatenate ``n_frames`` consecutive frames into one vector, hop of one frame.

    Shape ``(..., M, T) -> (..., T - n_frames + 1, M * n_frames)``. Vector ``t`` is
    ``[frame t, frame t+1, ..., frame t+n-1]`` with each frame's M bins contiguous: the
    ordering of the baseline's ``vector_array[:, M*k:M*(k+1)] = logmel[:, k:k+T'].T``.
    Works on numpy arrays and torch tensors alike (returns a copy for numpy).
    """
    m, t = logmel.shape[-2], logmel.shape[-1]
    if n_frames < 1:
        raise ConfigError(f"n_frames must be >= 1, got {n_frames}")
    n_vec = t - n_frames + 1
    if n_vec < 1:
        raise ConfigError(f"clip has {t} frames, fewer than n_frames={n_frames}")
    if isinstance(logmel, torch.Tensor):
        win = logmel.unfold(-1, n_frames, 1)  # (..., M, T', n)
        win = win.movedim(-3, -1)  # (..., T', n, M)
        return win.reshape(*logmel.shape[:-2], n_vec, m * n_frames)
    win = np.lib.stride_tricks.sliding_window_view(logmel, n_frames, axis=-1)  # (..., M, T', n)
    win = np.moveaxis(win, -3, -1)  # (..., T', n, M)
    return np.ascontiguousarray(win).reshape(*logmel.shape[:-2], n_vec, m * n_frames)


def unstack_middle(vectors: np.ndarray, n_mels: int, n_frames: int = 5) -> np.ndarray:
    """The middle frame of each stacked vector, ``(T', M*n) -> (M, T')``: for pictures."""
    k = n_frames // 2
    return vectors[:, k * n_mels:(k + 1) * n_mels].T


def _check_rows(features: np.ndarray, rows: Sequence[int]) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if features.ndim != 3:
        raise ConfigError(f"features must have shape (N, n_mels, T), got {features.shape}")
    if rows.size == 0:
        raise ConfigError("no rows given: nothing to train or score on")
    if rows.min() < 0 or rows.max() >= features.shape[0]:
        raise ConfigError(f"row indices out of range [0, {features.shape[0]})")
    return rows


def read_clips(features: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Read some clips as float32 ``(K, M, T)``; rows are sorted for the read so a memmap
    is walked forwards, then put back in the order asked for."""
    order = np.argsort(rows, kind="stable")
    block = np.asarray(features[rows[order]], dtype=np.float32)  # (K, M, T)
    out = np.empty_like(block)
    out[order] = block
    return out


class FrameVectorStream:
    """Minibatches of stacked frame vectors drawn from clips ``rows`` of ``features``.

    Iterating once is one epoch: each of ``len(rows) * (T - n_frames + 1)`` vectors is
    yielded exactly once, as float32 tensors of shape ``(B, M * n_frames)`` with
    ``B = batch_size`` except possibly the last. Memory held at any time: one chunk of
    ``chunk_clips`` clips (as stored), its shuffled (clip, offset) order, one batch, and
    less than one batch carried over to the next chunk.
    """

    def __init__(self, features: np.ndarray, rows: Sequence[int], n_frames: int = 5,
                 batch_size: int = 512, chunk_clips: int = 256, shuffle: bool = True,
                 seed: int = 0) -> None:
        self.features = features
        self.rows = _check_rows(features, rows)
        self.n_frames, self.batch_size, self.chunk_clips = n_frames, batch_size, chunk_clips
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        if batch_size < 1 or chunk_clips < 1:
            raise ConfigError("batch_size and chunk_clips must be >= 1")
        self.vectors_per_clip = features.shape[-1] - n_frames + 1
        if self.vectors_per_clip < 1:
            raise ConfigError(f"clips have {features.shape[-1]} frames, fewer than n_frames={n_frames}")
        self.max_chunk_vectors = 0  # most vectors addressable at once (for tests)
        self.max_chunk_bytes = 0  # largest block of clips held at once

    def __len__(self) -> int:
        return -(-self.n_vectors // self.batch_size)

    @property
    def n_vectors(self) -> int:
        return len(self.rows) * self.vectors_per_clip

    def __iter__(self) -> Iterator[torch.Tensor]:
        # A new permutation per epoch, reproducible from (seed, epoch).
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        rows = rng.permutation(self.rows) if self.shuffle else self.rows
        m, n, tv, bs = self.features.shape[1], self.n_frames, self.vectors_per_clip, self.batch_size
        carry = np.empty((0, m * n), dtype=np.float32)
        for start in range(0, len(rows), self.chunk_clips):
            # Only the chunk's clips are held (float16 as stored); vectors are gathered per
            # batch by (clip, offset) from a strided view, never stacked for the whole chunk.
            clips = np.asarray(self.features[np.sort(rows[start:start + self.chunk_clips])])  # (K, M, T)
            windows = np.lib.stride_tricks.sliding_window_view(clips, n, axis=-1)  # (K, M, T', n) view
            pairs = np.arange(len(clips) * tv)  # vector id = clip * T' + offset
            if self.shuffle:
                pairs = rng.permutation(pairs)
            self.max_chunk_vectors = max(self.max_chunk_vectors, len(pairs) + len(carry))
            self.max_chunk_bytes = max(self.max_chunk_bytes, clips.nbytes)
            pos = 0
            if len(carry):  # complete the batch left over from the previous chunk
                take = min(bs - len(carry), len(pairs))
                carry = np.concatenate([carry, self._gather(windows, pairs[:take])])
                pos = take
                if len(carry) == bs:
                    yield torch.from_numpy(carry)
                    carry = carry[:0]
            while len(pairs) - pos >= bs:
                yield torch.from_numpy(self._gather(windows, pairs[pos:pos + bs]))
                pos += bs
            if pos < len(pairs):
                carry = np.concatenate([carry, self._gather(windows, pairs[pos:])])
            del windows, clips
        if len(carry):
            yield torch.from_numpy(carry)

    def _gather(self, windows: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Vectors ``ids`` (clip * T' + offset) of a chunk, ``(B, M*n)`` float32."""
        k, t = np.divmod(ids, self.vectors_per_clip)
        w = windows[k, :, t, :]  # (B, M, n): advanced indices go first
        return np.ascontiguousarray(w.transpose(0, 2, 1), dtype=np.float32).reshape(len(ids), -1)


class ClipBatches:
    """Minibatches of whole clips ``(B, M, T)`` float32 (for the WaveNet), read from the
    memmap ``batch_size`` clips at a time; with ``ids`` also yields their ID indices."""

    def __init__(self, features: np.ndarray, rows: Sequence[int], batch_size: int = 16,
                 shuffle: bool = True, seed: int = 0, ids: Sequence[int] | None = None) -> None:
        self.features = features
        self.rows = _check_rows(features, rows)
        self.ids = None if ids is None else np.asarray(ids, dtype=np.int64).reshape(-1)
        if self.ids is not None and len(self.ids) != len(self.rows):
            raise ConfigError(f"{len(self.ids)} ID indices for {len(self.rows)} rows")
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, 0

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        pos = rng.permutation(len(self.rows)) if self.shuffle else np.arange(len(self.rows))
        for b in range(0, len(pos), self.batch_size):
            p = pos[b:b + self.batch_size]
            x = torch.from_numpy(read_clips(self.features, self.rows[p]))  # (B, M, T)
            yield x, (None if self.ids is None else torch.from_numpy(self.ids[p]))


def mel_stats(features: np.ndarray, rows: Sequence[int], chunk_clips: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per mel bin over all frames of ``rows``, ``(M,)`` each,
    accumulated in float64 chunk by chunk (never the whole array in RAM)."""
    rows = _check_rows(features, rows)
    m = features.shape[1]
    s, s2, n = np.zeros(m), np.zeros(m), 0
    for start in range(0, len(rows), chunk_clips):
        x = read_clips(features, rows[start:start + chunk_clips]).astype(np.float64)  # (K, M, T)
        s += x.sum(axis=(0, 2))
        s2 += (x * x).sum(axis=(0, 2))
        n += x.shape[0] * x.shape[2]
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-5).astype(np.float32)
