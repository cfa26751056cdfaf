"""The training step loop never waits for the device (no host synchronisation per step).

On CUDA a host sync (``.item()``, ``float(t)``, ``if t.any():``, a shape read from the data,
a copy from pageable host memory) stalls the CPU until every queued kernel has run, so the
next steps cannot be queued meanwhile. ``tests/test_gpu.py`` checks the loop on a GPU with
``torch.cuda.set_sync_debug_mode("error")``. Here, without a GPU, every conversion of a
tensor to a Python number inside :func:`asdlib.classify.train.run_steps` is recorded, and
only those that happen on host tensors on CUDA too are allowed: the optimiser's step
counter (a CPU tensor), ``F.one_hot``'s range checks (CPU only; on CUDA they are device
asserts) and the mixup draws (a CPU generator by design, :mod:`asdlib.classify.augment`).
"""
from __future__ import annotations

import linecache
import sys
import traceback
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from asdlib.classify import train
from asdlib.classify.config import TrainConfig
from asdlib.classify.losses import LOSS_KINDS

sys.path.insert(0, str(Path(__file__).parent))
from ddp_worker import tones  # noqa: E402

SCALAR_OPS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.item.default,
              torch.ops.aten.is_nonzero.default}


class HostReads(TorchDispatchMode):
    """Records where each tensor -> Python number conversion happens: the innermost asdlib
    frame (file, line, function, source) and whether the optimiser's step is on the stack."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, int, str, str, bool]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in SCALAR_OPS:
            stack = traceback.extract_stack()[:-1]
            in_optim = any("/torch/optim/" in f.filename.replace("\\", "/") for f in stack)
            ours = [f for f in stack if "/asdlib/" in f.filename.replace("\\", "/")] or stack
            f = ours[-1]
            self.reads.append((f.filename, f.lineno, f.name, linecache.getline(f.filename, f.lineno).strip(),
                               in_optim))
        return func(*args, **(kwargs or {}))


def host_only(read: tuple[str, int, str, str, bool]) -> bool:
    filename, _, name, line, in_optim = read
    return (in_optim                                                   # Adam's step counter lives on the host
            or "one_hot" in line                                       # CPU-only range checks
            or (filename.replace("\\", "/").endswith("asdlib/classify/augment.py") and name == "_rng"))  # mixup draws


@pytest.mark.parametrize("kind", LOSS_KINDS)
@pytest.mark.parametrize("mixup_margin", ["pair", "shared"])
def test_step_loop_reads_nothing_back_from_the_device(kind, mixup_margin, tmp_path):
    if kind == "softmax" and mixup_margin == "shared":
        pytest.skip("no margin: the two forms are the same loss")
    x, y = tones()
    cfg = TrainConfig.from_dict({"model": "iresnet50", "loss.kind": kind, "loss.mixup_margin": mixup_margin,
                                 "width": 0.0625, "depths": [1, 1, 1, 1], "embedding_dim": 32, "batch_size": 16,
                                 "epochs": 1, "device": "cpu", "crop_frames": 16, "dropout": 0.2}, strict=True)
    run = train.start_run(x, y, cfg, tmp_path)
    with HostReads() as probe:
        losses = train.run_steps(run, 1, progress=False)
    assert losses.shape == (run.steps,) and torch.isfinite(losses).all()
    device_reads = [r for r in probe.reads if not host_only(r)]
    assert not device_reads, "host synchronisation in the step loop:\n" + "\n".join(
        f"  {f}:{n} in {name}: {line}" for f, n, name, line, _ in device_reads)


def test_the_probe_catches_a_host_read(tmp_path, monkeypatch):
    """A loss that reads a number back from its inputs (as the pair form once did) is caught."""
    x, y = tones()
    cfg = TrainConfig.from_dict({"model": "iresnet50", "width": 0.0625, "depths": [1, 1, 1, 1], "embedding_dim": 32,
                                 "batch_size": 16, "epochs": 1, "device": "cpu"}, strict=True)
    run = train.start_run(x, y, cfg, tmp_path)
    inner = run.loss_fn.forward

    def reading(logits, target):
        k = int((target > 0).sum(dim=1).max())  # the kind of line this test guards against
        return inner(logits, target) * k / k

    monkeypatch.setattr(run.loss_fn, "forward", reading)
    with HostReads() as probe:
        train.run_steps(run, 1)
    assert [r for r in probe.reads if not host_only(r)]


def test_compile_setting_compiles_the_model_the_steps_call(tmp_path, monkeypatch):
    """cfg.compile: the steps call torch.compile's module, evaluation and checkpoints the plain model.
    (Dynamo's tracing only, backend 'eager': inductor's code generation takes minutes on a small CPU.)"""
    from asdlib.classify.checkpoint import load_checkpoint

    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: real(model, backend="eager"))
    x, y = tones()
    cfg = TrainConfig.from_dict({"model": "iresnet50", "width": 0.0625, "depths": [1, 1, 1, 1], "embedding_dim": 32,
                                 "batch_size": 16, "epochs": 1, "device": "cpu", "compile": True}, strict=True)
    run = train.start_run(x, y, cfg, tmp_path)
    assert run.net is not run.model and getattr(run.net, "_orig_mod", None) is run.model
    res = train.fit(x, y, cfg, tmp_path / "fit", progress=False)
    state = load_checkpoint(res.last_path)
    assert not any(k.startswith("_orig_mod.") for k in state["model"]) and state["config"]["compile"] is True
    # an execution setting: the run resumes without it, and run keys ignore it
    train.fit(x, y, cfg.replace(compile=False, epochs=2), tmp_path / "fit", progress=False)
