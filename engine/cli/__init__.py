"""``python -m engine``: the command-line interface.

Each sub-command lives in its own module under ``engine/cli/`` exposing ``add_parser(subparsers)``, which adds
its parser and sets ``handler`` (a function taking the parsed args and returning an exit code).
User-facing errors (:class:`engine.errors.IntrinsicLabError`) become one line on stderr and exit code 2; an
unexpected exception (a bug) becomes one line and exit code 1, without its traceback unless ``INTRINSIC_LAB_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import IntrinsicLabError

#: Set to 1 to let unexpected exceptions show their traceback (development only).
DEBUG_ENV = "INTRINSIC_LAB_DEBUG"

SUBCOMMAND_MODULES: tuple[str, ...] = (
    "engine.cli.methods",
    "engine.cli.run",
    "engine.cli.train",
    "engine.cli.weights",
    "engine.cli.worker",
    "engine.cli.bench",
    "engine.cli.cli_server",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description="Intrinsic Lab engine")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None, *, own_process: bool = False) -> int:
    """Run one command. ``own_process`` (``python -m engine``: the process runs this command only) lets a command
    act on the whole process: background work (``train``, ``bench``) lowers its CPU priority
    (:func:`engine.threads.background_priority`), and a command that declares ``fast_exit`` (``run``: everything it
    writes is closed when it returns) ends the process at once, without tearing the interpreter down (torch's
    teardown alone takes about 0.6 s on a 2-core machine). Called in-process (tests), neither happens."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.own_process = own_process
    code = _run(parser, args)
    if own_process and getattr(args, "fast_exit", False):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from ..threads import apply_thread_policy

    apply_thread_policy()  # again now that torch and OpenCV are loaded: their pools get this process's share
    try:
        return int(args.handler(args) or 0)
    except IntrinsicLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory; try a smaller input (see engine/limits.py for the budgets)", file=sys.stderr)
        return 3
    except Exception:
        # A bug, not the user's doing: one line, no traceback (INTRINSIC_LAB_DEBUG=1 shows it).
        if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
            raise
        print(f"error: internal error in `{args.command}` (a bug; rerun with {DEBUG_ENV}=1 for details)",
              file=sys.stderr)
        return 1
