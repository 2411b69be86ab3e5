"""The CLI as a user times it: ``python -m engine run METHOD photo --out DIR`` as a whole process, against the method's
own time (``timings_s.total`` in the ``result.json`` it writes), cold (a fresh process imports torch) and warm
(through ``python -m engine cli-server``, started here in a private folder and stopped at the end).

    python scripts/bench_cli.py [--method jiep] [--size 1024x680] [--runs 5]

The photo is the speed benchmark's (``engine.speed.bench_image``: LOL photo 102 resized, or a synthetic one without
``../shared``). Prints one line per run and, per mode, the median whole-process time, the median method time and the
ratio of the two (the issue's target for JieP at 1024×680: at most 2×).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def one_run(env: dict, method: str, photo: Path, out: Path) -> tuple[float, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "engine", "run", method, str(photo), "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return wall, float(json.loads((out / "result.json").read_text())["timings_s"]["total"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="jiep")
    parser.add_argument("--size", default="1024x680", help="WIDTHxHEIGHT")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--modes", default="cold,warm", help="comma-separated: cold, warm")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    from engine.imaging import encode_png
    from engine.speed import bench_image

    work = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    image, source = bench_image(height, width)
    photo = work / "photo.png"
    photo.write_bytes(encode_png(image))
    sock_dir = work / "sock"
    sock_dir.mkdir(mode=0o700)
    base = {**os.environ, "PYTHONPATH": str(REPO), "INTRINSIC_LAB_CLI_SERVER_DIR": str(sock_dir)}
    print(f"{args.method} on {source}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    summary = []
    for mode in args.modes.split(","):
        env = {**base, "INTRINSIC_LAB_CLI_SERVER": "off" if mode == "cold" else "use"}
        if mode == "warm":
            started = subprocess.run([sys.executable, "-m", "engine", "cli-server", "start"], cwd=REPO, env=env,
                                     capture_output=True, text=True)
            if started.returncode != 0:
                raise SystemExit(f"cli-server start failed: {started.stderr.strip()}")
            print(f"  {started.stdout.strip()}")
        try:
            walls, own = [], []
            for i in range(args.runs):
                wall, method_s = one_run(env, args.method, photo, work / f"out-{mode}-{i}")
                walls.append(wall)
                own.append(method_s)
                print(f"  {mode} run {i + 1}: process {wall:.2f} s, method {method_s:.2f} s ({wall / method_s:.2f}×)")
        finally:
            if mode == "warm":
                subprocess.run([sys.executable, "-m", "engine", "cli-server", "stop"], cwd=REPO, env=env,
                               capture_output=True)
        wall_m, own_m = statistics.median(walls), statistics.median(own)
        summary.append(f"{mode}: process {wall_m:.2f} s (min {min(walls):.2f}), method {own_m:.2f} s, "
                       f"ratio of medians {wall_m / own_m:.2f}× (runs {min(w / o for w, o in zip(walls, own)):.2f}–"
                       f"{max(w / o for w, o in zip(walls, own)):.2f}×)")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
