"""``asdlib reproduce``: run the whole notebook sequence with papermill into results/."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="re-run the notebook sequence (papermill) and regenerate results/",
        description="Run notebooks/01..09 in order with papermill. Without --data-root the embedded synthetic "
        "dataset is generated first. Executed notebooks go to results/executed/, tables to results/tables/, "
        "figures to results/figures/, and all of it as web pages to results/html/index.html; unchanged finished "
        "steps are skipped (use --force to re-run).",
    )
    p.add_argument("--data-root", default=None, help="DCASE2020 root with dev_data/ and eval_data/ (default: synthetic)")
    p.add_argument("--profile", default="smoke", choices=["ci", "smoke", "full"],
                   help="size of data and models: ci (tests), smoke (CPU, minutes), full (the study's, CUDA)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results-dir", default=None, help="default: <repo>/results")
    p.add_argument("--work-dir", default=None, help="caches and checkpoints (default: <repo>/runs/<profile>)")
    p.add_argument("--only", default=None, help="comma-separated notebook names to run (default: all, in order)")
    p.add_argument("--force", action="store_true", help="re-run steps even when unchanged")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..study.pipeline import NOTEBOOKS, ReproduceConfig, reproduce

    kwargs = {}
    if args.results_dir:
        kwargs["results_dir"] = args.results_dir
    if args.only:
        kwargs["notebooks"] = tuple(n.strip() for n in args.only.split(",") if n.strip())
    cfg = ReproduceConfig(data_root=args.data_root, profile=args.profile, device=args.device, seed=args.seed,
                          work_dir=args.work_dir, force=args.force, notebooks=kwargs.pop("notebooks", NOTEBOOKS),
                          **kwargs)
    rows = reproduce(cfg)
    total = sum(r["seconds"] or 0 for r in rows if r["status"] == "ran")
    n_notebooks = sum(r["step"] in NOTEBOOKS for r in rows)
    print(f"done: {n_notebooks} notebooks, {total:.1f} s of work; results in {cfg.results_dir}, "
          f"to read in a browser: {cfg.results_dir}/html/index.html")
    return 0
