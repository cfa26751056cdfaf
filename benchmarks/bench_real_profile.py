"""The `real` profile end to end on a locally served subset of the `small` subset's shape.

Builds Zenodo-like archives (``tests/zenodo_server.py``) holding the `small` subset's counts per ID
(30 training clips, 10 normal + 10 anomalous test clips, dev and eval IDs) as 10-s clips: the real
clips of ``../shared/data`` first where present, synthetic tone-and-noise clips filling the rest.
Serves them on 127.0.0.1, fetches the subset as ``asdlib download --subset small`` does, then runs
the whole notebook sequence with the `real` profile (the ``asdlib reproduce`` path) and prints the
download's requests and bytes and each step's seconds (from ``timings.csv``).

The fill clips are not machine sounds: the tables this writes (under ``--out``) time the
profile and prove its code path; they are no detection result.

    OMP_NUM_THREADS=2 python benchmarks/bench_real_profile.py --out /tmp/bench_real_profile
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the local Zenodo stand-in


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/bench_real_profile", help="data, work and results folders go here")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per experiment (default: the profile's)")
    ap.add_argument("--seconds", type=float, default=10.0, help="clip length of the served clips")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--devices", default="auto", help="as asdlib reproduce's (default auto: one one-thread "
                    "training worker per CPU core; none: train inside the notebooks)")
    args = ap.parse_args(argv)

    from zenodo_server import FakeZenodo, build_fake_zenodo, real_data_available

    from asdlib.cli.reproduce import parse_devices
    from asdlib.data.subset import PROFILES, fetch_subset
    from asdlib.study.pipeline import ReproduceConfig, reproduce

    out = Path(args.out)
    small = PROFILES["small"]
    t0 = time.perf_counter()
    fake = build_fake_zenodo(n_train=small.n_train, n_test=small.n_test, n_eval_test=small.eval_test,
                             real=real_data_available(), seconds=args.seconds, compression="stored")
    print(f"archives built in {time.perf_counter() - t0:.0f} s ({len(fake.clips)} clips, "
          f"real clips of ../shared: {real_data_available()})", flush=True)
    root = out / "subset"
    with FakeZenodo(fake) as server:
        t0 = time.perf_counter()
        result = fetch_subset(root, small, base_url=server.url, progress=False, min_interval=0.0)
        fetch_s = time.perf_counter() - t0
        served = sum(entry.sent for entry in server.log)
    print(f"download: {result.fetched} clips, {result.requests} requests ({len(server.log)} seen by the server, "
          f"redirect hops included), {result.bytes_received:,} bytes received ({served:,} served), {fetch_s:.0f} s "
          "(no pause between requests)", flush=True)

    cfg = ReproduceConfig(data_root=str(root), profile="real", device=args.device, seeds=args.seeds,
                          devices=parse_devices(args.devices),
                          results_dir=str(out / "results"), work_dir=str(out / "work"),
                          data_note="the small subset's shape served on 127.0.0.1 (benchmark: fill clips "
                                    "are synthetic, the figures are no result)")
    t0 = time.perf_counter()
    reproduce(cfg, progress=False)
    wall = time.perf_counter() - t0
    with open(out / "results" / "timings.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    print("\nstep, seconds")
    for r in rows:
        print(f"{r['step']}, {float(r['seconds']):.1f}")
    print(f"notebooks and site: {sum(float(r['seconds']) for r in rows):.0f} s; wall {wall:.0f} s; "
          f"machine speed {rows[0].get('machine_speed', '?')} (asdlib.study.speed)")


if __name__ == "__main__":
    main()
