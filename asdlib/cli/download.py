"""``asdlib download``: fetch the DCASE2020 Task 2 data from Zenodo into the official layout."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "download",
        help="download, verify (md5) and extract the DCASE2020 Task 2 data (about 20 GB in all)",
        description="Download the Zenodo records of the study into ROOT/downloads/, verify them, and extract "
        "dev zips into ROOT/dev_data/ and additional/eval zips into ROOT/eval_data/; the ground truth goes to "
        "ROOT/eval_data_list.csv. Interrupted downloads resume; finished files are skipped on a rerun.",
    )
    p.add_argument("--root", required=True, help="data root (created if absent)")
    p.add_argument("--types", default=None, help="comma-separated machine types, e.g. fan,pump (default: all six)")
    p.add_argument("--parts", default="dev,additional,eval,truth",
                   help="comma-separated subset of dev,additional,eval,truth (default: all)")
    p.add_argument("--base-url", default=None,
                   help="records base URL (default: $ASDLIB_ZENODO_URL or https://zenodo.org/record)")
    p.add_argument("--keep-archives", action="store_true", help="keep the zips in ROOT/downloads/ after extraction")
    p.add_argument("--retries", type=int, default=3, help="reconnections (resumed) after a broken connection (default 3)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server on each read (default 60)")
    p.add_argument("--dry-run", action="store_true", help="list the files, URLs and sizes and what is already done")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--subset", default=None, metavar="NAME",
                   help="fetch only the clips of a named subset profile (small: 30 train clips per ID, 10 + 10 test; "
                        "tiny) out of the Zenodo zips with HTTP range requests, without downloading the archives")
    p.add_argument("--edition", default="2020",
                   help="DCASE Task 2 edition: 2020 (default, the study's data) or 2021-2025 (range reads of the "
                        "edition's archives: --subset small|tiny, or every member without --subset)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..data.download import download, is_done
    from ..data.editions import get_edition
    from ..data.zenodo import file_url, select_files

    if get_edition(args.edition).year != 2020:
        from ..data.edition_subset import run_cli as run_edition

        return run_edition(args)
    if args.subset:
        from ..data.subset import run_cli

        return run_cli(args)
    files = select_files(args.types, args.parts)
    if args.dry_run:
        for f in files:
            size = f"{f.size / 1e9:.2f} GB" if f.size else "size unknown"
            state = "done" if is_done(Path(args.root).expanduser().resolve(), f) else "to do"
            print(f"{state:6} {f.part:10} {size:>13}  {file_url(f, args.base_url)}")
        return 0
    results = download(args.root, files=files, base_url=args.base_url, progress=not args.no_progress,
                       timeout=args.timeout, retries=args.retries, keep_archives=args.keep_archives)
    for r in results:
        print(f"{r.status:10} {r.file.filename}" + (f" -> {', '.join(r.targets)}" if r.targets else ""))
    return 0
