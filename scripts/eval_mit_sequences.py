"""Evidence for the sequence methods: Laffont & Bazin (2015) against Weiss (2001) on the MIT Intrinsic Images.

Every MIT object has ten single-light images ``light01``…``light10`` of one view: a real sequence of a static scene
under changing light, with ground-truth reflectance. Both methods run on the same frames (linear 16-bit PNGs,
read by the sequence dataset adapter with OpenCV) with the object mask as input, in the same run, and are scored
with the benchmark's scale-invariant masked MSE and LMSE (20×20 windows, step 10) on grey reflectance
(``engine.metrics.intrinsic``, the MIT definitions).

    .venv/bin/python scripts/eval_mit_sequences.py                      # all objects found, default parameters
    .venv/bin/python scripts/eval_mit_sequences.py --objects apple box -p window_size=7

Prints one row per object and the mean; ``--json`` also writes the numbers and run info to a file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.datasets.image_sequences import ImageSequences  # noqa: E402
from engine.metrics.intrinsic import lmse, si_mse  # noqa: E402
from engine.registry import MethodInput, run_method  # noqa: E402

METHODS = ("laffont_bazin", "weiss")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mit-intrinsic"),
                        help="MIT Intrinsic Images folder (one sub-folder per object)")
    parser.add_argument("--objects", nargs="*", help="object names (default: every object folder found)")
    parser.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                        help="Laffont & Bazin parameter (repeatable)")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda")
    parser.add_argument("--no-mask", action="store_true", help="do not give the object mask to the methods")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 by default: on a shared CPU, extra threads wait on each other in the "
                             "solver's many small products)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    if not data.is_dir():
        print(f"error: {data} not found", file=sys.stderr)
        return 2
    adapter = ImageSequences()
    objects = args.objects or sorted(p.name for p in data.iterdir() if (p / "light01.png").is_file())
    lb_params = dict(text.split("=", 1) for text in args.param)
    rows, records = [], []
    for name in objects:
        sample = adapter.load(data / name, name)
        truth, mask = sample.truth["reflectance"], sample.truth["mask"]
        method_mask = None if args.no_mask else mask[..., None].astype(np.float32)
        inputs = MethodInput(frames=sample.frames, mask=method_mask)
        scores = {}
        for method in METHODS:
            params = {"input_encoding": "linear", **(lb_params if method == "laffont_bazin" else {})}
            start = time.perf_counter()
            result, ctx, resolved = run_method(method, inputs, params, device=args.device)
            seconds = time.perf_counter() - start
            estimate = result.layers["reflectance"]
            scores[method] = {"lmse": lmse(truth, estimate, mask), "mse": si_mse(truth, estimate, mask),
                              "seconds": seconds}
            records.append({"object": name, "method": method, **scores[method], "params": resolved,
                            "info": result.info})
        rows.append((name, len(sample.frames), sample.frames[0].shape[1], sample.frames[0].shape[0], scores))
        s = scores
        print(f"{name:<10} {len(sample.frames):>2} frames {rows[-1][2]}×{rows[-1][3]}  "
              + "  ".join(f"{m}: LMSE {s[m]['lmse']:.4f} MSE {s[m]['mse']:.4f} ({s[m]['seconds']:.1f} s)"
                          for m in METHODS), flush=True)

    print()
    header = f"{'object':<10} | " + " | ".join(f"{m + ' LMSE':>19} {m + ' MSE':>18}" for m in METHODS)
    print(header)
    print("-" * len(header))
    for name, _, _, _, scores in rows:
        print(f"{name:<10} | " + " | ".join(f"{scores[m]['lmse']:>19.4f} {scores[m]['mse']:>18.4f}"
                                             for m in METHODS))
    print("-" * len(header))
    means = {m: {k: float(np.mean([r[4][m][k] for r in rows])) for k in ("lmse", "mse", "seconds")}
             for m in METHODS}
    print(f"{'mean':<10} | " + " | ".join(f"{means[m]['lmse']:>19.4f} {means[m]['mse']:>18.4f}" for m in METHODS))
    print(f"\nmean seconds per object: " + ", ".join(f"{m} {means[m]['seconds']:.1f}" for m in METHODS)
          + f"; metrics: engine.metrics.intrinsic (grey, scale-invariant, masked); "
          + ("mask not given to the methods" if args.no_mask else "object mask given to both methods"))
    if args.json:
        Path(args.json).write_text(json.dumps({"means": means, "runs": records}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
