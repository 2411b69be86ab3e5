"""``python -m engine cli-server start|stop|status|serve``: the warm process behind ``python -m engine run``
(``engine/cli_server.py``)."""

from __future__ import annotations

import json
import time

from .. import cli_server
from ..errors import IntrinsicLabError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "cli-server", help="keep torch and the methods imported in a background process for `run`",
        description="start: a background process imports torch and every method once; while it runs, `python -m "
                    "engine run` forks from it instead of importing them again (same code, same outputs). It exits "
                    f"after {cli_server.IDLE_ENV} seconds idle (default {cli_server.DEFAULT_IDLE_S:.0f}). "
                    f"{cli_server.MODE_ENV}=auto starts it on the first `run`; =off never uses it.")
    p.add_argument("action", choices=("start", "stop", "status", "serve"),
                   help="serve: run the server in this process (start runs it in the background)")
    p.add_argument("--json", action="store_true", help="status as JSON")
    p.set_defaults(handler=handle)


def _describe(info: dict) -> str:
    age = time.time() - float(info.get("started", time.time()))
    return (f"CLI server {info['pid']} on {info['socket']}: up {age:.0f} s, {info['served']} command(s) served, "
            f"{info['running']} running, exits after {info['idle_s']:.0f} s idle")


def handle(args) -> int:
    try:
        cli_server.idle_seconds()
        if args.action == "serve":  # (python -m engine cli-server serve never gets here: engine/__main__.py)
            return cli_server.serve_forever()
        if args.action == "start":
            info = cli_server.start()
            print(("already running: " if info.get("already_running") else "started: ") + _describe(info))
            return 0
        if args.action == "stop":
            print("stopped" if cli_server.stop() else "no CLI server was running for this checkout")
            return 0
        info = cli_server.status()
        if args.json:
            print(json.dumps(info))
        else:
            print(_describe(info) if info else "no CLI server is running for this checkout")
        return 0
    except (ValueError, cli_server.ServerError) as exc:
        raise IntrinsicLabError(str(exc)) from None
