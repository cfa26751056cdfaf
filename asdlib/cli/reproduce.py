"""``asdlib reproduce``: run the whole notebook sequence with papermill into results/."""
from __future__ import annotations

import argparse

from ..study.profiles import PROFILES
from ..study.source import DATA_ENV, MODES, PROBE_TIMEOUT_S, REAL_PROFILE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="re-run the notebook sequence (papermill) and regenerate results/",
        description="Run notebooks/01..10 in order with papermill. Without --data-root, --data decides: the real "
        "DCASE2020 subset (fetched once from Zenodo into data/dcase2020-subset, then reused) where Zenodo can be "
        "reached, else the embedded synthetic dataset; likewise, without --edition-root, notebook 10 gets the real "
        "DCASE2023 development subset (data/dcase2023-small) or the synthetic DCASE2023 edition. Executed notebooks go to results/executed/, tables to "
        "results/tables/, figures to results/figures/, and all of it as web pages to results/html/index.html; unchanged finished steps are skipped (use --force to re-run).",
    )
    p.add_argument("--data-root", default=None, help="DCASE2020 root with dev_data/ and eval_data/ (default: --data)")
    p.add_argument("--edition-root", default=None, metavar="DIR",
                   help="notebook 10: a local DCASE2023 root with dev_data/ (default: --data decides between the real "
                   "development subset and the synthetic edition)")
    p.add_argument("--data", default=None, choices=MODES,
                   help=f"without --data-root (and --edition-root): auto (real subset if Zenodo answers a "
                   f"{PROBE_TIMEOUT_S:g}-s probe, else synthetic), real or synthetic (default: ${DATA_ENV}, else auto)")
    p.add_argument("--profile", default=None, choices=list(PROFILES),
                   help="size of data and models: ci (tests), smoke (synthetic, CPU), real (the real subset, CPU), "
                   "full (the study's, CUDA); default: real on real data, smoke on synthetic")
    p.add_argument("--seeds", type=int, default=None, help="seeds per experiment (default: the profile's)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--devices", default="auto", metavar="LIST",
                   help="train the notebooks' models first, in parallel, one worker per entry: GPU indices (0,1,2,3) "
                   "or cpu,cpu,...; the notebooks then reuse them (asdlib/study/parallel.py). auto (default): on a "
                   "CPU, one one-thread worker per core (at most 8); on a GPU, none; none: train in the notebooks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results-dir", default=None, help="default: <repo>/results")
    p.add_argument("--work-dir", default=None, help="caches and checkpoints (default: <repo>/runs/<profile>)")
    p.add_argument("--only", default=None, help="comma-separated notebook names to run (default: all, in order)")
    p.add_argument("--force", action="store_true", help="re-run steps even when unchanged")
    p.set_defaults(func=run)


def parse_devices(text: str | None) -> tuple[str, ...]:
    """``--devices``: ``auto`` -> ``('auto',)``; ``none`` or empty -> no pre-training; else the list."""
    devices = tuple(d.strip() for d in (text or "").split(",") if d.strip())
    return () if devices == ("none",) else devices


def run(args: argparse.Namespace) -> int:
    from ..study.pipeline import EDITION_NOTEBOOK, NOTEBOOKS, ReproduceConfig, reproduce
    from ..study.source import DCASE2023, pick_data

    notebooks = tuple(n.strip() for n in args.only.split(",") if n.strip()) if args.only else NOTEBOOKS
    data_root, note = args.data_root, "--data-root given"
    if data_root is None:
        data_root, note = pick_data(args.data)
    edition_root, edition_note = args.edition_root, "--edition-root given" if args.edition_root else ""
    if edition_root is None and EDITION_NOTEBOOK in notebooks:  # no probe for a run without notebook 10
        edition_root, edition_note = pick_data(args.data, source=DCASE2023)
    profile = args.profile or (REAL_PROFILE if data_root is not None else "smoke")
    kwargs = {}
    if args.results_dir:
        kwargs["results_dir"] = args.results_dir
    cfg = ReproduceConfig(data_root=data_root, profile=profile, device=args.device, seed=args.seed, seeds=args.seeds,
                          work_dir=args.work_dir, force=args.force, notebooks=notebooks,
                          devices=parse_devices(args.devices),
                          data_note=note, edition_root=edition_root, edition_note=edition_note, **kwargs)
    rows = reproduce(cfg)
    total = sum(r["seconds"] or 0 for r in rows if r["status"] == "ran")
    n_notebooks = sum(r["step"] in NOTEBOOKS for r in rows)
    print(f"done: {n_notebooks} notebooks, {total:.1f} s of work; results in {cfg.results_dir}, "
          f"to read in a browser: {cfg.results_dir}/html/index.html")
    return 0
