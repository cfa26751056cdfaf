"""The CUDA path of the trainer (skipped without a GPU; run by `make gpu-check`).

- the step loop never waits for the device: ``torch.cuda.set_sync_debug_mode("error")``
  turns any host synchronisation inside :func:`asdlib.classify.train.run_steps` into an error
  (bf16 autocast, channels_last, features resident on the GPU, ArcFace with mixup and crops);
- a run stopped after one epoch and resumed from ``last.pt`` ends bit-identical to an
  uninterrupted one (deterministic algorithms), evaluation on the device included;
- the evaluation sets are placed on the GPU once for the run.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from asdlib.classify import train
from asdlib.classify.checkpoint import load_checkpoint
from asdlib.classify.config import TrainConfig
from asdlib.classify.evaluate import EvalSet

sys.path.insert(0, str(Path(__file__).parent))
from ddp_worker import tones  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def cuda_cfg(**kw) -> TrainConfig:
    base = {"model": "iresnet50", "width": 0.125, "depths": [1, 1, 1, 1], "embedding_dim": 64, "batch_size": 16,
            "epochs": 2, "schedule.max_lr": 1e-3, "schedule.T_up": 1, "schedule.T_0": 2, "schedule.T_mult": 1,
            "eval_every": 1, "device": "cuda", "crop_frames": 16}
    return TrainConfig.from_dict(base | kw, strict=True)


def dev_set() -> EvalSet:
    xn, yn = tones(8, seed=11)
    xa, ya = tones(8, seed=12)
    xa[:, 3] += 2.0  # 'anomalies': a second tone
    meta = pd.DataFrame({"dataset": "dev", "machine_type": "toy", "machine_id": [f"{c:02d}" for c in np.r_[yn, ya]],
                         "label": np.r_[np.zeros(len(yn)), np.ones(len(ya))].astype(int), "class": np.r_[yn, ya]})
    return EvalSet(np.concatenate([xn, xa]).astype(np.float16), meta)


@pytest.mark.parametrize("kind", ["arcface", "softmax"])
def test_step_loop_never_waits_for_the_gpu(kind, tmp_path):
    x, y = tones(32)
    run = train.start_run(x.astype(np.float16), y, cuda_cfg(**{"loss.kind": kind}), tmp_path)
    assert run.x_all.is_cuda and run.use_amp
    train.run_steps(run, 1)  # warm-up: first-call allocations, cuDNN/cuBLAS handles
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = train.run_steps(run, 2)
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    assert torch.isfinite(losses).all()


def test_resume_on_gpu_is_bit_identical_with_evaluation_on_the_device(tmp_path):
    x, y = tones(32)
    cfg = cuda_cfg(deterministic=True, dropout=0.3)
    train.fit(x, y, cfg, tmp_path / "a", eval_sets={"dev": dev_set()}, progress=False)

    class Stop(Exception):
        pass

    def stop_after_1(epoch, row):
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        train.fit(x, y, cfg, tmp_path / "b", eval_sets={"dev": dev_set()}, progress=False, callback=stop_after_1)
    train.fit(x, y, cfg, tmp_path / "b", eval_sets={"dev": dev_set()}, progress=False)
    a, b = load_checkpoint(tmp_path / "a" / "last.pt")["model"], load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    ha, hb = (pd.read_csv(tmp_path / d / "history.csv").drop(columns=["time_s", "eval_s"]) for d in "ab")
    pd.testing.assert_frame_equal(ha, hb)
    assert ha["dev_auc"].notna().all()


def test_eval_sets_are_placed_on_the_gpu_once():
    placed = train.place_eval_sets({"dev": dev_set()}, torch.device("cuda"))
    assert placed["dev"].features.is_cuda and placed["dev"].dropped_ids == ()


def test_the_batches_do_not_depend_on_where_the_features_sit(tmp_path, monkeypatch):
    """Features resident on the GPU or left in host memory (as on a GPU with less free memory, or another
    rank): the same clip orders and crops, and a run saved with one placement resumes with the other."""
    x, y = tones(32)
    cfg = cuda_cfg(deterministic=True, sampling="balanced")
    on_gpu = train.start_run(x, y, cfg, tmp_path / "probe")
    assert on_gpu.x_all.is_cuda and all(g.device.type == "cpu" for g in on_gpu.gens.values())
    orders = [train.epoch_order(on_gpu, on_gpu.gens["loop"]).cpu()]
    monkeypatch.setattr(train, "place_features", lambda features, device: torch.from_numpy(np.asarray(features)).pin_memory())
    on_host = train.start_run(x, y, cfg, tmp_path / "probe2")
    assert not on_host.x_all.is_cuda
    orders.append(train.epoch_order(on_host, on_host.gens["loop"]).cpu())
    assert torch.equal(*orders)
    monkeypatch.undo()
    train.fit(x, y, cfg, tmp_path / "a", progress=False)  # on the GPU throughout
    train.fit(x, y, cfg.replace(epochs=1), tmp_path / "b", progress=False)  # saved with the features on the GPU ...
    monkeypatch.setattr(train, "place_features", lambda features, device: torch.from_numpy(np.asarray(features)).pin_memory())
    train.fit(x, y, cfg, tmp_path / "b", progress=False)  # ... resumed with them on the host
    ha, hb = (pd.read_csv(tmp_path / d / "history.csv").drop(columns=["time_s", "eval_s"]) for d in "ab")
    pd.testing.assert_frame_equal(ha, hb)
