"""K-fold cross-validation of DS-Net on a colour-constancy folder, beside every classic baseline.

    # train the folds (sequentially) and evaluate them:
    python scripts/dsnet_cv.py --data ../shared/data/color-constancy/intel-tau-imx135 --runs RUNS --train \
        --device cuda --max-seconds 120 --set photos_dir=... --out cv.json
    # evaluate folds trained before (RUNS/fold{k}/export/dsnet-fold{k}.safetensors):
    python scripts/dsnet_cv.py --data ../shared/data/color-constancy/intel-tau-imx135 --runs RUNS --out cv.json

Fold k holds out the images :func:`engine.train.dsnet_recipe.fold_split` assigns to it (a seeded permutation of the
sorted names, ``--fold-seed``), and is scored with the weights trained without them; the baselines need no training
and are scored on every image. Each image is run through :func:`engine.registry.run_method` — the same path as
``python -m engine run`` and the benchmark — and scored with :func:`engine.metrics.angular.illuminant_error`; the
five statistics are :func:`engine.metrics.angular.error_statistics`. Prints a table and writes everything to JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STATS = ("mean", "median", "trimean", "best25", "worst25")


def fold_weights(runs: Path, fold: int) -> Path:
    return runs / f"fold{fold}" / "export" / f"dsnet-fold{fold}.safetensors"


def train_folds(args, extra: list[str]) -> None:
    for fold in range(args.folds):
        cmd = [sys.executable, "-m", "engine", "train", "dsnet", "--data", str(args.data), "--steps", str(args.steps),
               "--device", args.device, "--seed", str(args.seed), "--name", f"fold{fold}",
               "--out", str(args.runs / f"fold{fold}"), "--set", f"fold={fold}", "--set", f"folds={args.folds}",
               "--set", f"fold_seed={args.fold_seed}"]
        if args.max_seconds:
            cmd += ["--max-seconds", str(args.max_seconds)]
        for item in extra:
            cmd += ["--set", item]
        print("$ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=REPO)


def evaluate(args) -> dict:
    import numpy as np

    from engine.datasets import get_adapter
    from engine.metrics.angular import error_statistics, illuminant_error
    from engine.registry import MethodInput, all_methods, run_method
    from engine.train.dsnet_recipe import fold_split

    adapter = get_adapter("color-constancy")
    folder = adapter.validate(args.data)
    items = sorted(adapter.item_ids(folder, "all"))
    samples = {item: adapter.load(folder, item) for item in items}
    params = {"stride": args.stride, "working_side": args.working_side, "input": "raw"}
    per_image: dict[str, dict[str, float]] = {}
    times: dict[str, list[float]] = {}
    fold_of: dict[str, int] = {}

    def score(method: str, item: str, weights: str | None = None, method_params: dict | None = None) -> None:
        sample = samples[item]
        result, ctx, _ = run_method(method, MethodInput(frames=(sample.frames[0],)), method_params,
                                    device=args.device, weights=weights)
        err = illuminant_error(sample.truth["illuminant"], np.asarray(result.values["illuminant"]))
        per_image.setdefault(method, {})[item] = err
        times.setdefault(method, []).append(ctx.timings["total"])

    for fold in (args.only_folds if args.only_folds is not None else range(args.folds)):
        weights = fold_weights(args.runs, fold)
        if not weights.is_file():
            raise SystemExit(f"{weights} is missing: train the folds first (--train)")
        _, held = fold_split(items, args.folds, fold, args.fold_seed)
        for item in held:
            fold_of[item] = fold
            score("dsnet", item, str(weights), params)
    baselines = [s.name for s in all_methods() if s.is_baseline and s.task.value == "illuminant"]
    for name in baselines:
        for item in (sorted(fold_of) if args.only_folds is not None else items):
            score(name, item)
    final = {}
    if args.final:
        for item in items:
            sample = samples[item]
            result, _, _ = run_method("dsnet", MethodInput(frames=(sample.frames[0],)), params, device=args.device,
                                      weights=str(args.final))
            final[item] = illuminant_error(sample.truth["illuminant"], np.asarray(result.values["illuminant"]))
    summary = {m: error_statistics(list(v.values())) for m, v in per_image.items()}
    report = {
        "dataset": str(folder), "items": items, "folds": args.folds, "fold_seed": args.fold_seed,
        "folds_evaluated": args.only_folds if args.only_folds is not None else list(range(args.folds)),
        "fold_of": fold_of, "dsnet_params": params, "device": args.device,
        "summary": summary, "per_image": per_image,
        "mean_runtime_s": {m: float(np.mean(v)) for m, v in times.items()},
        "final_model_in_sample": ({"weights": str(args.final), "per_image": final,
                                   "summary": error_statistics(list(final.values()))} if final else None),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return report


def table(report: dict) -> str:
    lines = ["| method | " + " | ".join(STATS) + " |", "|---|" + "---|" * len(STATS)]
    order = sorted(report["summary"], key=lambda m: report["summary"][m]["mean"])
    for method in order:
        s = report["summary"][method]
        done = report.get("folds_evaluated", list(range(report["folds"])))
        part = "" if len(done) == report["folds"] else f", folds {','.join(map(str, done))} only"
        label = f"{method} ({report['folds']}-fold CV{part})" if method == "dsnet" else method
        lines.append(f"| {label} | " + " | ".join(f"{s[k]:.2f}" for k in STATS) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="colour-constancy folder")
    parser.add_argument("--runs", type=Path, required=True, help="folder of the fold runs (fold0 … foldK-1)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold-seed", type=int, default=0)
    parser.add_argument("--only-folds", type=lambda text: sorted({int(k) for k in text.split(",")}), default=None,
                        metavar="K,K", help="evaluate only these folds (a partial run: every statistic, the "
                                            "baselines' too, is then over their held-out images only)")
    parser.add_argument("--train", action="store_true", help="train the folds first (sequentially)")
    parser.add_argument("--steps", type=int, default=100000)
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="recipe hyper-parameter for the fold trainings")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stride", type=int, default=8, help="DS-Net patch stride at evaluation")
    parser.add_argument("--working-side", type=int, default=384)
    parser.add_argument("--final", type=Path, default=None, help="also score these weights on every image "
                                                                    "(in-sample: not a held-out number)")
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    args = parser.parse_args(argv)
    if args.only_folds is not None and (args.train or not all(0 <= k < args.folds for k in args.only_folds)):
        parser.error(f"--only-folds takes fold numbers in 0..{args.folds - 1} and evaluates folds trained before "
                     "(not with --train)")
    if args.train:
        train_folds(args, args.overrides)
    report = evaluate(args)
    print(table(report))
    if report["final_model_in_sample"]:
        s = report["final_model_in_sample"]["summary"]
        print("final model on its own training images (in-sample): " + ", ".join(f"{k} {s[k]:.2f}" for k in STATS))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
        print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
