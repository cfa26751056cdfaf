"""``asdlib features``: index a data root and build (or reuse) its log-mel feature cache."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "features",
        help="compute the log-mel feature cache of a data root (reused when nothing changed)",
        description="Index <root>, then compute 128-bin log-mel features (n_fft 1024, hop 512, dB) of every clip "
        "into a float16 cache keyed by the settings and the files' sizes and times. A second run with "
        "the same files and settings reuses the cache. Every clip gets the dataset's known clip length "
        "(10 s for the real data: ToyCar keeps its first 10 s; a synthetic root's length from its manifest) "
        "unless --duration says otherwise; a shorter clip is an error naming the file unless --pad allows padding.",
    )
    p.add_argument("--root", required=True, help="data root holding dev_data/, eval_data/ and eval_data_list.csv")
    p.add_argument("--cache-dir", default=None, help="where caches live (default: $ASDLIB_CACHE_DIR or ~/.cache/asdlib/features)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda[:k] (default: auto)")
    p.add_argument("--batch-size", type=int, default=64, help="clips per log-mel batch (default: 64)")
    p.add_argument("--workers", type=int, default=2, help="threads reading WAV files (default: 2)")
    p.add_argument("--datasets", default="dev,eval", help="comma-separated subset of dev,eval (default: both)")
    p.add_argument("--types", default=None, help="comma-separated machine types (default: all present)")
    p.add_argument("--parts", default="train,test", help="comma-separated subset of train,test (default: both)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="clip length in the cache (default: the dataset's known length: 10 s for the real "
                   "data, a synthetic root's own)")
    p.add_argument("--pad", choices=("error", "wrap", "zeros"), default="error",
                   help="what to do with clips shorter than --duration (default: error)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def run(args: argparse.Namespace) -> int:
    from ..core.errors import ConfigError
    from ..data.index import index_dataset
    from ..features.cache import build_feature_cache
    from ..features.logmel import FeatureConfig

    if args.batch_size < 1 or args.workers < 1:
        raise ConfigError("--batch-size and --workers must be at least 1")
    index = index_dataset(args.root, datasets=_split(args.datasets), machine_types=_split(args.types), parts=_split(args.parts))
    cfg = FeatureConfig(duration_s=args.duration, short_clips=args.pad)
    store = build_feature_cache(
        index, cfg, cache_dir=args.cache_dir, device=args.device, batch_size=args.batch_size,
        num_workers=args.workers, progress=not args.no_progress,
    )
    meta = store.meta
    status = "reused" if store.reused else "built"
    speed = f"{meta['clips_per_s']} clips/s on {meta['device']}" if meta.get("clips_per_s") else ""
    source = meta.get("clip_length", {}).get("source")
    print(f"{status}: {len(store)} clips, features {store.shape} float16, {store.config.duration_s:g} s per clip"
          + (f" ({source})" if source else ""))
    print(f"cache: {store.path}")
    print(f"{'built' if not store.reused else 'originally built'} {meta['created']} at {speed}")
    return 0
