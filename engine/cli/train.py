"""``python -m engine train METHOD --data DIR --steps N --device auto --out RUN_DIR``: the shared training loop.

Running the same command again resumes from ``RUN_DIR/checkpoints/last.pt``; ``--set name=value`` overrides a
hyper-parameter of the method's recipe (``--list`` shows them); ``--install`` makes the exported weights selectable by
name (``--weights NAME``) from the weights cache. ``--on ray --workers N`` trains data-parallel on N Ray workers
(a local cluster; ``--on ray://HOST:PORT`` or ``HOST:PORT`` joins an existing one, :mod:`engine.distributed.ray_train`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a learned method (seeded, resumable, exports safetensors + card)")
    p.add_argument("method", nargs="?", help="method name (see --list)")
    p.add_argument("--data", default="synthetic", help="training data folder, or 'synthetic' (rendered on the fly)")
    p.add_argument("--steps", type=int, default=1000, help="optimisation steps in total (over all phases)")
    p.add_argument("--out", help="run folder (created; an existing checkpoint there is resumed)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                   help="override a hyper-parameter")
    p.add_argument("--name", default="trained", help="weight-set name of the export (default: trained)")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="no mixed precision on CUDA")
    p.add_argument("--fresh", action="store_true", help="start over even if RUN_DIR has a checkpoint")
    p.add_argument("--install", action="store_true", help="store the export in the weights cache under --name")
    p.add_argument("--log-every", type=int, default=10, help="steps between rows of metrics.csv")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="stop early once this much training time has passed (the card records the steps done)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (per worker with --on)")
    p.add_argument("--on", default=None, metavar="ray|ray://HOST:PORT|HOST:PORT",
                   help="train data-parallel on a Ray cluster: 'ray' starts one on this machine")
    p.add_argument("--workers", type=int, default=1, help="with --on: data-parallel workers (default 1)")
    p.add_argument("--list", action="store_true", help="list trainable methods and their hyper-parameters")
    p.set_defaults(handler=handle)


def handle(args) -> int:
    import torch

    from ..errors import ParameterError
    from ..train.loop import TrainRequest, train
    from ..train.recipe import all_recipes, get_recipe

    if args.threads and not args.on:
        torch.set_num_threads(args.threads)
    if args.list or not args.method:
        for recipe in all_recipes():
            print(f"{recipe.method}: {recipe.description}")
            print("  " + ", ".join(f"{k}={v}" for k, v in recipe.config().items()))
        return 0
    if not args.out:
        raise ParameterError("train: --out RUN_DIR is required")
    if args.workers != 1 and not args.on:
        raise ParameterError("--workers runs data-parallel workers on Ray: give --on ray (or a cluster's address)")
    overrides = {}
    for text in args.overrides:
        if "=" not in text:
            raise ParameterError(f"--set expects NAME=VALUE, got {text!r}")
        key, value = text.split("=", 1)
        overrides[key.strip()] = value.strip()
    try:
        get_recipe(args.method).config(overrides)
    except KeyError as exc:
        raise ParameterError(str(exc.args[0])) from None
    request = TrainRequest(method=args.method, data=args.data, steps=args.steps, out=Path(args.out),
                           device=args.device, seed=args.seed, overrides=overrides, name=args.name, amp=args.amp,
                           log_every=args.log_every, fresh=args.fresh, install=args.install,
                           max_seconds=args.max_seconds)
    from ..threads import background_priority

    priority = "normal (in-process call)"
    if getattr(args, "own_process", False):
        priority = background_priority()  # training is background work: the dashboard's jobs get the cores first
    if args.on:
        from ..distributed.ray_train import train_on_ray

        result = train_on_ray(request, address=args.on, workers=args.workers, threads=args.threads)
    else:
        result = train(request)
    summary = {"weights": str(result.weights), "sha256": result.sha256, "model_card": str(result.card),
               "steps": result.steps, "seconds": round(result.seconds, 1), "first_loss": result.first_loss,
               "final_loss": result.final_loss, "validation": result.validation, "cpu_priority": priority}
    print(json.dumps(summary, indent=2))
    print(f"{args.method}: loss {result.first_loss:.4f} → {result.final_loss:.4f} in {result.steps} steps "
          f"({result.seconds:.1f} s); weights {result.weights}", file=sys.stderr)
    return 0
