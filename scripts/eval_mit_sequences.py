"""Evidence for the sequence methods on the MIT Intrinsic Images: Laffont & Bazin (2015), Weiss (2001) and the
max / median over frames baselines, and ablations of Laffont & Bazin.

Every MIT object has ten single-light images ``light01``…``light10`` of one view: a real sequence of a static scene
under changing light, with ground-truth reflectance. All methods run on the same frames (linear 16-bit PNGs, given
as ``input_encoding=linear``) with the object mask as input, in the same run, and are scored on reflectance with
the benchmark's scale-invariant masked LMSE (20×20 windows, step 10):

* grey: ``engine.metrics.intrinsic.lmse`` on the mean over R, G, B (the MIT definition);
* colour: the same windows with one least-squares scale per window shared by R, G and B, errors summed over the
  channels and normalised by the truth's energy in all three (so a wrong hue costs, a wrong brightness does not).

    .venv/bin/python scripts/eval_mit_sequences.py                       # all objects found, default parameters
    .venv/bin/python scripts/eval_mit_sequences.py --objects apple box -p window_sigma=2
    .venv/bin/python scripts/eval_mit_sequences.py --variant paper_weights:brightness_power=0 \
        --variant constant_shading:shading_model=constant --variant per_channel:shading_colour=per_channel \
        --variant rounds1:rounds=1 --variant rounds3:rounds=3 --variant sigma2:window_sigma=2      # the ablation
    .venv/bin/python scripts/eval_mit_sequences.py --objects teabag2 apple --methods baseline_max_frames,laffont_bazin \
        -p solver=global --variant no_shift:solver=global,energy_shift=false ...   # the global solve's ablation

``--variant NAME:k=v,k=v`` adds a Laffont & Bazin run with those parameters (repeatable; ``-p`` values apply to
every Laffont & Bazin run). Prints one row per object with each method's colour / grey LMSE and its ratio to max
over frames, then the means; ``--json`` also writes the numbers and run info.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.datasets.image_sequences import ImageSequences  # noqa: E402
from engine.metrics.intrinsic import lmse  # noqa: E402
from engine.registry import MethodInput, run_method  # noqa: E402

METHODS = ("baseline_max_frames", "baseline_median_frames", "weiss", "laffont_bazin")
REFERENCE = "baseline_max_frames"


def lmse_colour(truth: np.ndarray, estimate: np.ndarray, mask: np.ndarray, window: int = 20, step: int = 10) -> float:
    """Colour LMSE: per 20×20 window (step 10) one LS scale for all three channels; Σ errors / Σ truth energy."""
    m = np.asarray(mask, bool).astype(np.float64)
    t = np.asarray(truth, np.float64)
    e = np.nan_to_num(np.asarray(estimate, np.float64), nan=0.0, posinf=0.0, neginf=0.0)

    def sums(a):
        return sliding_window_view(a, (window, window))[::step, ::step].sum(axis=(2, 3))

    tt = sum(sums(m * t[..., c] * t[..., c]) for c in range(3))
    te = sum(sums(m * t[..., c] * e[..., c]) for c in range(3))
    ee = sum(sums(m * e[..., c] * e[..., c]) for c in range(3))
    alpha = np.where(ee > 1e-5, te / np.where(ee > 1e-5, ee, 1.0), 0.0)
    return float(max((tt - 2 * alpha * te + alpha * alpha * ee).sum(), 0.0) / tt.sum())


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mit-intrinsic"),
                        help="MIT Intrinsic Images folder (one sub-folder per object)")
    parser.add_argument("--objects", nargs="*", help="object names (default: every object folder found)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods to run")
    parser.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                        help="Laffont & Bazin parameter for every Laffont & Bazin run (repeatable)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:K=V,K=V",
                        help="an extra Laffont & Bazin run with these parameters (repeatable)")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda")
    parser.add_argument("--no-mask", action="store_true", help="do not give the object mask to the methods")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 by default: the CPU is shared)")
    return parser.parse_args(argv)


def parse_pairs(items) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items if item)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    if not data.is_dir():
        print(f"error: {data} not found", file=sys.stderr)
        return 2
    adapter = ImageSequences()
    objects = args.objects or sorted(p.name for p in data.iterdir() if (p / "light01.png").is_file())
    common = parse_pairs(args.param)
    runs = []  # (label, method, params)
    for method in [m for m in args.methods.split(",") if m]:
        runs.append((method, method, dict(common) if method == "laffont_bazin" else {}))
    for text in args.variant:
        label, _, rest = text.partition(":")
        runs.append((label, "laffont_bazin", {**common, **parse_pairs(rest.split(","))}))
    labels = [r[0] for r in runs]
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average, {os.cpu_count()} CPUs); torch threads {args.threads}")
    rows, records = [], []
    for name in objects:
        sample = adapter.load(data / name, name)
        truth, mask = sample.truth["reflectance"], sample.truth["mask"]
        method_mask = None if args.no_mask else mask[..., None].astype(np.float32)
        inputs = MethodInput(frames=sample.frames, mask=method_mask)
        scores = {}
        for label, method, params in runs:
            start = time.perf_counter()
            result, ctx, resolved = run_method(method, inputs, {"input_encoding": "linear", **params},
                                               device=args.device)
            seconds = time.perf_counter() - start
            estimate = result.layers["reflectance"]
            scores[label] = {"colour": lmse_colour(truth, estimate, mask), "grey": lmse(truth, estimate, mask),
                             "seconds": seconds}
            records.append({"object": name, "label": label, "method": method, **scores[label],
                            "params": resolved, "info": result.info, "timings": ctx.timings})
            print(f"  {name} {label}: colour {scores[label]['colour']:.4f} grey {scores[label]['grey']:.4f} "
                  f"({seconds:.1f} s)", flush=True)
        rows.append((name, scores))
        h, w = sample.frames[0].shape[:2]
        print(f"{name:<9} {len(sample.frames)}×{w}×{h} " + "  ".join(
            f"{lab} {s['colour']:.4f}/{s['grey']:.4f} ({s['seconds']:.1f}s)" for lab, s in scores.items()),
            flush=True)

    reference = REFERENCE if REFERENCE in labels else None
    print("\ncolour / grey reflectance LMSE" + (f"; [ratio to {reference}]" if reference else ""))
    print(f"{'object':<9} | " + " | ".join(f"{lab:>27}" for lab in labels))
    for name, scores in rows:
        cells = []
        for lab in labels:
            s = scores[lab]
            cell = f"{s['colour']:.4f}/{s['grey']:.4f}"
            if reference:
                r = scores[reference]
                cell += f" [{s['colour'] / r['colour']:.2f}/{s['grey'] / r['grey']:.2f}]"
            cells.append(f"{cell:>27}")
        print(f"{name:<9} | " + " | ".join(cells))
    means = {lab: {k: float(np.mean([s[lab][k] for _, s in rows])) for k in ("colour", "grey", "seconds")}
             for lab in labels}
    cells = []
    for lab in labels:
        cell = f"{means[lab]['colour']:.4f}/{means[lab]['grey']:.4f}"
        if reference:
            cell += (f" [{means[lab]['colour'] / means[reference]['colour']:.2f}/"
                     f"{means[lab]['grey'] / means[reference]['grey']:.2f}]")
        cells.append(f"{cell:>27}")
    print(f"{'mean':<9} | " + " | ".join(cells))
    if reference:
        beats = {lab: sum(s[lab]["colour"] < s[reference]["colour"] and s[lab]["grey"] < s[reference]["grey"]
                          for _, s in rows) for lab in labels}
        print("objects where colour and grey are both below max over frames: "
              + ", ".join(f"{lab} {beats[lab]}/{len(rows)}" for lab in labels))
    print("mean seconds per object: " + ", ".join(f"{lab} {means[lab]['seconds']:.1f}" for lab in labels)
          + ("; mask not given to the methods" if args.no_mask else "; object mask given to the methods"))
    if args.json:
        Path(args.json).write_text(json.dumps({"means": means, "runs": records}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
