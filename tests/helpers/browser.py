"""Browser-test helpers: chromium's path and flags, and the ``served`` fixture that runs the dashboard and a worker
as real processes on a fresh store (both stopped in teardown). Import the names into a test module to use them.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
import urllib.request
from pathlib import Path

import pytest

from db.session import migrate

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 40
RESULT_TIMEOUT_MS = 45_000

@contextmanager
def chromium_browser():
    """Debian's chromium driven by Playwright, closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshots(tmp_path: Path) -> Path:
    """Where a browser test keeps its screenshots: INTRINSIC_LAB_SCREENSHOTS, else the test's temporary folder."""
    shots = Path(os.environ.get("INTRINSIC_LAB_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen, grace_s: float) -> None:
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"streamlit exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"streamlit did not answer {url} within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def served(data_dir, tmp_path):
    """Dashboard + one CPU worker on a fresh migrated store; both stopped in teardown."""
    yield from serve(data_dir, tmp_path)


@pytest.fixture
def served_public(data_dir, tmp_path):
    """The same in public mode, with the admin secret ``ADMIN_SECRET``."""
    yield from serve(data_dir, tmp_path, {"INTRINSIC_LAB_MODE": "public", "INTRINSIC_LAB_ADMIN_SECRET": ADMIN_SECRET})


ADMIN_SECRET = "test-admin-secret-7f3a"


def serve(data_dir, tmp_path, extra_env: dict[str, str] | None = None):
    """Run the dashboard and one CPU worker as processes; yields (url, logs) and stops both afterwards."""
    if not CHROMIUM.exists():
        pytest.skip(f"chromium is not installed at {CHROMIUM} (Debian package 'chromium'; make test-system-deps)")
    env = {**os.environ, "INTRINSIC_LAB_DATA": str(data_dir), "INTRINSIC_LAB_DEVICE": "cpu",
           "PYTHONPATH": str(REPO), **(extra_env or {})}
    migrate()  # in-process: data_dir already points INTRINSIC_LAB_DATA at the temporary folder
    port = _free_port()
    logs = {name: tmp_path / f"{name}.log" for name in ("dashboard", "worker")}
    processes = []
    try:
        with open(logs["dashboard"], "wb") as out:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
                 "--server.address", "127.0.0.1", "--server.headless", "true",
                 "--browser.gatherUsageStats", "false"],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT))
        with open(logs["worker"], "wb") as out:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "engine", "worker", "--device", "cpu", "--poll", "0.5",
                 "--worker-id", "browser-test"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT))
        _wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", processes[0], logs["dashboard"])
        yield f"http://127.0.0.1:{port}", logs
    finally:
        for process in processes:  # signal both first: they shut down in parallel
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        # The worker exits at once on SIGTERM; streamlit lingers for seconds and holds nothing we need to keep.
        for process, grace_s in zip(processes, (2, 10)):
            _stop(process, grace_s)
