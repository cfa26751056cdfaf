"""One rank of the DDP tests (tests/test_distributed.py), started by ``python -m torch.distributed.run``.

    python -m torch.distributed.run --nproc_per_node=2 tests/ddp_worker.py OUT_DIR CONFIG_JSON

(the test starts the two ranks itself, with the environment torchrun would set).

Trains :func:`asdlib.classify.train.fit` on the test's synthetic tone clips (the same data on
every rank) with the settings in CONFIG_JSON on the gloo backend, twice in one process group:
uninterrupted into OUT_DIR/full, and stopped at half the epochs then resumed into
OUT_DIR/resumed. On ranks other than 0, evaluating or saving raises. Each rank writes
OUT_DIR/rank<r>.json: a digest of every epoch's clip order and of the loop generator's state
after every epoch (the batches it drew), and of its final weights, per run, for the test to
compare across ranks.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch


def tones(n_per: int = 16, classes: int = 3, m: int = 16, t: int = 24, seed: int = 0):
    """The clips of tests/test_train.py: class c has a steady tone in mel bin 2 + 4c."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per)
    x = 0.5 * rng.normal(size=(len(y), m, t)).astype(np.float32)
    x[np.arange(len(y)), 2 + 4 * y] += 3.0
    return x, y


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    from asdlib.classify import distributed, train
    from asdlib.classify.config import TrainConfig

    out, cfg_json = Path(argv[0]), argv[1]
    cfg = TrainConfig.from_dict(json.loads(cfg_json), strict=True)
    d = distributed.init_from_env(cfg.device)
    assert d.active and d.world == 2, d
    if not d.main:  # no duplicated work: only rank 0 evaluates and writes
        def refuse(*args, **kwargs):
            raise AssertionError(f"rank {d.rank} evaluated or saved")
        train.evaluate_epoch = train.save_epoch = refuse
    record: dict[str, list] = {"order": [], "generator": [], "weights": []}

    def digest(t: torch.Tensor) -> str:
        return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]

    epoch_order, run_steps, finish_run = train.epoch_order, train.run_steps, train.finish_run

    def recorded_order(run, gen):
        order = epoch_order(run, gen)
        record["order"].append(digest(order))
        return order

    def recorded_steps(run, epoch, progress=False):
        losses = run_steps(run, epoch, progress)
        record["generator"].append(digest(run.gens["loop"].get_state()))
        return losses

    def recorded_finish(run, write=True):
        record["weights"].append({k: digest(v) for k, v in run.model.state_dict().items()})
        return finish_run(run, write)

    train.epoch_order, train.run_steps, train.finish_run = recorded_order, recorded_steps, recorded_finish
    try:
        x, y = tones()
        res = train.fit(x, y, cfg, out / "full", progress=False)  # uninterrupted
        assert res.epochs_run == cfg.epochs and len(res.history) == cfg.epochs, (d.rank, res.epochs_run)
        half = cfg.replace(epochs=cfg.epochs // 2)
        train.fit(x, y, half, out / "resumed", progress=False)  # stopped half-way ...
        res = train.fit(x, y, cfg, out / "resumed", progress=False)  # ... and resumed from last.pt
        assert res.epochs_run == cfg.epochs, (d.rank, res.epochs_run)
        (out / f"rank{d.rank}.json").write_text(json.dumps(record))
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
