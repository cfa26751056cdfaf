"""Training throughput (clips/s) and peak memory per backbone at the study's input size.

Input: log-mel 1 x 128 mels x 313 frames (10 s at hop 512), batch 64, the trainer's own
step (:func:`asdlib.classify.train.make_batch` + :func:`asdlib.classify.train.train_step`: mixup, margin
loss, Adam, schedule). Each model runs in a fresh subprocess so that the CPU peak
(``ru_maxrss``) is that model's alone.

On CUDA two feeds are timed: ``resident`` (a float16 feature array resident on the GPU,
gathered by random index per batch, cropped and mixed, as :func:`asdlib.classify.train.fit`
does) and ``synthetic`` (a float32 batch already on the GPU: the upper bound with no input
pipeline at all); both in bf16 autocast with channels_last, the trainer's CUDA defaults.
On CPU only ``resident`` is timed (the features in host memory: there is no transfer).

    .venv/bin/python benchmarks/bench_train.py --steps 3          # CPU: a few steps only
    .venv/bin/python benchmarks/bench_train.py --device cuda --steps 50
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import sys
import time

MODELS = {"resnet50": "softmax", "iresnet50": "arcface", "mobilenetv2": "arcface"}


def bench_one(model_name: str, device: str, steps: int, warmup: int, batch: int, n_mels: int, frames: int,
              feed: str, n_clips: int, threads: int | None, overrides: dict | None = None,
              compile: bool | str = False) -> dict:
    import numpy as np
    import torch

    from asdlib.classify.config import TrainConfig, build_model
    from asdlib.classify.losses import build_loss
    from asdlib.classify.train import make_batch, train_step

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    cfg = TrainConfig.from_dict({"model": model_name, "loss.kind": MODELS[model_name], "batch_size": batch, "device": device}
                                | dict(overrides or {}), strict=True)
    num_classes = 41
    model = build_model(cfg, num_classes).to(dev).train()
    if dev.type == "cuda" and cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    # compile: True (inductor, as TrainConfig.compile) or a torch.compile backend name ("eager": tracing only)
    net = torch.compile(model, **({} if compile is True else {"backend": compile})) if compile else model
    opt = torch.optim.Adam(model.parameters(), lr=cfg.schedule.max_lr, weight_decay=cfg.weight_decay)
    loss_fn = build_loss(cfg.loss)
    use_amp = cfg.amp and dev.type == "cuda"
    gen = torch.Generator(device=dev).manual_seed(0)
    mix_gen = torch.Generator().manual_seed(1)
    rng = np.random.default_rng(0)
    x_all = torch.from_numpy(rng.normal(-40, 15, size=(n_clips, n_mels, frames)).astype(np.float16)).to(dev)
    y_all = torch.from_numpy(rng.integers(0, num_classes, n_clips)).to(dev)
    xs = torch.randn(batch, 1, n_mels, frames, device=dev)
    if dev.type == "cuda" and cfg.channels_last:
        xs = xs.contiguous(memory_format=torch.channels_last)
    lam = 0.7  # mixup-like targets: two classes per row, as the resident feed's mixup gives
    a, b = torch.randint(0, num_classes, (2, batch), device=dev)
    ys = lam * torch.nn.functional.one_hot(a, num_classes).float() + (1 - lam) * torch.nn.functional.one_hot(b, num_classes).float()

    def step() -> torch.Tensor:
        if feed == "synthetic":
            return train_step(net, opt, None, loss_fn, xs, ys, use_amp)
        idx = torch.randint(0, n_clips, (batch,), generator=gen, device=dev)
        xb, target = make_batch(x_all, y_all, idx, cfg, num_classes, dev, gen, mix_gen)
        return train_step(net, opt, None, loss_fn, xb, target, use_amp)

    import tracemalloc

    t_warm = time.perf_counter()
    for _ in range(warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    warmup_s = time.perf_counter() - t_warm
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        tracemalloc.start()
    t0 = time.perf_counter()
    acc = torch.zeros((), device=dev)
    for _ in range(steps):
        acc += step()
    float(acc)  # one sync at the end
    dt = time.perf_counter() - t0
    out = {"model": model_name, "loss": MODELS[model_name], "device": device, "feed": feed, "batch": batch,
           "input": f"1x{n_mels}x{frames}", "steps": steps, "seconds": round(dt, 3),
           "clips_per_s": round(steps * batch / dt, 2), "step_ms": round(1000 * dt / steps, 2),
           "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
           "bf16": use_amp, "channels_last": bool(cfg.channels_last and dev.type == "cuda"), "compile": compile,
           "warmup_s": round(warmup_s, 2)}
    if dev.type == "cuda":
        out["peak_mem_MiB"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        out["gpu"] = torch.cuda.get_device_name(dev)
    else:
        _, py_peak = tracemalloc.get_traced_memory()
        out["peak_rss_MiB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB
        out["peak_python_heap_MiB"] = round(py_peak / 2**20, 2)  # tracemalloc: Python objects only
        out["threads"] = torch.get_num_threads()
    return out


def _child(queue: mp.Queue, kwargs: dict) -> None:
    try:
        queue.put(bench_one(**kwargs))
    except Exception as e:  # report, don't hang the parent
        queue.put({"model": kwargs["model_name"], "feed": kwargs["feed"], "error": f"{type(e).__name__}: {e}"})


def run_benchmarks(models, device: str, steps: int, warmup: int, batch: int = 64, n_mels: int = 128,
                   frames: int = 313, clips: int = 256, threads: int | None = None, feeds=("resident",),
                   overrides: dict | None = None, compile: bool | str = False, timeout: float | None = None,
                   echo: bool = True, isolate: bool = True) -> list[dict]:
    """One row per (model, feed), each timed in a fresh process (its own peak memory), or in this
    one (``isolate=False``: quicker, for toy sizes; peak memory is then the whole process's)."""
    ctx = mp.get_context("spawn")
    rows = []
    for name in models:
        for feed in feeds:
            kw = dict(model_name=name, device=device, steps=steps, warmup=warmup, batch=batch, n_mels=n_mels,
                      frames=frames, feed=feed, n_clips=clips, threads=threads, overrides=overrides, compile=compile)
            if not isolate:
                try:
                    row = bench_one(**kw)
                except Exception as e:  # report, go on with the next
                    row = {"model": name, "feed": feed, "error": f"{type(e).__name__}: {e}"}
                rows.append(row)
                if echo:
                    print(json.dumps(row), flush=True)
                continue
            q = ctx.Queue()
            proc = ctx.Process(target=_child, args=(q, kw))
            proc.start()
            try:
                row = q.get(timeout=timeout)
            except Exception:  # queue.Empty: too slow, or the child died without a word
                proc.kill()
                row = {"model": name, "feed": feed, "error": f"no result within {timeout} s (or the process died)"}
            proc.join()
            rows.append(row)
            if echo:
                print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--steps", type=int, default=None, help="timed steps (default: 3 on CPU, 50 on CUDA)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 1 on CPU, 10 on CUDA)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--n-mels", type=int, default=128)
    p.add_argument("--frames", type=int, default=313)
    p.add_argument("--clips", type=int, default=None, help="clips in the resident array (default: 256 CPU, 4096 CUDA)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (warmup_s then includes it)")
    args = p.parse_args(argv)

    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    cuda = device.startswith("cuda")
    steps = args.steps or (50 if cuda else 3)
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    feeds = ("resident", "synthetic") if cuda else ("resident",)
    rows = run_benchmarks(args.models.split(","), device, steps, warmup, args.batch, args.n_mels, args.frames,
                          args.clips or (4096 if cuda else 256), args.threads, feeds, compile=args.compile)
    env = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
           "cpu_count": __import__("os").cpu_count()}
    print(json.dumps({"environment": env}))
    if args.json:
        from asdlib.core.utils import atomic_write_text

        atomic_write_text(args.json, json.dumps({"environment": env, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
