"""The DCASE2023+ Task 2 baseline's two scores for a frame-vector autoencoder.

The organisers' 2023 baseline (Harada et al., "First-shot anomaly sound detection for
machine condition monitoring: a domain generalization baseline", arXiv:2303.00455; the
baseline code published with DCASE2023-2025 Task 2) keeps the DCASE2020 network (5 frames
of 128 log-mel bins, 640-128x4-8-128x4-640, batch norm and ReLU; :class:`DenseAutoencoder`)
and trains it per machine type on all its training clips, source and target domain
together. It scores a clip in one of two modes:

- "simple AE" (MSE): the mean squared reconstruction error over the clip's frame vectors
  (:func:`asdlib.recon.score_autoencoder`);
- "selective Mahalanobis": after training, the covariance of the reconstruction error
  vectors ``e = x - AE(x)`` (640-d, one per frame vector) is estimated separately on the
  source and on the target training clips; a clip's score per domain is the mean over its
  frame vectors of ``e^T C_d^{-1} e`` and the selective score is the smaller of the two, so a
  target-domain clip is measured against the target domain's error statistics.

Details of this implementation (ours): each covariance is the unbiased sample covariance of
the domain's error vectors (centred on their mean; the distance, as the baseline's, is of the
uncentred error); statistics accumulate in float64 in chunks of clips, so memory does not
grow with the number of clips. ``ridge`` (default ``1e-6``, relative to the mean variance)
is added to the diagonal before inverting: with the 10 target training clips of a small
subset, fewer error vectors than dimensions would leave the target covariance singular.
With no target training clips the target covariance is the source's (as the baseline does).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..core.errors import ConfigError
from ..core.utils import resolve_device
from .autoencoder import DenseAutoencoder
from .frames import _check_rows, read_clips, stack_frames

DOMAINS = ("source", "target")


@dataclass
class SelectiveMahalanobis:
    """Per-domain error statistics of one trained autoencoder: ``precision[d]`` is
    ``(C_d + ridge * mean(diag C_d) I)^{-1}``, ``(D, D)`` with ``D = n_mels * n_frames``."""

    precision: dict[str, np.ndarray]
    n_vectors: dict[str, int]
    ridge: float

    def distances(self, err: np.ndarray) -> dict[str, np.ndarray]:
        """Squared Mahalanobis distance of each error vector to each domain, ``(V,)`` per domain."""
        return {d: mahalanobis_sq(err, p) for d, p in self.precision.items()}


def mahalanobis_sq(err: np.ndarray | torch.Tensor, precision: np.ndarray | torch.Tensor):
    """``e^T P e`` per row of ``err`` ``(V, D)``; returns ``(V,)`` (numpy or torch as given)."""
    if isinstance(err, torch.Tensor):
        p = torch.as_tensor(precision, dtype=err.dtype, device=err.device)
        return torch.einsum("vd,de,ve->v", err, p, err)
    return np.einsum("vd,de,ve->v", err, precision, err)


@torch.no_grad()
def _error_vectors(model: DenseAutoencoder, features: np.ndarray, rows: np.ndarray, device: str):
    """Yield ``(K, T', D)`` float64 error vectors ``x - AE(x)`` for chunks of clips ``rows``."""
    for b in range(0, len(rows), _CHUNK):
        x = torch.from_numpy(read_clips(features, rows[b:b + _CHUNK])).to(device)  # (K, M, T)
        v = stack_frames(x, model.n_frames)  # (K, T', D)
        r = model(v.reshape(-1, v.shape[-1])).reshape(v.shape)
        yield (v - r).double()


_CHUNK = 64  # clips per forward pass


def error_covariance(model: DenseAutoencoder, features: np.ndarray, rows: Sequence[int],
                     device: str = "auto") -> tuple[np.ndarray, int]:
    """Sample covariance ``(D, D)`` of the error vectors of every frame vector of ``rows``,
    and the number of vectors it was estimated from."""
    rows = _check_rows(features, rows)
    device = resolve_device(device)
    model.to(device).eval()
    d = model.cfg.input_dim
    s = torch.zeros(d, dtype=torch.float64, device=device)
    ss = torch.zeros(d, d, dtype=torch.float64, device=device)
    n = 0
    for e in _error_vectors(model, features, rows, device):
        e = e.reshape(-1, d)  # (K*T', D)
        s += e.sum(0)
        ss += e.T @ e
        n += e.shape[0]
    if n < 2:
        raise ConfigError(f"a covariance needs at least 2 error vectors, got {n}")
    mu = s / n
    cov = (ss - n * torch.outer(mu, mu)) / (n - 1)
    return cov.cpu().numpy(), n


def fit_selective_mahalanobis(model: DenseAutoencoder, features: np.ndarray, source_rows: Sequence[int],
                              target_rows: Sequence[int] | None = None, ridge: float = 1e-6,
                              device: str = "auto") -> SelectiveMahalanobis:
    """Estimate the source and target error covariances of a trained autoencoder on its
    normal training clips (``target_rows`` empty or None: the target uses the source's)."""
    if ridge < 0:
        raise ConfigError(f"ridge must be >= 0, got {ridge}")
    covs, counts = {}, {}
    covs["source"], counts["source"] = error_covariance(model, features, source_rows, device)
    if target_rows is not None and len(np.asarray(target_rows).reshape(-1)):
        covs["target"], counts["target"] = error_covariance(model, features, target_rows, device)
    else:
        covs["target"], counts["target"] = covs["source"], 0
    precision = {}
    for dom, c in covs.items():
        reg = c + ridge * max(float(np.mean(np.diag(c))), 1e-12) * np.eye(len(c))
        precision[dom] = np.linalg.inv(reg)
    return SelectiveMahalanobis(precision, counts, ridge)


@torch.no_grad()
def score_dcase2023(model: DenseAutoencoder, features: np.ndarray, rows: Sequence[int],
                    maha: SelectiveMahalanobis | None = None, device: str = "auto") -> dict[str, np.ndarray]:
    """Both baseline scores per clip in one pass, each ``(len(rows),)`` float64:
    ``mse``; with ``maha`` also ``maha_source``, ``maha_target`` and ``mahalanobis`` (the
    selective score: the smaller of the two)."""
    rows = _check_rows(features, rows)
    device = resolve_device(device)
    model.to(device).eval()
    out: dict[str, list[np.ndarray]] = {"mse": []}
    prec = {}
    if maha is not None:
        prec = {d: torch.as_tensor(p, dtype=torch.float64, device=device) for d, p in maha.precision.items()}
        out.update({f"maha_{d}": [] for d in prec})
    for e in _error_vectors(model, features, rows, device):
        k, tv, d = e.shape
        out["mse"].append((e ** 2).mean(dim=(1, 2)).cpu().numpy())
        for dom, p in prec.items():
            dist = mahalanobis_sq(e.reshape(-1, d), p).reshape(k, tv)
            out[f"maha_{dom}"].append(dist.mean(1).cpu().numpy())
    res = {key: np.concatenate(v) for key, v in out.items()}
    if maha is not None:
        res["mahalanobis"] = np.minimum(res["maha_source"], res["maha_target"])
    return res


def fit_dcase2023_baseline(features: np.ndarray, source_rows: Sequence[int], target_rows: Sequence[int],
                           cfg=None, ae_cfg=None, ridge: float = 1e-6, out_path=None,
                           progress: bool = False) -> tuple[DenseAutoencoder, SelectiveMahalanobis, list[dict]]:
    """Train the baseline on one machine type (its source and target training clips
    together, as the organisers do), then fit the selective Mahalanobis statistics on the
    same clips. ``cfg`` defaults to :meth:`ReconConfig.dcase2023_defaults`."""
    from .train import ReconConfig, fit_autoencoder

    src = np.asarray(source_rows, dtype=np.int64).reshape(-1)
    tgt = np.asarray(target_rows, dtype=np.int64).reshape(-1)
    cfg = cfg or ReconConfig.dcase2023_defaults()
    model, history = fit_autoencoder(features, np.r_[src, tgt], cfg, ae_cfg, out_path, progress)
    maha = fit_selective_mahalanobis(model, features, src, tgt, ridge, cfg.device)
    return model, maha, history
