"""``python -m engine worker``: take jobs from the store and run them (one worker per GPU)."""

from __future__ import annotations

import logging
import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("worker", help="run queued jobs from the database")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--once", action="store_true", help="take at most one job, then exit")
    p.add_argument("--until-empty", action="store_true", help="exit when no job is left to take")
    p.add_argument("--lease", type=float, default=60.0, metavar="SECONDS",
                   help="how long a job stays ours without a renewal (renewed every third of it; default 60)")
    p.add_argument("--poll", type=float, default=0.25, metavar="SECONDS",
                   help="pause between looks at an empty queue (default 0.25)")
    p.add_argument("--warm", default=None, metavar="METHODS",
                   help="methods to warm while the queue is empty: all (default: every image method served), none, "
                        "or a comma-separated list (env INTRINSIC_LAB_WARM)")
    p.add_argument("--worker-id", default=None, help="name shown in the dashboard (default host:pid:device)")
    p.add_argument("--method", action="append", default=None, metavar="NAME",
                   help="only take jobs of this method (repeatable; default every method the device runs)")
    p.add_argument("--quiet", action="store_true", help="log warnings only")
    p.set_defaults(handler=handle)


def handle(args) -> int:
    # Imported here: the other sub-commands must not need the database packages.
    from ..worker import Worker, WorkerConfig

    if args.lease <= 0 or args.poll < 0:
        raise SystemExit("error: --lease must be positive and --poll not negative")
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = WorkerConfig(worker_id=args.worker_id, device=args.device, lease_seconds=args.lease,
                          poll_seconds=args.poll, warm=args.warm, methods=tuple(args.method) if args.method else None)
    try:
        worker = Worker(config)
    except RuntimeError as exc:  # e.g. --device cuda:1 on a machine without it
        print(f"error: {exc}", file=sys.stderr)
        return 2
    worker.check_schema()
    worker.install_signal_handlers()
    worker.run(once=args.once, until_empty=args.until_empty)
    return 0
