"""Speed of the sequence methods on synthetic sequences (the targets: 10 frames of 334×334 in ≤ 15 s on 2 cores;
20 frames of 1 MP in ≤ 30 s on the CPU).

    .venv/bin/python scripts/bench_sequences.py --threads 1
    .venv/bin/python scripts/bench_sequences.py --threads 2 --method laffont_bazin --cases 10x334x334,20x1000x1000

Prints wall time and the process's CPU time (on a shared, loaded machine the CPU time is what an idle core would
take with one thread) with the 1-minute load average. Frames are a random reflectance under moving, clipped cosine
shading; the timing covers the whole runner (decode to linear, solve, confidence, shading of every frame).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.registry import MethodInput, RunContext, get_method  # noqa: E402


def sequence(frames: int, height: int, width: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    reflectance = rng.uniform(0.1, 0.9, (height, width, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    out = []
    for angle in rng.uniform(0, 2 * np.pi, frames):
        shading = 0.3 + 0.6 * np.clip(np.cos(3 * xx * np.cos(angle) + 3 * yy * np.sin(angle)), 0, 1)
        out.append((reflectance * shading[..., None]).astype(np.float32))
    return tuple(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", default="laffont_bazin")
    parser.add_argument("--cases", default="10x334x334,20x1000x1000", help="FRAMESxHEIGHTxWIDTH, comma-separated")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    spec = get_method(args.method)
    run = spec.runner()
    params = spec.resolve_params({"input_encoding": "srgb", **dict(p.split("=", 1) for p in args.param)})
    for case in args.cases.split(","):
        t, h, w = (int(v) for v in case.split("x"))
        inputs = MethodInput(frames=sequence(t, h, w))
        ctx = RunContext(device=torch.device("cpu"))
        cpu, wall = time.process_time(), time.perf_counter()
        run(inputs, params, ctx)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        stages = ", ".join(f"{k} {v:.1f}" for k, v in ctx.timings.items())
        print(f"{args.method} {t} frames {w}×{h}: wall {wall:.1f} s, process CPU {cpu:.1f} s, torch threads "
              f"{args.threads}, load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs ({stages})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
