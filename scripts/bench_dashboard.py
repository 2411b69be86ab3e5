"""Browser benchmark: seconds from pressing Run to a method's layers on screen, as a user meets it.

Starts the dashboard and one worker as processes on a fresh store (like `make run`), drives Debian's chromium with
Playwright, uploads a 600×400 photo (a new one each time, so nothing is reused), presses Run and waits for the
result's layers. Prints one line per run with where its seconds went (from the job's row: Run → queued, waiting in
the queue, in the worker, worker done → layers on screen; the job's timings: model load and the method itself) and
the median per method, with the load average beside every figure (a busy machine is slower: compare before/after
in the same conditions).

    .venv/bin/python scripts/bench_dashboard.py --methods jiep,retinexnet --runs 5
    .venv/bin/python scripts/bench_dashboard.py --methods laffont_bazin --frames 10 --size 334x334 --runs 3

``--frames N`` uploads N frames of one scene under a moving light instead (the "image sequence" input), for the
sequence methods.

The browser runs on the same machine as the dashboard and the worker, which a visitor's browser does not: on 2
cores its renderer takes about a quarter of a core while a result is polled, from the worker computing it.
``--browser-priority idle`` (or ``nice``) gives chromium and its renderers only the cycles the server leaves
(``engine.threads.set_priority``), which is closer to a deployment; the default ``normal`` is the worst case.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.imaging import encode_png  # noqa: E402
from engine.registry import get_method  # noqa: E402


def photo(seed: int, width: int = 600, height: int = 400) -> bytes:
    """A dim photo-like picture (smooth light × texture), different for each seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    light = 0.15 + 0.3 * (x / width) * (0.5 + 0.5 * np.sin(y / 37.0 + seed))
    texture = rng.uniform(0.3, 1.0, (height // 20 + 1, width // 20 + 1, 3)).astype(np.float32)
    texture = np.kron(texture, np.ones((20, 20, 1), np.float32))[:height, :width]
    return encode_png(np.clip(light[..., None] * texture, 0, 1), bit_depth=8)


def light_sequence(seed: int, frames: int, width: int, height: int) -> list[bytes]:
    """``frames`` 8-bit sRGB frames of one textured relief (a bumpy surface) lit from a light that circles it."""
    from engine.imaging import linear_to_srgb

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    bumps = sum(np.sin(x / rng.uniform(9, 30) + rng.uniform(0, 6)) * np.sin(y / rng.uniform(9, 30) + rng.uniform(0, 6))
                for _ in range(3))
    gy, gx = np.gradient(3.0 * bumps)
    normal = np.stack([-gx, -gy, np.ones_like(gx)], -1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    albedo = rng.uniform(0.2, 0.9, (height // 24 + 1, width // 24 + 1, 3)).astype(np.float32)
    albedo = np.kron(albedo, np.ones((24, 24, 1), np.float32))[:height, :width]
    pictures = []
    for t in range(frames):
        angle = 2 * np.pi * t / frames
        light = np.array([0.7 * np.cos(angle), 0.7 * np.sin(angle), 0.7], np.float32)
        shading = np.clip(normal @ (light / np.linalg.norm(light)), 0, None)[..., None]
        pictures.append(encode_png(np.clip(linear_to_srgb(np.clip(0.8 * albedo * shading, 0, 1)), 0, 1),
                                   bit_depth=8))
    return pictures


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _utc(text: str | None) -> float | None:
    """A naive-UTC timestamp from the database as epoch seconds."""
    if not text:
        return None
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def breakdown(database: Path, clicked: float, seen: float) -> str:
    """Where the seconds of the latest job went: Run → queued, queue wait, worker (claim → done), done → on screen,
    and inside the worker the model load and the method's own time."""
    import json
    import sqlite3

    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        row = connection.execute("select created_at, started_at, finished_at, timings from jobs "
                                 "order by id desc limit 1").fetchone()
    if row is None:
        return ""
    created, started, finished = (_utc(v) for v in row[:3])
    timings = json.loads(row[3] or "{}")
    parts = []
    if created is not None:
        parts.append(f"submit {created - clicked:.2f}")
        if started is not None:
            parts.append(f"queue {started - created:.2f}")
            if finished is not None:
                parts.append(f"worker {finished - started:.2f} (method {timings.get('total', float('nan')):.2f}, "
                             f"load {timings.get('load', 0.0):.2f})")
                parts.append(f"display {seen - finished:.2f}")
    return "; ".join(parts)


def _descendants(root: int) -> list[int]:
    """Every process below ``root`` (children, grandchildren, ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def browser_priority(mode: str) -> int:
    """Give every chromium process started by this benchmark (and so the renderers they fork later) priority
    ``mode``; returns how many."""
    from engine.threads import set_priority

    count = 0
    for pid in _descendants(os.getpid()):
        try:
            command = (Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]).decode(errors="replace")
        except OSError:
            continue
        if "chrom" in Path(command).name:
            try:
                set_priority(mode, pid)
                count += 1
            except OSError:
                continue
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="jiep,retinexnet")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--frames", type=int, default=0, help="upload this many frames (an image sequence)")
    parser.add_argument("--size", default="600x400", help="WIDTHxHEIGHT of the uploaded picture(s)")
    parser.add_argument("--browser-priority", default="normal", choices=("normal", "nice", "idle"),
                        help="CPU priority of chromium and its renderers (normal: the worst case, the browser "
                             "competes with the server; idle/nice: closer to a visitor's browser on its own machine)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    from playwright.sync_api import expect, sync_playwright

    data = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    env = {**os.environ, "INTRINSIC_LAB_DATA": str(data), "INTRINSIC_LAB_DEVICE": "cpu", "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "db", "migrate"], cwd=REPO, env=env, check=True, capture_output=True)
    port = free_port()
    processes = [
        subprocess.Popen([sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
                          "--server.address", "127.0.0.1", "--server.headless", "true"], cwd=REPO, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "engine", "worker", "--device", "cpu"], cwd=REPO, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    url = f"http://127.0.0.1:{port}"
    times: dict[str, list[float]] = {}
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium,
                                                 args=["--headless", "--no-sandbox", "--disable-gpu"])
            if args.browser_priority != "normal":
                lowered = browser_priority(args.browser_priority)
                print(f"browser: {lowered} process(es) at {args.browser_priority} priority", flush=True)
            seed = 0
            for method in args.methods.split(","):
                title = get_method(method).title
                for run in range(args.runs):
                    seed += 1
                    page = browser.new_page(viewport={"width": 1400, "height": 1600})
                    page.goto(url)
                    expect(page.get_by_role("heading", name="Decompose an image")).to_be_visible(timeout=60_000)
                    if args.frames:
                        page.get_by_text("An image sequence", exact=True).click()
                        files = [{"name": f"frame{seed}_{t:02d}.png", "mimeType": "image/png", "buffer": picture}
                                 for t, picture in enumerate(light_sequence(seed, args.frames, width, height))]
                    else:
                        files = {"name": f"photo{seed}.png", "mimeType": "image/png",
                                 "buffer": photo(seed, width, height)}
                    uploader = "[data-testid='stFileUploader'] input[type='file']" + ("[multiple]" if args.frames else "")
                    page.locator(uploader).set_input_files(files)
                    expect(page.get_by_text(f"{width}×{height} px").first).to_be_visible(timeout=60_000)
                    box = page.locator("[data-testid='stMultiSelect']").first
                    if not box.get_by_text(title, exact=True).count():  # swap the preselected method for this one
                        box.get_by_role("button", name=re.compile("Remove|Delete|clear", re.I)).first.click()
                        box.click()
                        page.get_by_role("option", name=re.compile(re.escape(title))).click()
                        page.keyboard.press("Escape")
                    run_button = page.get_by_role("button", name="Run")
                    expect(run_button).to_be_enabled(timeout=30_000)
                    start, clicked = time.perf_counter(), time.time()
                    run_button.click()
                    expect(page.get_by_text(f"{title} · succeeded")).to_be_visible(timeout=300_000)
                    expect(page.get_by_role("button", name="PNG", exact=True).first).to_be_visible(timeout=60_000)
                    seconds = time.perf_counter() - start
                    times.setdefault(method, []).append(seconds)
                    print(f"{method} run {run + 1}: {seconds:.2f} s from Run to layers on screen "
                          f"[{breakdown(data / 'intrinsic_lab.sqlite', clicked, time.time())}] "
                          f"load {os.getloadavg()[0]:.1f}", flush=True)
                    page.close()
            browser.close()
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    for method, values in times.items():
        print(f"{method}: median {statistics.median(values):.2f} s over {len(values)} runs "
              f"(min {min(values):.2f}, max {max(values):.2f}); {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
