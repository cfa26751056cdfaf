"""Peak memory of autoencoder training from a memmap, at two dataset sizes.

The DCASE2020 baseline stacks every 5-frame vector of a machine type into one float32
array before training: ``N * 309 * 640 * 4`` bytes (about 3.2 GB for 4000 clips). asdlib's
:class:`~asdlib.recon.frames.FrameVectorStream` reads ``chunk_clips`` clips at a time from
the float16 cache instead. This script writes a temporary float16 memmap of ``N`` random
clips ``(N, 128, 313)``, then trains the baseline autoencoder for one epoch (or
``--max-batches``) in a *fresh subprocess* per size, so each process's peak RSS is its own.

Reported per size:
- ``tracemalloc_peak``: peak of Python/NumPy allocations during training (the chunks),
  after a warm-up fit on 4 clips so that lazy imports are not counted;
- ``peak_anon``: the largest anonymous resident memory (RssAnon, sampled every 5 ms), i.e.
  memory the process really owns, minus the baseline before training starts;
- ``maxrss``: ``ru_maxrss`` at the end, which also counts pages of the memmapped file that
  were read (file-backed, reclaimable page cache, not memory the process allocates);
- ``in_ram_estimate``: what the baseline's all-vectors array would take.

Usage: ``python benchmarks/bench_recon_memory.py --sizes 500 4000 [--max-batches 300]``
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np

from asdlib.recon import ReconConfig

N_MELS, N_FRAMES_CLIP, N_FRAMES = 128, 313, 5


def _rss_anon_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def make_memmap(path: Path, n: int, seed: int = 0) -> None:
    """Random log-mel-like float16 clips, written in blocks so the writer stays small."""
    mm = np.memmap(path, dtype=np.float16, mode="w+", shape=(n, N_MELS, N_FRAMES_CLIP))
    rng = np.random.default_rng(seed)
    for s in range(0, n, 100):
        k = min(100, n - s)
        mm[s:s + k] = (rng.normal(-40, 10, (k, N_MELS, N_FRAMES_CLIP))).astype(np.float16)
    mm.flush()
    del mm


def child(path: str, n: int, chunk_clips: int, max_batches: int | None) -> dict:
    """Runs in a fresh interpreter: train one epoch and measure."""
    import torch

    from asdlib.recon import fit_autoencoder

    torch.set_num_threads(1)  # the memory figures do not depend on it; timings are 1 thread
    feats = np.memmap(path, dtype=np.float16, mode="r", shape=(n, N_MELS, N_FRAMES_CLIP))
    # Warm-up on 4 in-memory clips: lazy imports and torch's one-time buffers are then not
    # counted as training memory.
    warm = np.zeros((4, N_MELS, N_FRAMES_CLIP), dtype=np.float16)
    fit_autoencoder(warm, np.arange(4), ReconConfig(epochs=1, val_fraction=0.0, device="cpu",
                                                    max_batches_per_epoch=2), progress=False)
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak, stop = [_rss_anon_kb()], threading.Event()
    base_anon = peak[0]

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_anon_kb())
            time.sleep(0.005)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    tracemalloc.start()
    t0 = time.perf_counter()
    cfg = ReconConfig(epochs=1, batch_size=512, chunk_clips=chunk_clips, val_fraction=0.0, device="cpu",
                      max_batches_per_epoch=max_batches)
    _, hist = fit_autoencoder(feats, np.arange(n), cfg, progress=False)
    seconds = time.perf_counter() - t0
    _, tm_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stop.set()
    th.join()
    vectors = n * (N_FRAMES_CLIP - N_FRAMES + 1)
    batches = -(-vectors // 512) if max_batches is None else min(max_batches, -(-vectors // 512))
    return {"clips": n, "chunk_clips": chunk_clips, "batches": batches, "seconds": round(seconds, 1),
            "tracemalloc_peak_mb": tm_peak / 2**20, "peak_anon_delta_mb": (peak[0] - base_anon) / 1024,
            "maxrss_before_mb": maxrss_before / 1024,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "in_ram_estimate_mb": vectors * N_MELS * N_FRAMES * 4 / 2**20,
            "memmap_file_mb": n * N_MELS * N_FRAMES_CLIP * 2 / 2**20, "train_loss": hist[-1]["train_loss"]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 4000])
    ap.add_argument("--chunk-clips", type=int, default=ReconConfig.chunk_clips, help="clips read at a time")
    ap.add_argument("--max-batches", type=int, default=None, help="stop each epoch early (default: full epoch)")
    ap.add_argument("--child", nargs=2, metavar=("PATH", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.chunk_clips, args.max_batches)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"feat_{n}.f16"
            make_memmap(path, n)
            cmd = [sys.executable, __file__, "--child", str(path), str(n), "--chunk-clips", str(args.chunk_clips)]
            if args.max_batches is not None:
                cmd += ["--max-batches", str(args.max_batches)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            path.unlink()
    print(f"{'clips':>6} {'batches':>7} {'s':>6} {'tracemalloc MB':>14} {'anon peak MB':>12} "
          f"{'maxRSS before->after MB':>23} {'memmap MB':>9} {'in-RAM est. MB':>14}")
    for r in rows:
        print(f"{r['clips']:>6} {r['batches']:>7} {r['seconds']:>6} {r['tracemalloc_peak_mb']:>14.1f} "
              f"{r['peak_anon_delta_mb']:>12.1f} {r['maxrss_before_mb']:>11.1f}->{r['maxrss_mb']:<10.1f} "
              f"{r['memmap_file_mb']:>9.1f} {r['in_ram_estimate_mb']:>14.1f}")


if __name__ == "__main__":
    main()
