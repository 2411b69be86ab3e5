"""JieP at 600×400, idle and beside one busy process, without and with the thread policy (engine/threads.py).

    python scripts/thread_policy_bench.py [--repeat 5] [--busy-seconds 120]

Each configuration runs in a fresh process (OpenMP reads its settings once); the number is the median wall time of
``--repeat`` runs after one warm-up. "busy" starts one ``yes > /dev/null`` (killed after the measurement, and bounded
by ``timeout``). Configurations: ``before`` = torch defaults (active OpenMP waits, one thread per CPU); ``policy`` =
``apply_thread_policy()`` as ``python -m engine`` now does (passive waits, this process's share of the CPUs); and
the explicit thread counts for reference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, statistics, sys, time
sys.path.insert(0, {repo!r})
if {policy}:
    from engine.threads import apply_thread_policy
    apply_thread_policy()
import numpy as np, torch
if {threads}:
    torch.set_num_threads({threads})
from engine.registry import MethodInput, run_method
rng = np.random.default_rng(0)
y, x = np.mgrid[0:400, 0:600].astype(np.float32)
image = np.clip(np.stack([0.5 + 0.3 * np.sin(x / 17), 0.4 + 0.3 * np.cos(y / 23), 0.3 + 0.2 * np.sin((x + y) / 31)],
                         axis=2) * (0.4 + 0.6 * x / 599)[..., None] + rng.normal(0, 0.02, (400, 600, 3)), 0, 1)
inputs = MethodInput(frames=(image.astype(np.float32),))
run_method("jiep", inputs, {{}}, device="cpu")
times = []
for _ in range({repeat}):
    start = time.perf_counter()
    run_method("jiep", inputs, {{}}, device="cpu")
    times.append(time.perf_counter() - start)
print(json.dumps({{"median": statistics.median(times), "min": min(times), "threads": torch.get_num_threads(),
                  "wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}}))
"""


def run(policy: bool, threads: int, repeat: int, workers: int | None = None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY",
                        "INTRINSIC_LAB_THREADS", "INTRINSIC_LAB_WORKERS")}
    if workers:
        env["INTRINSIC_LAB_WORKERS"] = str(workers)
    code = CHILD.format(repo=str(REPO), policy=policy, threads=threads, repeat=repeat)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--busy-seconds", type=int, default=180, help="upper bound on the busy process's life")
    args = parser.parse_args()
    configs = [("before (torch defaults)", False, 0, None), ("policy, 1 worker", True, 0, None),
               ("policy, WORKERS=2", True, 0, 2), ("before, 1 thread", False, 1, None)]
    print(f"CPUs: affinity {len(os.sched_getaffinity(0))}; load average {os.getloadavg()[0]:.2f} at start")
    print("| configuration | threads | OMP_WAIT_POLICY | idle s | one busy process s | ratio |")
    print("|---|---|---|---|---|---|")
    for label, policy, threads, workers in configs:
        idle = run(policy, threads, args.repeat, workers)
        busy_proc = subprocess.Popen(["timeout", str(args.busy_seconds), "yes"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            busy = run(policy, threads, args.repeat, workers)
        finally:
            busy_proc.terminate()  # timeout passes SIGTERM on to yes
            busy_proc.wait()
        print(f"| {label} | {idle['threads']} | {idle['wait_policy']} | {idle['median']:.2f} | {busy['median']:.2f} | "
              f"{busy['median'] / idle['median']:.2f} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end (other processes share this machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
