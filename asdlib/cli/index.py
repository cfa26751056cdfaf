"""``asdlib index``: check a data root against the DCASE2020 layout and count its clips."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "index",
        help="check a data root's layout and print clips per type, ID, part and label",
        description="Index <root>/{dev_data,eval_data}/<type>/{train,test}/*.wav (labels of eval test clips "
        "from eval_data_list.csv) and print a count table. Exits 2 naming the offending files on a bad layout.",
    )
    p.add_argument("--root", required=True, help="data root holding dev_data/, eval_data/ and eval_data_list.csv")
    p.add_argument("--datasets", default="dev,eval", help="comma-separated subset of dev,eval (default: both)")
    p.add_argument("--types", default=None, help="comma-separated machine types (default: all present)")
    p.add_argument("--parts", default="train,test", help="comma-separated subset of train,test (default: both)")
    p.add_argument("--csv", default=None, metavar="FILE", help="also write the full index (one row per clip) to FILE")
    p.set_defaults(func=run)


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..core.utils import atomic_write
    from ..data.index import index_dataset, pivot_summary

    df = index_dataset(args.root, datasets=_split(args.datasets), machine_types=_split(args.types), parts=_split(args.parts))
    table = pivot_summary(df)
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(table.to_string())
    by_dataset = df.groupby("dataset").size()
    print(f"\n{len(df)} clips (" + ", ".join(f"{k}: {v}" for k, v in by_dataset.items()) + f") under {args.root}")
    if args.csv:
        with atomic_write(args.csv, "w", encoding="utf-8", newline="") as f:
            df.to_csv(f, index=False)
        print(f"index written to {args.csv}")
    return 0
