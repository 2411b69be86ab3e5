"""``python -m engine bench METHODS... --dataset NAME --split test [--data DIR]`` and ``python -m engine datasets``.

``bench`` queues one job per (method, item) on the job queue, works on them in this process too (unless
``--no-work``: then GPU workers alone do it), scores each result, and prints the leaderboard. Rerunning the same
command re-uses everything already computed; an interrupted run resumes. ``@baselines`` names every baseline
that fits the dataset.

``--on ray`` (a local Ray cluster), ``--on ray://HOST:PORT`` or ``--on HOST:PORT`` (an existing one) does the jobs as
Ray actors instead, batched per method, writing the same rows (:mod:`engine.distributed.ray_bench`).

``datasets register NAME KIND DIR`` validates a folder with its adapter and records it under NAME;
``datasets list`` shows what is registered; ``datasets check KIND DIR`` only validates.
"""

from __future__ import annotations

import json
import sys

from ..errors import ParameterError


def _params(items: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for text in items:
        key, sep, value = text.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot:
            raise ParameterError(f"--param expects METHOD.NAME=VALUE, got {text!r}")
        out.setdefault(method.strip(), {})[name.strip()] = value.strip()
    return out


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("bench", help="benchmark methods on a dataset (jobs on the queue)")
    p.add_argument("methods", nargs="+", help="method names; @baselines = every baseline fitting the dataset")
    p.add_argument("--dataset", required=True, help="registered dataset name, or an adapter kind with --data")
    p.add_argument("--split", default="test", help="split (default test; 'all' = every item)")
    p.add_argument("--data", default=None, help="dataset folder (overrides a registered one)")
    p.add_argument("--param", "-p", action="append", default=[], metavar="METHOD.NAME=VALUE")
    p.add_argument("--weights", action="append", default=[], metavar="METHOD=SET", help="weight set per method")
    p.add_argument("--no-work", action="store_true", help="only queue and collect; leave the work to workers")
    p.add_argument("--device", default=None, help="device for the in-process work (auto, cpu, cuda:N; not with --on)")
    p.add_argument("--timeout", type=float, default=None, help="stop waiting after this many seconds")
    p.add_argument("--csv", default=None, help="also write the per-image scores to this CSV file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    ray = p.add_argument_group("Ray (--on)")
    ray.add_argument("--on", default=None, metavar="ray|ray://HOST:PORT|HOST:PORT",
                     help="do the jobs on a Ray cluster: 'ray' starts one on this machine")
    ray.add_argument("--workers", type=int, default=None,
                     help="Ray actors (default: one per GPU, else one per --threads CPUs of the cluster)")
    ray.add_argument("--batch", type=int, default=8, help="jobs per Ray call, all of one method (default 8)")
    ray.add_argument("--threads", type=int, default=None, help="torch threads of each CPU actor (default 1)")
    ray.add_argument("--gpus-per-worker", type=float, default=None,
                     help="GPUs per GPU actor (default 1 when the cluster has GPUs; 0: CPU actors only)")
    p.set_defaults(handler=handle_bench)

    d = subparsers.add_parser("datasets", help="register, list or check benchmark dataset folders")
    actions = d.add_subparsers(dest="action", required=True)
    reg = actions.add_parser("register", help="validate a folder and record it under a name")
    reg.add_argument("name")
    reg.add_argument("kind")
    reg.add_argument("folder")
    reg.add_argument("--notes", default=None)
    actions.add_parser("list", help="registered datasets and the adapter kinds")
    chk = actions.add_parser("check", help="validate a folder with an adapter (prints every problem)")
    chk.add_argument("kind")
    chk.add_argument("folder")
    d.set_defaults(handler=handle_datasets)


def _ensure_schema() -> None:
    # A fresh data folder (or one from before the benchmark tables) is brought up to date, as the dashboard does.
    from db.session import migrate

    migrate()


def handle_datasets(args) -> int:
    from db import benchmark_store as bstore
    from db.session import session_scope

    _ensure_schema()
    from ..datasets import ADAPTERS, get_adapter

    if args.action == "check" or args.action == "register":
        adapter = get_adapter(args.kind)
        folder = adapter.validate(args.folder)
        counts = {s: len(adapter.item_ids(folder, s)) for s in adapter.splits}
        print(f"{folder}: valid {adapter.title} folder; items per split: "
              + ", ".join(f"{s} {n}" for s, n in counts.items()))
        if args.action == "register":
            with session_scope() as session:
                bstore.register_dataset(session, args.name, adapter.kind, str(folder.resolve()), args.notes)
            print(f"registered {args.name!r} → {adapter.kind} at {folder.resolve()}")
        return 0
    with session_scope() as session:
        for row in bstore.list_datasets(session):
            print(f"{row.name}: {row.kind} at {row.folder}")
    print("adapter kinds: " + ", ".join(f"{k} ({a.layout})" for k, a in ADAPTERS.items()))
    return 0


def handle_bench(args) -> int:
    from db.session import session_scope

    from ..benchmark import BenchConfig, leaderboard, run
    from ..datasets import get_adapter

    _ensure_schema()
    weights = {}
    for text in args.weights:
        method, sep, name = text.partition("=")
        if not sep:
            raise ParameterError(f"--weights expects METHOD=SET, got {text!r}")
        weights[method] = name
    config = BenchConfig(methods=tuple(args.methods), dataset=args.dataset, split=args.split, folder=args.data,
                         params=_params(args.param), weights=weights)
    progress = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    from ..threads import background_priority

    if getattr(args, "own_process", False):
        background_priority()  # a sweep is background work: the dashboard's jobs get the cores first
    if args.on:
        from ..distributed.ray_bench import RayOptions, run_on_ray

        if args.no_work or args.device:
            raise ParameterError("--on runs the jobs on Ray workers (a GPU each when the cluster has GPUs): "
                                 "--no-work and --device are for the in-process worker")

        options = RayOptions(address=args.on, workers=args.workers, batch=args.batch, threads=args.threads,
                             gpus_per_worker=args.gpus_per_worker)
        report = run_on_ray(config, options, timeout_s=args.timeout, progress=progress)
    else:
        report = run(config, work_inline=not args.no_work, device=args.device, timeout_s=args.timeout,
                     progress=progress)
    for error in report.errors:
        print(f"failed: {error}", file=sys.stderr)
    with session_scope() as session:
        from db import benchmark_store as bstore

        run_row = bstore.get_run(session, report.run_id)
        rows = leaderboard.per_image(session, run_row.dataset, run_row.split)
        rows = rows[rows["method"].isin(run_row.methods)]
        order = get_adapter(run_row.dataset_kind).metrics
    table = leaderboard.sorted_summary(leaderboard.summary(rows, order))
    if args.csv:
        rows.to_csv(args.csv, index=False)
        print(f"per-image scores written to {args.csv}", file=sys.stderr)
    if args.json:
        print(json.dumps(table.to_dict(orient="records"), indent=2, default=str))
    else:
        _print_table(table)
    state = "complete" if report.complete else f"incomplete: {report.pending} pending (rerun to resume)"
    print(f"run {report.run_id} on {args.dataset}/{args.split}: {report.succeeded} scored, {report.failed} failed, "
          f"{state}{'; re-used an identical configuration' if report.reused else ''}", file=sys.stderr)
    return 0 if report.complete and not report.failed else 1


def _print_table(table) -> None:
    from ..benchmark import leaderboard

    if table.empty:
        print("no scores yet")
        return
    columns = leaderboard.value_columns(table)
    header = ["method"] + [leaderboard.metric_label(c) for c in columns] + ["runtime s", "device"]
    lines = [header]
    for _, row in table.iterrows():
        cells = [row["method"] + (" (baseline)" if row["baseline"] else "")]
        for c in columns:
            std = row.get(f"{c}:std")
            cells.append(f"{row[c]:.4f}" + (f" ± {std:.4f}" if std is not None and std == std else ""))  # NaN: 1 image
        cells += [f"{row['runtime_s']:.2f}", str(row["device"])]
        lines.append(cells)
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)))
