"""``asdlib index``: check a data root against an edition's layout and count its clips.

``--edition 2020`` (the default) is the DCASE2020 index the study uses; 2021-2025 go through
:mod:`asdlib.data.editions` and print clips per dataset, machine, section, split, domain and label."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "index",
        help="check a data root's layout and print clips per type, ID (section), part, domain and label",
        description="Index <root>/{dev_data,eval_data}/<type>/<folder>/*.wav of a DCASE Task 2 edition (2020: "
        "labels of eval test clips from eval_data_list.csv; 2021-2025: from the organisers' ground truth folder "
        "given with --ground-truth) and print a count table. Exits 2 naming the offending files on a bad layout.",
    )
    p.add_argument("--root", required=True, help="data root holding dev_data/, eval_data/ and eval_data_list.csv")
    p.add_argument("--datasets", default="dev,eval", help="comma-separated subset of dev,eval (default: both)")
    p.add_argument("--types", default=None, help="comma-separated machine types (default: all present)")
    p.add_argument("--parts", default=None,
                   help="comma-separated subset of train,test (2025 also supplemental; default: all)")
    p.add_argument("--csv", default=None, metavar="FILE", help="also write the full index (one row per clip) to FILE")
    p.add_argument("--edition", default="2020", help="DCASE Task 2 edition: 2020 (default) or 2021-2025")
    p.add_argument("--ground-truth", default=None, metavar="DIR",
                   help="eval ground truth: 2020 eval_data_list.csv (default: found under the root); "
                   "2021-2025 a folder holding ground_truth_data/ (and ground_truth_domain/)")
    p.add_argument("--no-attributes-csv", action="store_true",
                   help="2022-2025: take attributes from the names only (no attributes_XX.csv needed)")
    p.set_defaults(func=run)


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..core.utils import atomic_write
    from ..data.editions import get_edition
    from ..data.index import index_dataset, pivot_summary

    if get_edition(args.edition).year != 2020:
        return _run_edition(args)
    df = index_dataset(args.root, datasets=_split(args.datasets), machine_types=_split(args.types), parts=_split(args.parts),
                       ground_truth=args.ground_truth)
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


def _run_edition(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..core.errors import ConfigError
    from ..core.utils import atomic_write
    from ..data.editions import get_edition, index_edition, summarize_edition

    ed = get_edition(args.edition)
    df = index_edition(args.root, ed, ground_truth=args.ground_truth, attributes_csv=not args.no_attributes_csv)
    allowed = {"dataset": ("dev", "eval"), "machine": ed.machines, "split": ("train", "test", "supplemental")}
    keep = pd.Series(True, index=df.index)
    for column, value in (("dataset", args.datasets), ("machine", args.types), ("split", args.parts)):
        wanted = _split(value)
        if wanted is None:
            continue
        bad = sorted(set(wanted) - set(allowed[column]))
        if bad:
            raise ConfigError(f"unknown {column} {', '.join(map(repr, bad))} for DCASE{ed.year}; "
                              f"expected some of {', '.join(allowed[column])}")
        keep &= df[column].isin(wanted)
    df = df[keep]
    table = summarize_edition(df)
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(table.to_string(index=False))
    by_dataset = df.groupby("dataset").size()
    print(f"\n{len(df)} DCASE{ed.year} clips (" + ", ".join(f"{k}: {v}" for k, v in by_dataset.items())
          + f") under {args.root}")
    if args.csv:
        with atomic_write(args.csv, "w", encoding="utf-8", newline="") as f:
            df.to_csv(f, index=False)
        print(f"index written to {args.csv}")
    return 0
