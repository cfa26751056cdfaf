"""``asdlib <command>`` (also ``python -m asdlib``): one module per command under ``asdlib.cli``.

Each command module defines ``register(subparsers)`` that adds its parser and sets
``func=run`` (a callable taking the parsed args and returning an exit code). Modules keep
their heavy imports inside ``run`` so that ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..core.errors import AsdlibError

COMMANDS = ("synth", "download", "index", "features", "train", "score", "reproduce")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asdlib",
        description="Anomalous sound detection study (DCASE2020 Task 2): data, features, models, notebooks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"asdlib.cli.{name}")
        except ModuleNotFoundError as e:  # a command whose module is not written yet
            if e.name != f"asdlib.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AsdlibError as e:
        print(f"asdlib {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"asdlib {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
