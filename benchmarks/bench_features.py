"""Feature extraction speed: the DCASE2020 baseline's way versus asdlib's feature cache, side by side.

(a) baseline: one file at a time, ``librosa.load`` + ``librosa.feature.melspectrogram``
    (n_fft 1024, hop 512, 128 mels, power 2) + ``20 / 2 * log10(mel + eps)``, as the
    official DCASE2020 Task 2 baseline's ``file_to_vector_array`` does before framing;
(b) asdlib: ``build_feature_cache`` into a fresh temporary cache (threaded reading, batched
    torch log-mel, float16 memmap), timed end to end including the header check and the write.

Both run on the same files on the same machine, one after the other, each after an untimed
warm-up on the first few files (imports and first-call setup are not timed for either).

Without ``--root`` it writes ``--clips`` ten-second 16-kHz noise+tone clips into a temporary
folder first. Nothing is written to the repository unless ``--json FILE`` is given.

    .venv/bin/python benchmarks/bench_features.py --clips 400
    .venv/bin/python benchmarks/bench_features.py --root /path/to/data --baseline-clips 200
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def make_clips(folder: Path, n: int, seconds: float, sr: int = 16000, seed: int = 0) -> pd.DataFrame:
    """n PCM-16 clips (noise plus a random tone) in a DCASE-like layout; returns an index table."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    rows = []
    for i in range(n):
        rel = f"dev_data/fan/train/normal_id_00_{i:08d}.wav"
        x = 0.05 * rng.standard_normal(t.size) + 0.2 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t)
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(folder / rel, x.astype(np.float32), sr, subtype="PCM_16")
        rows.append(dict(path=str(folder / rel), relpath=rel, dataset="dev", part="train",
                         machine_type="fan", machine_id="00", label=0, file=Path(rel).name))
    return pd.DataFrame(rows)


def baseline(paths: list[str]) -> tuple[float, float, np.ndarray]:
    """The DCASE2020 baseline's feature code path, one file at a time; (seconds, CPU seconds, last features)."""
    import librosa

    c0, t0 = time.process_time(), time.perf_counter()
    log_mel = None
    for p in paths:
        y, sr = librosa.load(p, sr=None, mono=False)
        mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=1024, hop_length=512, n_mels=128, power=2.0)
        log_mel = 20.0 / 2.0 * np.log10(mel + sys.float_info.epsilon)
    return time.perf_counter() - t0, time.process_time() - c0, log_mel


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=None, help="a DCASE2020 data root (default: generate clips in a temp folder)")
    ap.add_argument("--clips", type=int, default=400, help="clips to generate without --root (default 400)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of generated clips (default 10)")
    ap.add_argument("--baseline-clips", type=int, default=None, help="time the baseline on the first K clips only")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the results to FILE")
    args = ap.parse_args(argv)

    import torch

    from asdlib.core.utils import resolve_device
    from asdlib.features.cache import build_feature_cache
    from asdlib.features.logmel import FeatureConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="asdlib-bench-") as tmp:
        tmp = Path(tmp)
        if args.root:
            from asdlib.data.index import index_dataset

            index = index_dataset(args.root)
        else:
            t0 = time.perf_counter()
            index = make_clips(tmp / "data", args.clips, args.seconds)
            print(f"generated {len(index)} clips of {args.seconds:g} s in {time.perf_counter() - t0:.1f} s")
        # the real data's known length (10 s) with --root; the generated clips' own length without
        fcfg = FeatureConfig() if args.root else FeatureConfig(duration_s=args.seconds)
        paths = list(index["path"])
        k = len(paths) if args.baseline_clips is None else min(args.baseline_clips, len(paths))
        device = resolve_device(args.device)
        # warm-up, untimed, for both paths alike (imports, first-call setup, the files in the page cache):
        # the baseline on a few files; asdlib builds a cache of the same few files in another folder
        warm = min(8, len(paths))
        baseline(paths[:warm])
        build_feature_cache(index.iloc[:warm], fcfg, cache_dir=tmp / "warm-up", device=device,
                            batch_size=args.batch_size, num_workers=args.workers, progress=False)
        for p in paths:  # every file read once, so neither timed pass pays the first disk read
            Path(p).read_bytes()
        load_before = os.getloadavg()
        base_s, base_cpu, base_feat = baseline(paths[:k])
        c0, t0 = time.process_time(), time.perf_counter()
        store = build_feature_cache(index, fcfg, cache_dir=tmp / "cache", device=device,
                                    batch_size=args.batch_size, num_workers=args.workers, progress=False)
        ours_s, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        reused = build_feature_cache(index, fcfg, cache_dir=tmp / "cache", device=device, progress=False)
        reuse_s = time.perf_counter() - t0
        assert reused.reused and reused.shape == store.shape
        # same numbers as the baseline (its librosa>=0.10 pads with zeros, ours reflects: compare inner frames)
        row = int(np.flatnonzero(store.index["relpath"].to_numpy() == index["relpath"].iloc[k - 1])[0])
        diff = float(np.abs(store.features[row][:, 2:-2].astype(np.float32) - base_feat[:, 2:-2]).max())
        result = {
            "clips": len(paths), "clip_seconds": store.config.duration_s, "baseline_clips": k,
            "baseline_clips_per_s": round(k / base_s, 1), "asdlib_clips_per_s": round(len(paths) / ours_s, 1),
            "speedup": round((len(paths) / ours_s) / (k / base_s), 2),
            # CPU seconds are what a loaded machine does not distort much: clips per CPU-second
            "baseline_clips_per_cpu_s": round(k / base_cpu, 1), "asdlib_clips_per_cpu_s": round(len(paths) / ours_cpu, 1), "reuse_seconds": round(reuse_s, 3),
            "max_abs_diff_db_inner_frames": round(diff, 4), "device": device,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "workers": args.workers,
            "batch_size": args.batch_size, "loadavg_1m_before": round(load_before[0], 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
            "python": platform.python_version(), "machine": platform.machine(),
        }
    print(f"baseline (librosa, one file at a time): {result['baseline_clips_per_s']:8.1f} clips/s ({k} clips)")
    print(f"asdlib build_feature_cache ({device}):     {result['asdlib_clips_per_s']:8.1f} clips/s ({len(paths)} clips)")
    print(f"CPU cost: baseline {result['baseline_clips_per_cpu_s']} clips per CPU-second, asdlib "
          f"{result['asdlib_clips_per_cpu_s']} (x{result['asdlib_clips_per_cpu_s'] / result['baseline_clips_per_cpu_s']:.1f}); "
          f"an idle {os.cpu_count()}-core machine could reach about "
          f"{result['asdlib_clips_per_cpu_s'] * min(os.cpu_count(), args.workers):.0f} clips/s")
    print(f"speed-up: {result['speedup']}x; reuse of the cache: {reuse_s * 1000:.0f} ms; "
          f"max |diff| vs baseline (inner frames): {diff:.3f} dB")
    print(f"machine: {result['cpu_count']} cores, torch threads {result['torch_threads']} (1 per worker during a CPU "
          f"build), workers "
          f"{args.workers}, batch {args.batch_size}, load average {result['loadavg_1m_before']} -> "
          f"{result['loadavg_1m_after']} (other processes share the machine)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
