"""How a benchmark sweep on Ray scales: the same sweep with 1 Ray worker and with N, throughput and the ratio to N×.

    python scripts/bench_ray.py --workers 2 --items 32 --side 160 --method baseline_color_retinex

Writes a synthetic MIT-layout dataset (``--items`` objects of ``--side`` pixels, split ``all``) into a temporary
folder, starts one local Ray cluster with ``--workers`` CPUs, and for 1 and then N workers: a fresh store (so
nothing is re-used), the jobs queued (:func:`engine.benchmark.start`, not timed), then the Ray phase timed -- actors
started, each method's network loaded once per actor, every job claimed, run and stored -- which is what Ray
parallelises (scoring stays in the driver, as on the queue path). Prints jobs/s for each, with and without the actors'
start-up (importing torch and the engine, once per actor), and ``speed-up / N`` (100 % = perfect: N workers do N×
the work of one). Each actor runs one torch thread.

On a shared machine the ratio depends on what else runs: the script prints the load average before and after, and
how long a job took from claim to completion in each configuration with how much of the time the workers held a job
(near 100 %, with longer jobs at N workers, means the CPUs were the limit, not Ray's scheduling).
Use ``--repeat`` to take the best of several sweeps of each size.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_objects(root: Path, count: int, side: int, seed: int = 0) -> Path:
    """``count`` random shaded objects in the MIT layout: reflectance patches × a smooth shading, 16-bit linear."""
    import cv2

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / (side - 1.0)
    for index in range(count):
        cells = rng.uniform(0.1, 0.9, (4, 4, 3))
        reflectance = cv2.resize(cells, (side, side), interpolation=cv2.INTER_NEAREST)
        shading = 0.2 + 0.7 * np.clip(rng.uniform(0.3, 1.0) * x + rng.uniform(0, 0.5) * y, 0, 1)
        layers = {"reflectance.png": reflectance, "shading.png": shading, "mask.png": np.ones((side, side)),
                  "diffuse.png": reflectance * shading[..., None]}
        folder = root / f"object{index:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, array in layers.items():
            data = np.round(np.clip(array, 0, 1) * 65535).astype(np.uint16)
            assert cv2.imwrite(str(folder / name), data[..., ::-1] if data.ndim == 3 else data)
    return root


def sweep(ray, dataset: Path, store: Path, method: str, workers: int, batch: int) -> tuple[int, float, float, float]:
    """(jobs run, seconds of the Ray phase, seconds from the first job's claim to the last one's completion, seconds
    the jobs took from claim to completion, summed) of one sweep on a fresh store. The third excludes starting the
    actors (importing torch and the engine, once per actor): the steady state of a long sweep."""
    from sqlalchemy import select

    from db.models import Job
    from db.session import session_scope
    from db.artifacts import ArtifactStore
    from db.session import make_engine, make_sessions, migrate
    from engine.benchmark import BenchConfig, start
    from engine.distributed.ray_bench import RayOptions, dispatch, make_pools

    url = f"sqlite:///{store / 'lab.sqlite'}"
    migrate(url)
    engine = make_engine(url)
    sessions, artifacts = make_sessions(engine), ArtifactStore(store / "artifacts")
    report = start(BenchConfig((method,), "mit-intrinsic", "all", str(dataset)), sessions=sessions,
                   artifacts=artifacts)
    options = RayOptions(workers=workers, batch=batch, threads=1)
    began = time.perf_counter()
    ran = dispatch(make_pools(ray, options, sessions, artifacts), sessions, report.run_id, batch)
    seconds = time.perf_counter() - began
    with session_scope(sessions) as session:
        spans = session.execute(select(Job.started_at, Job.finished_at)).all()
    engine.dispose()
    first, last = min(s for s, _ in spans), max(f for _, f in spans)
    return ran, seconds, (last - first).total_seconds(), sum((f - s).total_seconds() for s, f in spans)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="N (default 2)")
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--side", type=int, default=160)
    parser.add_argument("--method", default="baseline_color_retinex")
    parser.add_argument("--batch", type=int, default=4, help="jobs per Ray call")
    parser.add_argument("--repeat", type=int, default=1, help="sweeps of each size; the fastest counts")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from engine.threads import apply_thread_policy

    apply_thread_policy(1)
    import ray

    with tempfile.TemporaryDirectory(prefix="bench-ray-") as temp:
        temp = Path(temp)
        dataset = write_objects(temp / "mit", args.items, args.side)
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} CPUs")
        ray.init(address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        try:
            results: dict[int, tuple[float, float]] = {}  # workers → (jobs/s with start-up, jobs/s steady)
            for workers in sorted({1, args.workers}):
                runs = []
                for attempt in range(args.repeat):
                    ran, seconds, steady, busy = sweep(ray, dataset, temp / f"store-{workers}-{attempt}",
                                                       args.method, workers, args.batch)
                    assert ran == args.items, f"{ran} of {args.items} jobs ran"
                    runs.append((seconds, steady, busy))
                seconds, steady = min(r[0] for r in runs), min(r[1] for r in runs)
                busy = min(runs, key=lambda r: r[1])[2]
                results[workers] = (args.items / seconds, args.items / steady)
                print(f"{workers} worker(s): {args.items} × {args.method} ({args.side}×{args.side}): Ray phase "
                      f"{seconds:.2f} s = {results[workers][0]:.2f} jobs/s; steady state (first claim → last "
                      f"completion) {steady:.2f} s = {results[workers][1]:.2f} jobs/s; a job took "
                      f"{busy / args.items:.3f} s from claim to completion, the workers held jobs "
                      f"{busy / (workers * steady):.0%} of the steady state")
        finally:
            ray.shutdown()
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.workers > 1:
        n = args.workers
        for index, label in ((0, "Ray phase, actor start-up included"), (1, "steady state")):
            speed_up = results[n][index] / results[1][index]
            print(f"{label}: {n} workers = {speed_up:.2f}× one worker = {speed_up / n:.0%} of {n}× (target ≥ 90 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
