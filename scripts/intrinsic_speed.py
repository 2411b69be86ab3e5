"""CPU speed and memory of the single-image intrinsic runners at 1 MP and 12 MP (random images; speed does not
depend on the weights). Prints the best CPU time of the process (fair on a shared machine), the wall time and the
peak resident memory.

    OMP_NUM_THREADS=1 python scripts/intrinsic_speed.py [--weights intrinseg=SET cgintrinsics=SET]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    import torch

    from engine.registry import MethodInput, run_method

    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", nargs="*", default=[])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    weights = dict(item.split("=", 1) for item in args.weights)
    for label, (h, w) in (("1 MP", (864, 1152)), ("12 MP", (3000, 4000))):
        image = np.random.default_rng(0).random((h, w, 3)).astype(np.float32)
        for method in ("intrinseg", "cgintrinsics"):
            run_method(method, MethodInput(frames=(image[:256, :256],)), {}, device="cpu", weights=weights.get(method))
            best_cpu, best_wall = 1e9, 1e9
            for _ in range(2):
                wall, cpu = time.perf_counter(), time.process_time()
                run_method(method, MethodInput(frames=(image,)), {}, device="cpu", weights=weights.get(method))
                best_cpu = min(best_cpu, time.process_time() - cpu)
                best_wall = min(best_wall, time.perf_counter() - wall)
            print(f"{method:13s} {label:6s} cpu {best_cpu:.2f} s  wall {best_wall:.2f} s  peak RSS "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB  ({args.threads} thread(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
