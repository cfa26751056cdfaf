"""One training run over two processes (DistributedDataParallel, gloo on the CPU) against one process.

The two-process run must be the single-process run with the same global batch: same global
batch split into two halves, same schedule per optimiser step, same seeds, batch norm over
the global batch. What differs is the order of float sums (each rank sums its half of the
gradient, then the all-reduce adds the halves; the batch-norm statistics likewise), i.e.
float32 rounding, which training then amplifies a little from step to step.

Tolerances (ResNet50-type backbone, ArcFace with mixup and crops, the study's max_lr 2e-4,
4 epochs of 3 steps; the improved recipe's class-balanced sampling and per-mel normalisation):
per-epoch training loss within 1e-4 relative, held-out loss within 1e-3 relative, every weight
and batch-norm buffer within 2e-3 absolute. Measured when this was written: 8e-6, 4e-5 and 2e-4
(the first epoch's loss identical) with shuffling and global normalisation; 1e-6, 2e-5 and 1e-5
with balanced sampling and per-mel normalisation; a *single-process* run
whose input features were perturbed by 1e-7 relative (float32 rounding) moved further
(4e-5, 1e-4 and 1e-3). With batch norm per rank instead (8 clips per statistic) the
first epoch's loss differs by 1e-2, the losses by up to 17 % (training) and 20 % (held
out) and the weights by up to 0.8, so the test tells the two apart. (IR-ResNet50 would need another comparison:
a bias feeding straight into a batch norm, as in its residual blocks and embedding head,
gets a zero gradient by construction, and Adam turns the rounding noise of that zero into
steps of the size of the learning rate, in one process as in two; it is trained over two
processes with its dropout in test_iresnet50_with_dropout_over_two_processes, which checks what
does hold there.) Every two-process run also checks that both ranks drew the same batches every
epoch and ended with the same weights (tests/ddp_worker.py records both per rank).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from asdlib.classify import distributed
from asdlib.classify.checkpoint import load_checkpoint
from asdlib.classify.config import TrainConfig
from asdlib.classify.train import fit, make_batch

sys.path.insert(0, str(Path(__file__).parent))
from ddp_worker import tones  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CFG = {"model": "resnet50", "loss.kind": "arcface", "width": 0.0625, "depths": [1, 1, 1, 1], "embedding_dim": 32,
       "batch_size": 16, "epochs": 4, "schedule.max_lr": 2e-4, "schedule.T_up": 1, "schedule.T_0": 4,
       "schedule.T_mult": 1, "eval_every": 2, "device": "cpu", "amp": False, "dropout": 0.0, "crop_frames": 16,
       "sampling": "balanced", "input_norm": "per_mel"}  # the improved recipe's sampling and input normalisation
# IR-ResNet50 with its head dropout, smaller still: 2 epochs (the resumed run stops after 1)
CFG_IR = CFG | {"model": "iresnet50", "loss.kind": "cosface", "dropout": 0.3, "epochs": 2, "schedule.T_0": 2,
                "sampling": "shuffle", "input_norm": "global"}
TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], cwd: Path, timeout: int = TIMEOUT_S) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --nproc_per_node=2`` on 127.0.0.1, one thread per process."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", *args]
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, f"torchrun failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-6000:]}"
    return r


def weights(path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_checkpoint(path)["model"].items() if v.is_floating_point()}


def launch_ranks(args: list[str], cwd: Path, world: int = 2, timeout: int = TIMEOUT_S) -> None:
    """Start ``world`` ranks directly, with the environment torchrun would give them (no launcher process)."""
    port = free_port()
    procs = []
    for rank in range(world):
        env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "MASTER_ADDR": "127.0.0.1",
                            "MASTER_PORT": str(port), "RANK": str(rank), "LOCAL_RANK": str(rank),
                            "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world)}
        procs.append(subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    try:
        outs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for rank, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"rank {rank} failed ({p.returncode}):\n{out[-6000:]}"


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    launch_ranks([str(REPO / "tests" / "ddp_worker.py"), str(out), json.dumps(CFG)], cwd=out)
    return out


@pytest.fixture(scope="module")
def two_process_ir_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_ir")
    launch_ranks([str(REPO / "tests" / "ddp_worker.py"), str(out), json.dumps(CFG_IR)], cwd=out)
    return out


def ranks_agree(out: Path) -> None:
    """Both ranks drew the same clip orders and the same crops (generator states) every epoch, and ended
    with the same weights, in the uninterrupted and the resumed run."""
    r0, r1 = (json.loads((out / f"rank{r}.json").read_text()) for r in range(2))
    assert r0["order"] and len(r0["generator"]) == len(r0["order"]) and len(r0["weights"]) == 3
    assert r0 == r1


def test_two_processes_match_one_process_of_the_same_global_batch(two_process_runs, tmp_path):
    torch.set_num_threads(1)
    x, y = tones()
    fit(x, y, TrainConfig.from_dict(CFG, strict=True), tmp_path, progress=False)
    one, two = pd.read_csv(tmp_path / "history.csv"), pd.read_csv(two_process_runs / "full" / "history.csv")
    assert list(two["epoch"]) == [1, 2, 3, 4]
    np.testing.assert_allclose(two["train_loss"], one["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(two["val_loss"], one["val_loss"], rtol=1e-3)
    np.testing.assert_allclose(two["lr"], one["lr"], rtol=1e-12)  # the schedule per optimiser step
    w1, w2 = weights(tmp_path / "last.pt"), weights(two_process_runs / "full" / "last.pt")
    assert w1.keys() == w2.keys()
    worst = max((w1[k] - w2[k]).abs().max().item() for k in w1)
    assert worst < 2e-3, worst
    summary = json.loads((two_process_runs / "full" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["epochs_run"] == 4
    ranks_agree(two_process_runs)


def test_two_process_run_resumes_from_last_exactly(two_process_runs):
    full, resumed = two_process_runs / "full", two_process_runs / "resumed"
    pd.testing.assert_frame_equal(pd.read_csv(full / "history.csv").drop(columns=["time_s", "eval_s"]),
                                  pd.read_csv(resumed / "history.csv").drop(columns=["time_s", "eval_s"]))
    w_full, w_res = weights(full / "last.pt"), weights(resumed / "last.pt")
    assert all(torch.equal(w_full[k], w_res[k]) for k in w_full)
    # rank 0 alone wrote: one set of outputs, the checkpoints plain (no DDP 'module.' prefix)
    assert sorted(p.name for p in full.iterdir()) == ["best_dev_auc_pauc.pt", "best_val_loss.pt", "history.csv",
                                                      "last.pt", "summary.json"] or \
        sorted(p.name for p in full.iterdir()) == ["best_val_loss.pt", "history.csv", "last.pt", "summary.json"]
    assert not any(k.startswith("module.") for k in w_full)


def test_iresnet50_with_dropout_over_two_processes(two_process_ir_runs, tmp_path):
    """IR-ResNet50 with its head dropout: the ranks draw the same batches and stay in step, the run resumes
    exactly (dropout masks are seeded per rank and epoch), and it learns.
    Not compared with one process to float rounding: each rank draws its own dropout masks for its half of
    the batch, where one process draws one mask for the whole batch from the global RNG, so the two runs
    see other (equally random) masks from the first step; and IR-ResNet50's biases that feed a batch norm
    get Adam steps of rounding noise (see the module docstring). Measured when this was written: training
    losses 5.70, 4.66 (two processes) against 4.90, 4.05 (one)."""
    ranks_agree(two_process_ir_runs)
    full, resumed = two_process_ir_runs / "full", two_process_ir_runs / "resumed"
    pd.testing.assert_frame_equal(pd.read_csv(full / "history.csv").drop(columns=["time_s", "eval_s"]),
                                  pd.read_csv(resumed / "history.csv").drop(columns=["time_s", "eval_s"]))
    w_full, w_res = weights(full / "last.pt"), weights(resumed / "last.pt")
    assert all(torch.equal(w_full[k], w_res[k]) for k in w_full)
    two = pd.read_csv(full / "history.csv")
    assert list(two["epoch"]) == [1, 2] and two["train_loss"].is_monotonic_decreasing
    assert np.isfinite(two["val_loss"]).all()


def test_batch_shards_make_up_the_global_batch():
    """Each rank's rows, mixed with partners anywhere in the batch, are the single-process rows."""
    cfg = TrainConfig.from_dict({"crop_frames": 16, "mixup_alpha": 1.0, "device": "cpu"})
    x, y = torch.randn(40, 8, 24), torch.randint(0, 5, (40,))
    idx = torch.randperm(40)[:16]

    def batch(rows):
        return make_batch(x, y, idx, cfg, 5, torch.device("cpu"), torch.Generator().manual_seed(1),
                          torch.Generator().manual_seed(2), rows)

    xb, t = batch(slice(None))
    parts = [batch(distributed.Dist(r, 2).shard(16)) for r in range(2)]
    assert torch.equal(torch.cat([p[0] for p in parts]), xb) and torch.equal(torch.cat([p[1] for p in parts]), t)


def test_global_batchnorm_converts_and_keeps_state_names():
    from asdlib.classify.config import build_model

    model = build_model(TrainConfig.from_dict(CFG), 3)
    before = model.state_dict()
    conv = distributed.convert_batchnorm(model, torch.device("cpu"))
    bns = [m for m in conv.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and all(isinstance(m, distributed.GlobalBatchNorm) for m in bns)
    after = conv.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    conv.eval()(torch.randn(2, 1, 16, 24))  # outside a process group: ordinary batch norm


def test_odd_global_batch_is_refused(monkeypatch, tmp_path):
    from asdlib.core.errors import ConfigError

    monkeypatch.setattr(distributed, "current", lambda: distributed.Dist(0, 3))
    x, y = tones()
    with pytest.raises(ConfigError, match="multiple of 3"):
        fit(x, y, TrainConfig.from_dict(CFG), tmp_path, progress=False)


CLI_FLAGS = ["--device", "cpu", "--model", "resnet50", "--width", "0.0625", "--depths", "1,1,1,1",
             "--embedding-dim", "16", "--batch-size", "4", "--val-fraction", "0.5", "--epochs", "2",
             "--schedule-max-lr", "2e-4", "--schedule-T-up", "1", "--schedule-T-0", "2", "--schedule-T-mult", "1",
             "--dropout", "0", "--no-amp", "--no-progress"]


def test_asdlib_train_runs_as_is_under_torchrun(tiny_dataset, tmp_path, capsys):
    """`torchrun --nproc_per_node=2 -m asdlib train ...`: rank 0 builds the cache, trains with rank 1,
    alone writes and calibrates; the history is the single-process command's."""
    from asdlib.cli.main import main

    cache = tmp_path / "cache"
    common = ["train", "--root", str(tiny_dataset), "--cache-dir", str(cache), "--duration", "0.5", *CLI_FLAGS]
    r = torchrun(["-m", "asdlib", *common, "--out", str(tmp_path / "two")], cwd=tmp_path)
    assert r.stdout.count("training resnet50") == 1 and "in 2 processes (global batch 4)" in r.stdout
    assert len(list(cache.iterdir())) == 1  # one cache, built once
    torch.set_num_threads(1)
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    one, two = pd.read_csv(tmp_path / "one" / "history.csv"), pd.read_csv(tmp_path / "two" / "history.csv")
    np.testing.assert_allclose(two["train_loss"], one["train_loss"], rtol=1e-4)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert any(p.name.endswith(".thresholds.json") for p in (tmp_path / "two").iterdir())
