"""``asdlib synth``: write the embedded synthetic dataset (DCASE2020 layout) to a folder."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth",
        help="write a synthetic DCASE2020 Task 2 dataset (the default data of the notebooks)",
        description="Write a synthetic dataset in the official DCASE2020 Task 2 layout: physical sound "
        "models of the six machine types with simulated faults. It lets the whole notebook chain run "
        "on a CPU in minutes; it is not the real data, and its figures say nothing about it.",
    )
    p.add_argument("--root", required=True, help="folder to write (created; must be empty or hold the same dataset)")
    p.add_argument("--edition", type=int, default=2020, choices=(2020, 2022, 2023, 2024, 2025),
                   help="the DCASE edition whose layout and names to write (default 2020). 2022-2025: dev and "
                   "first-shot eval machine types, source/target domains (10 target training clips per section; "
                   "the target attribute value shifts the machine's sound), attributes_XX.csv and the eval "
                   "ground truth under ground_truth/")
    p.add_argument("--profile", default="smoke", choices=("tiny", "smoke", "full"),
                   help="2020: smoke: 2-s clips, 20 train + 50 + 50 test per ID (a minute or so); full: 10-s clips, "
                   "250 train + 50 + 50 test per ID (~4.6 GB, ~15-20 CPU-minutes). 2022-2025 (per section): tiny: "
                   "1-s clips, 6 + 10 train, 4 test per domain and label; smoke: 2-s, 30 + 10, 12; full: 10-s, "
                   "240 + 10, 50. Default: smoke")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files (default 0)")
    p.add_argument("--severity", type=float, default=1.0,
                   help="fault strength; 1.0 is calibrated to be neither trivial nor hopeless (default 1.0)")
    p.add_argument("--types", nargs="+", metavar="TYPE", default=None,
                   help="machine types to write (default: all of the edition's)")
    p.add_argument("--workers", type=int, default=1, help="processes to use (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace whatever is at --root")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from ..core.errors import ConfigError
    from ..data.synth import MANIFEST_FILE, generate_dataset, read_manifest

    start = time.perf_counter()
    if args.edition != 2020:
        from ..data.synth_edition import generate_edition

        root = generate_edition(args.root, args.edition, args.profile, seed=args.seed, machines=args.types,
                                severity=args.severity, overwrite=args.overwrite, progress=not args.quiet)
        manifest = read_manifest(root) or {}
        print(f"wrote {manifest.get('files', '?')} synthetic DCASE{args.edition}-layout clips ({args.profile}, seed "
              f"{args.seed}) to {root} in {time.perf_counter() - start:.1f} s")
        print(f"note: SYNTHETIC data made by asdlib, not the DCASE{args.edition} data (see {root / 'SYNTHETIC.md'})")
        return 0
    if args.profile == "tiny":
        raise ConfigError("profile 'tiny' is for the later editions (--edition 2022-2025)")
    root = generate_dataset(args.root, profile=args.profile, seed=args.seed, machine_types=args.types,
                            severity=args.severity, progress=not args.quiet, overwrite=args.overwrite,
                            workers=args.workers)
    manifest = read_manifest(root) or {}
    print(f"wrote {manifest.get('files', '?')} synthetic clips ({args.profile}, seed {args.seed}, "
          f"severity {args.severity}) to {root} in {time.perf_counter() - start:.1f} s")
    print(f"note: SYNTHETIC data made by asdlib, not the DCASE2020 data (see {root / 'SYNTHETIC.md'}, {MANIFEST_FILE})")
    return 0
