"""``python -m engine``: the command-line interface.

Each sub-command lives in its own module under ``engine/cli/`` exposing ``add_parser(subparsers)``, which adds
its parser and sets ``handler`` (a function taking the parsed args and returning an exit code).
User-facing errors (:class:`engine.errors.IntrinsicLabError`) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import IntrinsicLabError

SUBCOMMAND_MODULES: tuple[str, ...] = (
    "engine.cli.methods",
    "engine.cli.run",
    "engine.cli.train",
    "engine.cli.weights",
    "engine.cli.worker",
    "engine.cli.bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description="Intrinsic Lab engine")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except IntrinsicLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
