"""Score the cross-validated ma2018 fold models with the benchmark itself, beside Color Retinex and JieP.

``python scripts/eval_ma2018_folds.py --folds DIR [--mit ../shared/data/mit-intrinsic] [--out scores.json]``

DIR holds ``unsup-K.safetensors`` and ``semi-K.safetensors`` (K = 0..4) from ``scripts/gpu_train/ma2018.sh``. For fold
K, a folder linking its two held-out MIT objects (full resolution) is registered as a dataset and benchmarked with
``python -m engine bench ma2018 baseline_color_retinex jiep --weights ma2018=DIR/unsup-K.safetensors`` (and again
with the semi-supervised weights), so every object is scored only by the model that never saw it. The per-object
rows and the means over the ten objects are written to ``--out``. The benchmark database is ``--db`` (a scratch
``INTRINSIC_LAB_DATA`` folder, default /tmp/ma2018_bench_db), never the user's.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDS = (("apple", "box"), ("cup1", "dinosaur"), ("frog1", "panther"), ("paper1", "phone"), ("squirrel", "teabag2"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", default=".")
    parser.add_argument("--mit", default=str(REPO.parent / "shared" / "data" / "mit-intrinsic"))
    parser.add_argument("--out", default="ma2018_fold_scores.json")
    parser.add_argument("--db", default="/tmp/ma2018_bench_db")
    parser.add_argument("--baselines", default="baseline_color_retinex,jiep")
    parser.add_argument("--variants", default="unsup,semi")
    parser.add_argument("--param", action="append", default=[], help="extra --param for bench (METHOD.NAME=VALUE)")
    parser.add_argument("--tag", default="", help="suffix of the registered dataset names (one per configuration)")
    parser.add_argument("--work", default="/tmp/ma2018_fold_links", help="where the fold folders (links) are made")
    parser.add_argument("--baselines-only", action="store_true", help="only run the baselines (to warm the cache)")
    args = parser.parse_args(argv)
    env = {**os.environ, "INTRINSIC_LAB_DATA": args.db}
    mit, folds = Path(args.mit).resolve(), Path(args.folds).resolve()
    rows = []
    work = Path(args.work)
    for k, held in enumerate(FOLDS):
        folder = work / f"fold{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for name in held:
            if not (folder / name).exists():
                (folder / name).symlink_to(mit / name)
        for variant in args.variants.split(","):
            weights = folds / f"{variant}-{k}.safetensors"
            if not weights.is_file() and not args.baselines_only:
                print(f"missing {weights}", file=sys.stderr)
                continue
            dataset = f"ma2018_fold{k}_{variant}{args.tag}"
            subprocess.run([sys.executable, "-m", "engine", "datasets", "register", dataset, "mit-intrinsic",
                            str(folder)], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
            first = variant == args.variants.split(",")[0]
            baselines = [b for b in args.baselines.split(",") if b]
            methods = ([] if args.baselines_only else ["ma2018"]) + (baselines if first else [])
            if not methods:
                continue
            table = work / f"{dataset}.csv"
            cmd = [sys.executable, "-m", "engine", "bench", *methods, "--dataset", dataset, "--split", "all",
                   "--device", "cpu", "--csv", str(table)]
            if not args.baselines_only:
                cmd += ["--weights", f"ma2018={weights}"]
            for item in args.param:
                cmd += ["--param", item]
            print(" ".join(cmd), file=sys.stderr, flush=True)
            subprocess.run(cmd, cwd=REPO, env=env, check=False)
            for row in csv.DictReader(open(table)):
                label = f"ma2018 ({variant})" if row["method"] == "ma2018" else row["method"]
                rows.append({**row, "label": label, "fold": k})
    summary: dict[str, dict] = {}
    for row in rows:
        entry = summary.setdefault(row["label"], {})
        try:
            entry.setdefault(row["metric"], []).append(float(row["value"]))
        except (KeyError, ValueError):
            pass
    means = {label: {m: {"mean": sum(v) / len(v), "n": len(v)} for m, v in metrics.items()}
             for label, metrics in summary.items()}
    Path(args.out).write_text(json.dumps({"means": means, "rows": rows}, indent=1, default=str))
    for label, metrics in means.items():
        if "grosse_lmse" in metrics:
            print(f"{label:28s} Grosse LMSE {metrics['grosse_lmse']['mean']:.4f} over {metrics['grosse_lmse']['n']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
