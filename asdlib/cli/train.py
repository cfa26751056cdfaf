"""``asdlib train``: index a data root, build its feature cache, train an ID classifier, calibrate.

Train clips of every selected type (dev and eval IDs) teach the classifier; the dev test
set (and the eval test set when its ground truth is there) is scored every
``--eval-every`` epochs for the study's checkpoint selection. Afterwards each best
checkpoint gets per-ID decision thresholds from the held-out normal training clips.

Under torchrun (``torchrun --nproc_per_node=K -m asdlib train ...``) the same command is one
DistributedDataParallel run over K processes (:mod:`asdlib.classify.distributed`): rank 0
builds the feature cache while the others wait, then every rank trains its share of each
global batch, and rank 0 alone evaluates, writes checkpoints, calibrates and prints.
"""
from __future__ import annotations

import argparse

from ..classify.config import TrainConfig
from ..core.config import add_arguments, overrides_from_args
from ..study.registry import EXPERIMENTS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train an ID classifier (the study's Method 1) on a data root",
        description="Index <root>, compute or reuse its log-mel cache, train an ID classifier on the normal training "
        "clips of the selected machine types (all six: the 41-ID integrated model), keep the best checkpoints "
        "(dev AUC+pAUC, the study's optimistic rule, and held-out validation loss, which sees no test labels), "
        "and calibrate per-ID decision thresholds. Re-running with the same --out resumes from last.pt. "
        "Under torchrun (torchrun --nproc_per_node=K -m asdlib train ...) it is one DistributedDataParallel run "
        "over K processes with the same global --batch-size.",
    )
    p.add_argument("--root", required=True, help="data root holding dev_data/ (and eval_data/)")
    p.add_argument("--types", default=None, help="comma-separated machine types (default: all present)")
    p.add_argument("--out", default="runs/train", help="output folder (default: runs/train)")
    p.add_argument("--cache-dir", default=None, help="feature cache folder (default: $ASDLIB_CACHE_DIR or ~/.cache/asdlib/features)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="clip length in the cache (default: the dataset's known length, 10 s for the real data)")
    p.add_argument("--pad", choices=("error", "wrap", "zeros"), default="error",
                   help="what to do with clips shorter than the clip length (default: error)")
    p.add_argument("--scorer", default="softmax", help="scorer to calibrate thresholds for (default: softmax)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if --out holds last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--experiment", default=None, choices=[n for n, e in EXPERIMENTS.items() if e.kind == "classifier"],
                   help="start from a registered experiment's settings (asdlib/study/registry.py); flags below "
                   "override them (default: the study's E2 settings)")
    add_arguments(p, TrainConfig, title="training settings (TrainConfig; defaults are the study's)")
    p.set_defaults(func=run)


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def run(args: argparse.Namespace) -> int:
    from ..classify import distributed

    base = EXPERIMENTS[args.experiment].overrides if args.experiment else {}
    cfg = TrainConfig().replace(dict(base) | overrides_from_args(args))
    dist = distributed.init_from_env(cfg.device)  # a no-op outside torchrun
    try:
        return _train(args, cfg, dist)
    finally:
        distributed.shutdown()


def _train(args: argparse.Namespace, cfg: TrainConfig, dist) -> int:
    from pathlib import Path

    import numpy as np

    from ..classify import distributed
    from ..classify.evaluate import EvalSet
    from ..classify.threshold import calibrate_run, class_of
    from ..classify.train import fit
    from ..core.errors import AsdlibError
    from ..core.machines import MACHINE_TYPES, class_labels
    from ..core.utils import resolve_device
    from ..data.index import index_dataset
    from ..features.cache import build_feature_cache
    from ..features.logmel import FeatureConfig

    progress = not args.no_progress and dist.main
    index = index_dataset(args.root, machine_types=_split(args.types))
    types = [t for t in MACHINE_TYPES if t in set(index["machine_type"])]
    names = [f"{t}/{i}" for t, i in class_labels(types)]
    device = distributed.rank_device(cfg.device, dist)

    def cache():
        return build_feature_cache(index, FeatureConfig(duration_s=args.duration, short_clips=args.pad), cache_dir=args.cache_dir,
                                   device=device, progress=progress)

    # rank 0 builds the cache; then the first rank of every node opens it (or, where --cache-dir is not
    # shared between nodes, builds the node's own); then the other ranks open it: never two builders at once
    store = cache() if dist.main else None
    distributed.barrier()
    if store is None and dist.local_rank == 0:
        store = cache()
    distributed.barrier()
    store = store or cache()
    idx = store.index
    is_train = (idx["part"] == "train").to_numpy()
    if not is_train.any():
        raise AsdlibError(f"no training clips under {args.root} for {', '.join(types)}")
    x_train, m_train = store.subset(is_train)
    y_train = class_of(m_train, names)
    eval_sets = {}
    for ds in ("dev", "eval") if dist.main else ():  # rank 0 alone evaluates
        sel = ((idx["part"] == "test") & (idx["dataset"] == ds) & idx["label"].isin([0, 1])).to_numpy()
        if sel.any():
            x, m = store.subset(sel)
            eval_sets[ds] = EvalSet(np.asarray(x), m.assign(**{"class": class_of(m, names)}))
    if dist.main:
        procs = f" in {dist.world} processes (global batch {cfg.batch_size})" if dist.active else ""
        print(f"training {cfg.model} ({cfg.loss.kind}) on {len(y_train)} clips, {len(names)} IDs of {', '.join(types)}"
              f"{procs}; eval sets: {', '.join(f'{k} ({len(v.meta)})' for k, v in eval_sets.items()) or 'none'}")
    res = fit(x_train, y_train, cfg, args.out, eval_sets=eval_sets or None, class_names=names,
              feature_config=store.config.to_dict(), data_info=store.data_info, progress=progress,
              resume=not args.no_resume)
    if not dist.main:
        return 0

    cals = calibrate_run(res, x_train, m_train, scorer=args.scorer, device=resolve_device(device))
    targets = {f"best_{k}": b.path for k, b in res.best.items()} | {"last": res.last_path}
    for label, ckpt in targets.items():
        line = f"{label}: {Path(ckpt).name}"
        if label != "last":
            b = res.best[label[5:]]
            line += f" (epoch {b.epoch}, value {b.value:.4f})"
        if label in cals:
            methods = sorted({v["method"] for v in cals[label]["thresholds"].values()})
            line += f"; thresholds for {len(cals[label]['thresholds'])} IDs ({'/'.join(methods)})"
        print(line)
    last = res.history.iloc[-1].to_dict() if len(res.history) else {}
    print("last epoch: " + ", ".join(f"{k}={v:.4g}" for k, v in last.items() if isinstance(v, float)))
    print(f"outputs: {Path(args.out).resolve()} (history.csv, summary.json, *.pt, *.thresholds.json)")
    return 0
