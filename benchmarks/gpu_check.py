"""The CUDA path checked in one go, in at most 8 minutes on one GPU (``make gpu-check``).

Start it through ``benchmarks/gpu_check.sh`` (it picks the interpreter and bounds the time):

    bash benchmarks/gpu_check.sh OUT_DIR            # on a GPU machine (or OUT=... in the environment)
    bash benchmarks/gpu_check.sh OUT_DIR --device cpu --tiny   # the same logic at toy size on a CPU

Steps (each timed and recorded even if a later one fails; OUT_DIR/gpu_check.json is rewritten
after every step, so a killed run leaves what it had measured):

1. ``tests``: the tests marked ``gpu`` (pytest -m gpu over the files that have them);
2. ``bench``: ``benchmarks/bench_train.py`` for every model on the device, bf16 + channels_last,
   features resident on the GPU (gathered, cropped, mixed per batch) against random batches
   already there; the data path must cost at most 10 % of the step time;
3. ``e2``: two epochs of E2 (IR-ResNet50, 2048-d embedding, ArcFace, mixup, batch 64) on
   full-length synthetic log-mels (128 x 313, 41 IDs), evaluation of a dev set at epoch 2;
   epoch, step and evaluation times, peak GPU memory;
4. ``resume``: the same run with deterministic algorithms, once uninterrupted and once stopped
   after epoch 1 and resumed from last.pt: the two must end identical;
5. ``recon``: time per batch of the autoencoder and the WaveNet at the study's sizes;
6. ``compile`` (when time is left): ``torch.compile`` step time and compile time of IR-ResNet50;
7. ``extrapolation``: the time of the whole ``full`` profile on the real DCASE2020 data,
   from the measured times and the real clip counts (no measurement of the real run).

Exit status 0 when every check passed, 1 when one failed, 3 when the environment lacks torch.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

BUDGET_S = 460  # the whole check (the shell wrapper kills it at 480 s)
DATA_PATH_LIMIT = 0.10  # the input pipeline's share of a step time
MODELS = ("resnet50", "iresnet50", "mobilenetv2")

# DCASE2020 Task 2 clip counts per machine type (the task description): the development set's
# normal training clips, its test clips (normal + anomalous), and the additional training set
# of the evaluation IDs (about 1,000 clips per ID, three IDs per type).
DEV_TRAIN = {"ToyCar": 4000, "ToyConveyor": 3000, "fan": 3675, "pump": 3349, "slider": 2804, "valve": 3291}
DEV_TEST = {"ToyCar": 2459, "ToyConveyor": 3509, "fan": 1875, "pump": 856, "slider": 1290, "valve": 879}
ADD_TRAIN = {t: 3000 for t in DEV_TRAIN}
FRAMES, N_MELS = 313, 128  # 10-s clips, the study's log-mel


class Check:
    """The run's record: environment, one entry per step, the pass/fail checks; written as JSON."""

    def __init__(self, out: Path, args: argparse.Namespace) -> None:
        self.out, self.t0 = out, time.perf_counter()
        self.data: dict = {"schema": 1, "complete": False, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                           "device": args.device, "tiny": args.tiny, "budget_s": args.budget,
                           "note": "GPU figures of a real run; the extrapolation is an estimate from them",
                           "steps": {}, "checks": []}

    def left(self) -> float:
        return self.data["budget_s"] - (time.perf_counter() - self.t0)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.data["checks"].append({"name": name, "ok": bool(ok), "detail": detail})
        print(f"[gpu-check] {'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)

    def save(self) -> None:
        self.data["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        self.data["ok"] = bool(self.data["checks"]) and all(c["ok"] for c in self.data["checks"])
        tmp = self.out / ".gpu_check.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        tmp.replace(self.out / "gpu_check.json")

    @contextlib.contextmanager
    def step(self, name: str):
        """Record a step's result, time and error (a failing step is a failed check; the next runs)."""
        record: dict = {}
        t = time.perf_counter()
        print(f"[gpu-check] {name} ...", flush=True)
        try:
            yield record
        except Exception as e:  # noqa: BLE001 - report and go on with the next step
            record["error"] = f"{type(e).__name__}: {e}"
            record["traceback"] = traceback.format_exc()[-4000:]
            self.check(name, False, record["error"])
        finally:
            record["seconds"] = round(time.perf_counter() - t, 1)
            self.data["steps"][name] = record
            self.save()


# ---------------------------------------------------------------- environment

def environment(device: str) -> dict:
    import numpy as np
    import torch

    env = {"python": platform.python_version(), "executable": sys.executable, "torch": torch.__version__,
           "numpy": np.__version__, "cuda_available": torch.cuda.is_available(), "cuda": torch.version.cuda,
           "cpu_count": os.cpu_count(), "machine": platform.machine()}
    head = REPO / ".git" / "HEAD"
    with contextlib.suppress(Exception):
        ref = head.read_text().strip()
        env["git"] = (REPO / ".git" / ref[5:]).read_text().strip() if ref.startswith("ref: ") else ref
    missing = []
    for mod in ("scipy", "pandas", "sklearn", "soundfile", "tqdm", "pytest"):
        try:
            __import__(mod)
        except Exception:  # noqa: BLE001
            missing.append(mod)
    env["missing_packages"] = missing
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(0)
        env |= {"gpu": p.name, "gpu_memory_GiB": round(p.total_memory / 2**30, 1), "capability": f"{p.major}.{p.minor}",
                "multiprocessors": p.multi_processor_count, "bf16": torch.cuda.is_bf16_supported(),
                "cudnn": torch.backends.cudnn.version()}
    return env


# ---------------------------------------------------------------- 1. tests

def run_tests(timeout: float, files: list[str] | None = None) -> dict:
    """pytest -m gpu over the test files that mark tests gpu; counts of passed/failed/skipped/errors."""
    if files is None:
        files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                       if "mark.gpu" in p.read_text(encoding="utf-8"))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "-rfEs",
           "--continue-on-collection-errors", *files]
    try:
        # ASDLIB_NO_SPEED: the nested session skips tests/conftest.py's machine-speed benchmark (seconds)
        r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                           env=os.environ | {"ASDLIB_NO_SPEED": "1"})
        out, rc = r.stdout + r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), "timeout"
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", out)}
    counts["errors"] = counts.pop("error", 0) + counts.pop("errors", 0)
    # files that could not be imported for want of a package this machine lacks (e.g. soundfile)
    uncollected = []
    for block in re.split(r"_{3,} ERROR collecting ", out)[1:]:
        missing = re.search(r"No module named '([\w.]+)'", block.split("\n___")[0])
        if missing:
            uncollected.append((block.split()[0], missing.group(1)))
    return {"files": files, "returncode": rc, "counts": counts, "uncollected": uncollected, "tail": out[-3000:]}


# ---------------------------------------------------------------- 2. bench

def bench(device: str, tiny: bool, timeout: float, steps: int | None = None, models=MODELS) -> dict:
    from bench_train import run_benchmarks

    cuda = device.startswith("cuda")
    size = dict(batch=8, n_mels=32, frames=48, clips=64) if tiny else dict(batch=64, n_mels=N_MELS, frames=FRAMES,
                                                                           clips=4096)
    overrides = {"width": 0.0625, "embedding_dim": 32} if tiny else None
    rows = run_benchmarks(models, device, steps or (2 if tiny else 30), 1 if tiny else 8, feeds=("resident", "synthetic"),
                          overrides=overrides, timeout=timeout, threads=1 if not cuda else None, isolate=not tiny, **size)
    data_path = {}
    for m in models:
        by = {r.get("feed"): r for r in rows if r.get("model") == m and "error" not in r}
        if {"resident", "synthetic"} <= set(by):
            # share of the resident step spent on the data path: 1 - t_synthetic / t_resident
            data_path[m] = round(1.0 - by["synthetic"]["step_ms"] / by["resident"]["step_ms"], 4)
    return {"rows": rows, "data_path_share": data_path, "size": size}


# ---------------------------------------------------------------- 3./4. E2 at the study's size

def synthetic_logmels(n_per: int, classes: int, n_mels: int, frames: int, seed: int, anomalous: bool = False):
    """Log-mel-like float16 clips: each class a few steady tones over a dB noise floor."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per)
    x = rng.normal(-45.0, 6.0, size=(len(y), n_mels, frames)).astype(np.float32)
    for c in range(classes):
        bins = (np.array([3, 11, 29]) * (c + 1)) % (n_mels - 2) + 1  # (3,) the class's tones
        x[np.ix_(np.flatnonzero(y == c), bins)] += 25.0
    if anomalous:
        x[np.arange(len(y)), rng.integers(1, n_mels - 1, len(y))] += 20.0  # a stray tone per clip
    return x.astype(np.float16), y


def e2_config(device: str, tiny: bool, **kw):
    from asdlib.classify.config import TrainConfig
    from asdlib.study.profiles import get_profile
    from asdlib.study.registry import get_experiment

    base = TrainConfig().replace(dict(get_profile("full").classifier) | dict(get_experiment("integrated").overrides))
    over = {"epochs": 2, "eval_every": 2, "device": device, "log_every": 10**6}
    if tiny:
        over |= {"width": 0.0625, "depths": (1, 1, 1, 1), "embedding_dim": 32, "batch_size": 16}
    return base.replace(over | kw)


def e2_data(tiny: bool):
    import numpy as np
    import pandas as pd

    from asdlib.classify.evaluate import EvalSet

    n_mels, frames = (32, 48) if tiny else (N_MELS, FRAMES)
    x, y = synthetic_logmels(4 if tiny else 48, 41, n_mels, frames, seed=0)
    xn, yn = synthetic_logmels(1 if tiny else 4, 41, n_mels, frames, seed=1)
    xa, ya = synthetic_logmels(1 if tiny else 4, 41, n_mels, frames, seed=2, anomalous=True)
    cls = np.r_[yn, ya]
    meta = pd.DataFrame({"machine_type": [f"t{c // 7}" for c in cls], "machine_id": [f"{c % 7:02d}" for c in cls],
                         "label": np.r_[np.zeros(len(yn), int), np.ones(len(ya), int)], "class": cls})
    return x, y, EvalSet(np.concatenate([xn, xa]), meta)


def e2_run(device: str, tiny: bool, work: Path) -> dict:
    import torch

    from asdlib.classify.train import fit

    x, y, dev = e2_data(tiny)
    cfg = e2_config(device, tiny)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    res = fit(x, y, cfg, work / "e2", eval_sets={"dev": dev}, progress=False, resume=False)
    wall = time.perf_counter() - t
    h = res.history
    n_train = int(round(len(y) * (1 - cfg.val_fraction)))
    steps = max(1, n_train // cfg.batch_size)
    train_s = [float(a - b) for a, b in zip(h["time_s"], h["eval_s"])]
    out = {"config": {k: v for k, v in cfg.to_dict().items() if k in ("model", "width", "embedding_dim", "batch_size",
                                                                       "amp", "channels_last", "epochs")},
           "loss": cfg.loss.kind, "clips": len(y), "input": f"{x.shape[1]}x{x.shape[2]}", "steps_per_epoch": steps,
           "epoch_train_s": [round(v, 3) for v in train_s], "eval_s": [round(float(v), 3) for v in h["eval_s"]],
           "step_s": round(train_s[-1] / steps, 5), "wall_s": round(wall, 2), "n_val": int(len(y) - n_train),
           "n_dev": len(dev.meta), "train_loss": [round(float(v), 5) for v in h["train_loss"]],
           "dev_auc": float(h["dev_auc"].iloc[-1]) if "dev_auc" in h else None}
    # evaluation cost per clip: epoch 1 evaluates the held-out clips only, epoch 2 also the dev set
    out["val_s_per_clip"] = h["eval_s"].iloc[0] / max(1, out["n_val"])
    out["dev_s_per_clip"] = max(0.0, h["eval_s"].iloc[-1] - h["eval_s"].iloc[0]) / max(1, out["n_dev"])
    if cuda:
        out["peak_memory_GiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        out["peak_reserved_GiB"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    return out


def resume_check(device: str, tiny: bool, work: Path) -> dict:
    import numpy as np
    import pandas as pd
    import torch

    from asdlib.classify.checkpoint import load_checkpoint
    from asdlib.classify.train import fit

    x, y, dev = e2_data(tiny)
    keep = np.flatnonzero(np.arange(len(y)) % 3 == 0) if not tiny else np.arange(len(y))  # a third: 16 per ID
    x, y = x[keep], y[keep]
    cfg = e2_config(device, tiny, deterministic=True)

    class Stop(Exception):
        pass

    def stop_after_1(epoch, row):
        if epoch == 1:
            raise Stop

    fit(x, y, cfg, work / "whole", eval_sets={"dev": dev}, progress=False, resume=False)
    with contextlib.suppress(Stop):
        fit(x, y, cfg, work / "resumed", eval_sets={"dev": dev}, progress=False, resume=False, callback=stop_after_1)
    fit(x, y, cfg, work / "resumed", eval_sets={"dev": dev}, progress=False, resume=True)
    a, b = (load_checkpoint(work / d / "last.pt")["model"] for d in ("whole", "resumed"))
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    ha, hb = (pd.read_csv(work / d / "history.csv") for d in ("whole", "resumed"))
    cols = [c for c in ha.columns if c not in ("time_s", "eval_s")]
    hist = float(np.nanmax(np.abs(ha[cols].to_numpy(float) - hb[cols].to_numpy(float))))
    return {"clips": len(y), "bit_identical": diff == 0.0 and hist == 0.0, "max_weight_diff": diff,
            "max_history_diff": hist, "epochs": [int(e) for e in hb["epoch"]], "deterministic": True,
            "torch_deterministic": torch.are_deterministic_algorithms_enabled()}


# ---------------------------------------------------------------- 5. reconstruction models

def recon_timing(device: str, tiny: bool) -> dict:
    """Seconds per training batch of the autoencoder (512 frame vectors) and the WaveNet (16 clips)."""
    import numpy as np

    from asdlib.recon import ReconConfig, WaveNetConfig, fit_autoencoder, fit_wavenet

    n_mels, frames = (32, 48) if tiny else (N_MELS, FRAMES)
    x, _ = synthetic_logmels(64 if tiny else 768, 1, n_mels, frames, seed=3)  # enough clips for k2 WaveNet batches
    rows = np.arange(len(x))
    out = {}

    def per_batch(fn, k1: int, k2: int) -> float:
        t = []
        for k in (k1, k2):
            s = time.perf_counter()
            fn(k)
            t.append(time.perf_counter() - s)
        return max(1e-6, (t[1] - t[0]) / (k2 - k1))

    k1, k2 = (1, 3) if tiny else (5, 40)
    out["autoencoder_batch_s"] = per_batch(lambda k: fit_autoencoder(
        x, rows, ReconConfig(epochs=1, device=device, max_batches_per_epoch=k, val_fraction=0.0), progress=False), k1, k2)
    wcfg = WaveNetConfig(n_mels=n_mels, num_ids=1) if not tiny else WaveNetConfig(
        n_mels=n_mels, num_ids=1, residual_channels=8, skip_channels=8, dilations=(1, 2))
    out["wavenet_batch_s"] = per_batch(lambda k: fit_wavenet(
        x, rows, ReconConfig.wavenet_defaults(epochs=1, device=device, max_batches_per_epoch=k, val_fraction=0.0),
        wcfg, id_index=[0] * len(rows), progress=False), k1, k2)
    out["autoencoder_batch"] = ReconConfig().batch_size
    out["wavenet_batch"] = ReconConfig.wavenet_defaults().batch_size
    return out


# ---------------------------------------------------------------- 7. the full profile's time

def extrapolate(e2: dict, bench_rows: list[dict], recon: dict | None) -> dict:
    """Hours of the ``full`` profile on the real data (one seed), from the measured times.

    Classifier run: epochs x steps x step time (E2's, scaled by the bench ratio for other
    backbones) + held-out evaluation every epoch + dev-set evaluation every ``eval_every``
    epochs; E5: a frozen backbone's step costs about a forward pass (the evaluation's
    per-clip time); reconstruction: epochs x batches x measured batch time.
    """
    from asdlib.classify.config import TrainConfig
    from asdlib.core.machines import MACHINE_TYPES
    from asdlib.recon import ReconConfig
    from asdlib.study.profiles import get_profile
    from asdlib.study.registry import EXPERIMENTS

    prof = get_profile("full")
    cps = {r["model"]: r["clips_per_s"] for r in bench_rows if r.get("feed") == "resident" and "error" not in r}
    step_s = e2["step_s"]
    items = {}
    for exp in EXPERIMENTS.values():
        if exp.kind != "classifier":
            continue
        cfg = TrainConfig().replace(dict(prof.classifier) | dict(exp.overrides))
        scale = cps.get("iresnet50", 1.0) / cps[cfg.model] if cfg.model in cps and "iresnet50" in cps else 1.0
        total = 0.0
        for types in exp.groups.values():
            n = sum(DEV_TRAIN[t] + ADD_TRAIN[t] for t in types)
            n_val = int(round(cfg.val_fraction * n))
            steps = (n - n_val) // cfg.batch_size
            evals = cfg.epochs // cfg.eval_every
            total += cfg.epochs * (steps * step_s * scale + n_val * e2["val_s_per_clip"] * scale) \
                + evals * sum(DEV_TEST[t] for t in types) * e2["dev_s_per_clip"] * scale
        items[exp.name] = total
    ft = TrainConfig().replace(dict(prof.classifier) | dict(prof.finetune))
    fwd = e2["dev_s_per_clip"]
    items["transfer"] = 2 * sum(ft.epochs * (DEV_TRAIN[t] + ADD_TRAIN[t]) * fwd
                                + (ft.epochs // ft.eval_every) * DEV_TEST[t] * fwd for t in MACHINE_TYPES)
    if recon:
        ae, wn = ReconConfig(**prof.autoencoder), ReconConfig.wavenet_defaults(**prof.wavenet)
        vectors = {t: (DEV_TRAIN[t] + ADD_TRAIN[t]) * (FRAMES - 4) for t in MACHINE_TYPES}  # 5-frame context
        items["autoencoder"] = sum(ae.epochs * vectors[t] / ae.batch_size * recon["autoencoder_batch_s"]
                                   for t in MACHINE_TYPES)
        items["wavenet"] = sum(wn.epochs * (DEV_TRAIN[t] + ADD_TRAIN[t]) / wn.batch_size * recon["wavenet_batch_s"]
                               for t in MACHINE_TYPES)
    total = sum(items.values())
    return {"item_seconds": {k: round(v, 1) for k, v in items.items()}, "total_hours": round(total / 3600, 2),
            "seeds": prof.n_seeds, "clips_train": sum(DEV_TRAIN.values()) + sum(ADD_TRAIN.values()),
            "not_included": ["feature extraction (once)", "embedding the test sets for tables, t-SNE and scorers"]
            + ([] if recon else ["reconstruction models (not measured)"]),
            "note": "an estimate from this machine's measured times, one seed; the real run is not measured"}


# ---------------------------------------------------------------- 6. torch.compile

def compile_timing(device: str, tiny: bool, timeout: float) -> dict:
    from bench_train import run_benchmarks

    size = dict(batch=8, n_mels=32, frames=48, clips=64) if tiny else dict(batch=64, n_mels=N_MELS, frames=FRAMES,
                                                                           clips=4096)
    overrides = {"width": 0.0625, "embedding_dim": 32, "depths": (1, 1, 1, 1)} if tiny else None
    # tiny: dynamo's tracing only (backend "eager"): inductor's code generation takes minutes on a small CPU
    rows = run_benchmarks(["iresnet50"], device, 2 if tiny else 30, 2 if tiny else 5, feeds=("resident",),
                          overrides=overrides, compile="eager" if tiny else True, timeout=timeout, isolate=not tiny,
                          **size)
    return {"rows": rows, "backend": "eager" if tiny else "inductor"}


# ---------------------------------------------------------------- the report

def table(data: dict) -> str:
    lines = [f"gpu-check on {data.get('environment', {}).get('gpu', data['device'])} "
             f"(torch {data.get('environment', {}).get('torch')}), {data.get('elapsed_s')} s"]
    for c in data["checks"]:
        lines.append(f"  {'PASS' if c['ok'] else 'FAIL'}  {c['name']:<24} {c['detail']}")
    rows = data["steps"].get("bench", {}).get("rows", [])
    if rows:
        lines.append(f"  {'model':<12} {'feed':<10} {'clips/s':>9} {'step ms':>9} {'peak GiB':>9}")
        for r in rows:
            if "error" in r:
                lines.append(f"  {r.get('model', '?'):<12} {r.get('feed', '?'):<10} error: {r['error'][:60]}")
                continue
            peak = r.get("peak_mem_MiB", r.get("peak_rss_MiB", 0)) / 1024
            lines.append(f"  {r['model']:<12} {r['feed']:<10} {r['clips_per_s']:>9.1f} {r['step_ms']:>9.2f} {peak:>9.2f}")
    ex = data["steps"].get("extrapolation", {})
    if "total_hours" in ex:
        lines.append(f"  full profile (estimate): {ex['total_hours']} h  " +
                     ", ".join(f"{k} {v / 3600:.2f} h" for k, v in ex["item_seconds"].items()))
    lines.append(f"  {'ALL PASSED' if data.get('ok') else 'SOME CHECKS FAILED'}; details in gpu_check.json")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="The CUDA path checked in one go (see the module docstring).")
    p.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "results" / "gpu_check"),
                   help="folder for gpu_check.json (default: $OUT, else results/gpu_check)")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --tiny: the logic on a CPU)")
    p.add_argument("--tiny", action="store_true", help="toy sizes: checks the script itself, measures nothing")
    p.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for the whole check")
    p.add_argument("--skip", default="", help="comma-separated steps to skip (tests,bench,e2,resume,recon,compile)")
    p.add_argument("--test-files", default=None, help="comma-separated test files (default: those marking gpu tests)")
    p.add_argument("--models", default=",".join(MODELS), help="backbones to benchmark (default: all)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    try:
        import torch
    except ImportError:
        print(f"gpu-check: {sys.executable} cannot import torch; run it with the project's environment "
              "(.venv/bin/python after `make venv`, or a python3 that has torch)", file=sys.stderr)
        return 3
    rec = Check(out, args)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        rec.data["environment"] = environment("cpu")
        rec.check("cuda available", False, f"torch {torch.__version__} sees no CUDA device")
        rec.save()
        print(table(rec.data))
        return 1
    rec.data["environment"] = environment(args.device)
    rec.save()
    work = out / "work"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    if "tests" not in skip:
        with rec.step("tests") as r:
            files = args.test_files.split(",") if args.test_files else None
            r |= run_tests(timeout=min(150.0, rec.left() - 200), files=files)
            c = r["counts"]
            unexplained = c.get("errors", 0) - len(r["uncollected"])
            ok = r["returncode"] in (0, 1, 5) and not c.get("failed") and unexplained <= 0
            if cuda:
                ok = ok and c.get("passed", 0) > 0
            lacking = "; not collected for want of a package: " + ", ".join(
                f"{f} ({m})" for f, m in r["uncollected"]) if r["uncollected"] else ""
            rec.check("tests -m gpu", ok, f"{c.get('passed', 0)} passed, {c.get('failed', 0)} failed, "
                      f"{c.get('skipped', 0)} skipped, {c.get('errors', 0)} errors{lacking}")
    bench_rows: list[dict] = []
    if "bench" not in skip:
        with rec.step("bench") as r:
            r |= bench(args.device, args.tiny, timeout=max(60.0, min(180.0, rec.left() - 150)),
                       models=tuple(m for m in args.models.split(",") if m))
            bench_rows = r["rows"]
            errors = [f"{x.get('model')}/{x.get('feed')}" for x in bench_rows if "error" in x]
            rec.check("bench all models", not errors, "ok" if not errors else f"errors: {', '.join(errors)}")
            shares = r["data_path_share"]
            worst = max(shares.values()) if shares else float("nan")
            ok = bool(shares) and (args.tiny or worst <= DATA_PATH_LIMIT)
            rec.check("data path <= 10 % of a step", ok, ", ".join(f"{m} {100 * v:.1f} %" for m, v in shares.items())
                      + (" (tiny: not judged)" if args.tiny else ""))
    e2 = None
    if "e2" not in skip:
        with rec.step("e2") as r:
            r |= e2_run(args.device, args.tiny, work)
            e2 = r
            finite = all(v == v and abs(v) < 1e6 for v in r["train_loss"])
            rec.check("E2 two epochs", finite, f"{r['steps_per_epoch']} steps/epoch, {r['step_s'] * 1000:.1f} ms/step, "
                      f"epoch {r['epoch_train_s'][-1]:.1f} s + eval {r['eval_s'][-1]:.1f} s"
                      + (f", peak {r['peak_memory_GiB']} GiB" if "peak_memory_GiB" in r else ""))
    if "resume" not in skip:
        with rec.step("resume") as r:
            r |= resume_check(args.device, args.tiny, work / "resume")
            ok = r["max_weight_diff"] <= 1e-5 and r["max_history_diff"] <= 1e-5
            rec.check("resume matches", ok, f"bit-identical: {r['bit_identical']}, max weight diff "
                      f"{r['max_weight_diff']:.3g}, max history diff {r['max_history_diff']:.3g}")
    recon = None
    if "recon" not in skip and rec.left() > 60:
        with rec.step("recon") as r:
            r |= recon_timing(args.device, args.tiny)
            recon = r
            rec.check("reconstruction timing", True, f"AE {1000 * r['autoencoder_batch_s']:.2f} ms/batch, "
                      f"WaveNet {1000 * r['wavenet_batch_s']:.2f} ms/batch")
    if e2 is not None:
        with rec.step("extrapolation") as r:
            r |= extrapolate(e2, bench_rows, recon)
            rec.check("full-profile estimate", r["total_hours"] > 0, f"{r['total_hours']} h for one seed "
                      "(an estimate from this run's times)")
    if "compile" not in skip:
        if rec.left() > (30 if args.tiny else 150):
            with rec.step("compile") as r:
                r |= compile_timing(args.device, args.tiny, timeout=max(30.0, rec.left() - 20))
                row = r["rows"][0]
                eager = next((x for x in bench_rows if x.get("model") == "iresnet50" and x.get("feed") == "resident"
                              and "error" not in x), None)
                late = "no result within" in row.get("error", "")  # out of time: not measured, not a failure
                detail = row.get("error") or (f"{row['step_ms']:.1f} ms/step (eager "
                                              f"{eager['step_ms'] if eager else '?'}), compile + warm-up {row['warmup_s']} s"
                                              f" [{r['backend']}]")
                rec.check("torch.compile", late or "error" not in row, ("not measured: " if late else "") + detail)
        else:
            rec.data["steps"]["compile"] = {"skipped": f"only {rec.left():.0f} s left"}
    rec.data["complete"] = True
    rec.save()
    print(table(rec.data), flush=True)
    return 0 if rec.data["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
