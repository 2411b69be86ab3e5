"""``python -m engine.synth --n 1000 --out DIR`` writes a synthetic dataset; ``--benchmark`` prints samples/s;
``--figure PNG`` draws a contact sheet of samples with all their layers."""

from __future__ import annotations

import argparse
import json
import sys

import torch

from ..device import describe_device, resolve_device
from .dataset import benchmark, write_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.synth", description="render synthetic intrinsic scenes")
    parser.add_argument("--n", type=int, default=100, help="number of scenes")
    parser.add_argument("--out", help="output folder (resumable: existing samples are kept)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--lightings", type=int, default=1, help="lightings per scene (K)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first scene")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--textures", default=None, help="optional folder of photos used as albedo textures")
    parser.add_argument("--style", default="classic", choices=("classic", "photographic"),
                        help="scene distribution: classic, or photographic (photo textures on most surfaces, "
                             "clutter, indoor lamps / outdoor sun)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="stop rendering after this many seconds (the manifest records how many were written)")
    parser.add_argument("--png", action="store_true", help="also write a PNG per layer under previews/")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default 1 on the CPU: the renderer's many small tensor "
                             "operations run several times slower with more threads; run processes in parallel)")
    parser.add_argument("--benchmark", action="store_true", help="print samples/s and exit")
    parser.add_argument("--figure", default=None, metavar="PNG",
                        help="write a contact sheet of --n samples (seeds from --seed) with all layers, and exit")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if args.threads or device.type == "cpu":
        torch.set_num_threads(args.threads or 1)
    if args.benchmark:
        result = benchmark(args.size, n=max(1, min(args.n, 20)), device=device, lightings=args.lightings)
        result["device"] = describe_device(device)
        print(json.dumps(result))
        print(f"{result['samples_per_s']:.2f} samples/s at {args.size}×{args.size} on {result['device']}",
              file=sys.stderr)
        return 0
    if args.figure:
        from .figure import write_contact_sheet

        path = write_contact_sheet(args.figure, list(range(args.seed, args.seed + args.n)), args.size,
                                   max(args.lightings, 2), device)
        print(f"wrote {path}")
        return 0
    if not args.out:
        parser.error("--out is required (or use --benchmark)")
    manifest = write_dataset(args.out, args.n, args.size, args.lightings, args.seed, device, args.textures, args.png,
                             style=args.style, max_seconds=args.max_seconds)
    print(f"wrote {manifest['n']} scenes to {args.out} in {manifest['seconds']:.1f} s on {describe_device(device)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
