"""One training run over several processes: torchrun + DistributedDataParallel (DDP).

``torchrun --nproc_per_node=K -m asdlib train ...`` starts K processes (ranks) that each hold
the whole feature array and the model; :func:`asdlib.classify.train.fit` notices the process
group (:func:`current`) and then:

- keeps the **global** batch of ``cfg.batch_size`` (64 in the study): every rank draws the
  same shuffling, crops and mixup partners for the whole global batch (same seeds), and takes
  rows ``rank * B/K .. (rank + 1) * B/K`` of it; a mixup partner held by another rank's rows
  is simply gathered from the local copy of the features, so the K local batches together
  are exactly the single-process batch (``batch_size`` must be a multiple of K);
- steps per epoch and the learning-rate schedule per optimiser step are the single-process
  ones; DDP averages the gradients, and each rank's loss is the mean over its rows, so the
  update is the mean over the global batch;
- batch norm uses the statistics of the **global** batch: ``nn.SyncBatchNorm`` on CUDA and
  :class:`GlobalBatchNorm` (the same arithmetic in plain tensor operations and a
  differentiable all-reduce) on CPU, where PyTorch has no SyncBatchNorm kernels. With
  per-rank statistics a BN layer would normalise over B/K clips, a different (noisier)
  model than the study's batch of 64; global statistics keep the meaning of the settings
  at the cost of one small all-reduce per BN layer and step;
- dropout draws from the global torch RNG, reseeded per (seed, epoch, rank) at every epoch
  so that the ranks' masks differ and a resumed run goes on exactly as it would have;
- evaluation, checkpoints, ``history.csv`` and ``summary.json`` are rank 0's alone; the
  other ranks wait for it at the next step's gradient all-reduce, and read the final
  history from ``last.pt`` at the end. Every rank resumes from ``last.pt``, so the output
  folder must be one that every node sees (a shared filesystem); ranks that do not agree on
  the epoch to resume from stop with an error rather than train out of step.

Process groups: NCCL on CUDA (each rank on ``cuda:LOCAL_RANK``), gloo on CPU. The timeout
is long (:data:`TIMEOUT_MIN`) because the other ranks wait while rank 0 evaluates.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..core.errors import ConfigError

TIMEOUT_MIN = 60  # minutes a collective may wait (rank 0 evaluating, writing checkpoints)


@dataclass(frozen=True)
class Dist:
    """Where this process stands in the process group (``world == 1``: a plain single-process run)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's rows of a global batch of ``n`` (``n`` a multiple of ``world``)."""
        b = n // self.world
        return slice(self.rank * b, (self.rank + 1) * b)


def current() -> Dist:
    """The initialised default process group as a :class:`Dist` (``Dist()`` when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Dist()
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def launched() -> bool:
    """True inside a process started by torchrun (or anything setting ``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "auto") -> Dist:
    """Join the process group torchrun describes in the environment (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); a no-op returning ``Dist()`` outside torchrun.

    ``device``: the run's ``cfg.device``; CUDA (or ``auto`` with a GPU) gives NCCL and pins
    the process to ``cuda:LOCAL_RANK``, else gloo.
    """
    if not launched():
        return Dist()
    if dist.is_initialized():
        return current()
    local = int(os.environ.get("LOCAL_RANK", 0))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if local >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local} but this node has {torch.cuda.device_count()} GPU(s); "
                              "use --nproc_per_node <= the GPUs per node")
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=TIMEOUT_MIN))
    return current()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if current().active:
        dist.barrier()


def rank_device(device: str, d: Dist) -> str:
    """The device of this rank: ``cuda``/``auto`` (with a GPU) become ``cuda:LOCAL_RANK`` under DDP."""
    if not d.active:
        return device
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return f"cuda:{d.local_rank}"
    if device.startswith("cuda:"):
        raise ConfigError(f"device {device!r} under torchrun: give --device cuda (each rank takes cuda:LOCAL_RANK)")
    return device


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks, differentiable: the gradient of a sum is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over the global batch of all ranks, for backends without SyncBatchNorm (CPU/gloo).

    In training mode under a process group of several ranks: two differentiable all-reduces
    (sum of x, then sum of squared deviations: the two-pass variance, accurate for inputs far
    from zero such as dB log-mels), the batch's biased variance to normalise and the unbiased
    one for the running estimate, as :class:`torch.nn.BatchNorm2d` does. Otherwise it is an
    ordinary batch norm (same parameters and buffers, so checkpoints load into plain models).
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        xf = x.float()
        n_local = torch.full((1,), xf.numel() // xf.shape[1], dtype=xf.dtype, device=xf.device)
        s = _AllReduceSum.apply(torch.cat([xf.sum(dims), n_local]))  # (C + 1): global sums and count
        n = s[-1]
        mean = s[:-1] / n  # (C,)
        centred = xf - mean.view(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims)) / n  # (C,) biased
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - m).add_(m * mean.detach())
                self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1))
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm layer normalising over the global batch: ``nn.SyncBatchNorm`` on CUDA,
    :class:`GlobalBatchNorm` elsewhere. Parameters and buffers (and their names) are kept."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _convert(model)


def _convert(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        out = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        out.running_mean, out.running_var = module.running_mean, module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.training = module.training
    for name, child in module.named_children():
        out.add_module(name, _convert(child))
    return out


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` (batch norms converted beforehand) in DistributedDataParallel for this rank."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DDP(model, device_ids=ids, gradient_as_bucket_view=True)


def agree(value: int, device: torch.device) -> bool:
    """True when every rank holds the same ``value`` (True in a single process)."""
    d = current()
    if not d.active:
        return True
    t = torch.tensor([value, -value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t[0]) == -int(t[1])


def all_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over ranks (a no-op in a single process); no host synchronisation on NCCL."""
    d = current()
    if not d.active:
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t / d.world
