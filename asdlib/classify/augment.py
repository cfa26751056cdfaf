"""Mixup for the ID classifier (Zhang et al., 2018), as the study uses it (lambda ~ Beta(1, 1)).

One lambda per batch and partners chosen by a random permutation of the batch: the
usual batch-level recipe, which costs one gather and keeps the batch size. The returned
soft targets feed the losses of :mod:`asdlib.classify.losses`, which define how a margin and
label smoothing act on soft targets.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.errors import ConfigError


@dataclass
class MixupConfig:
    alpha: float = 1.0  # Beta(alpha, alpha); <= 0 disables mixup


def _rng(generator: torch.Generator | np.random.Generator | None) -> np.random.Generator:
    """A NumPy generator drawn from whichever generator the caller passes.

    NumPy samples Beta directly; a torch.Generator is accepted so that a trainer can
    keep a single seeded torch generator, and it is advanced by one draw here.
    """
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        return np.random.default_rng(seed)
    if generator is None:
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
    raise ConfigError(f"generator must be a torch or numpy Generator, got {type(generator).__name__}")


def mixup_params(n: int, alpha: float, generator: torch.Generator | np.random.Generator | None = None
                 ) -> tuple[float, np.ndarray]:
    """The draws of one mixup batch of ``n`` rows: ``(lambda, partner permutation (n,))``.

    Drawn on the host (NumPy), so a training step never waits for the device; a trainer that
    shards a batch over processes draws them for the whole batch on every rank (same
    generator state) and mixes its own rows with their partners.
    """
    rng = _rng(generator)
    lam = float(rng.beta(alpha, alpha))
    return lam, rng.permutation(n)


def mixup(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    alpha: float = 1.0,
    generator: torch.Generator | np.random.Generator | None = None,
    return_lambda: bool = False,
) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, float]:
    """Mix a batch with a permutation of itself.

    Args:
        x: inputs (B, ...), e.g. log-mel (B, 1, M, T).
        y: int labels (B,) or soft targets (B, num_classes).
        alpha: Beta parameter; ``alpha <= 0`` disables mixup (x unchanged, one-hot targets).
        generator: torch or NumPy generator for reproducible draws (None: torch's global RNG).

    Returns:
        ``(lam * x + (1 - lam) * x[perm], lam * t + (1 - lam) * t[perm])`` with ``t`` the
        one-hot (or given soft) targets, so each target row sums to 1; and ``lam`` when
        ``return_lambda``.
    """
    if y.dim() == 1:
        t = F.one_hot(y.long(), num_classes).to(x.dtype)  # (B, C)
    elif y.dim() == 2 and y.shape[1] == num_classes:
        t = y.to(x.dtype)
    else:
        raise ConfigError(f"labels must be (B,) or (B, {num_classes}), got {tuple(y.shape)}")
    if alpha <= 0:
        return (x, t, 1.0) if return_lambda else (x, t)
    lam, perm = mixup_params(x.shape[0], alpha, generator)
    perm = torch.from_numpy(perm).to(x.device)  # (B,)
    x_mixed = lam * x + (1.0 - lam) * x[perm]  # (B, ...)
    t_mixed = lam * t + (1.0 - lam) * t[perm]  # (B, C)
    return (x_mixed, t_mixed, lam) if return_lambda else (x_mixed, t_mixed)
