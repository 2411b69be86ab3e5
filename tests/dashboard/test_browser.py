"""The whole product in a real browser: dashboard and worker as processes, chromium driven by Playwright.

Upload a small photo, keep JieP selected, press Run, and wait until JieP's layers are shown.
Set INTRINSIC_LAB_SCREENSHOTS to a folder to keep the screenshots for a look.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
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

pytestmark = pytest.mark.browser


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
    if not CHROMIUM.exists():
        pytest.skip(f"chromium is not installed at {CHROMIUM} (Debian package 'chromium'; make test-system-deps)")
    env = {**os.environ, "INTRINSIC_LAB_DATA": str(data_dir), "INTRINSIC_LAB_DEVICE": "cpu",
           "PYTHONPATH": str(REPO)}
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


def test_upload_run_jiep_and_see_its_layers(served, photo_png, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, logs = served
    shots = Path(os.environ.get("INTRINSIC_LAB_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            # The fresh server's first visitor opens a page URL directly: app.py must still own navigation
            # (pages live in app_pages/, so Streamlit has no folder-based pages of its own to serve instead).
            page.goto(f"{url}/methods")
            expect(page.get_by_role("heading", name="Methods", exact=True)).to_be_visible(timeout=30_000)
            expect(page.get_by_role("heading", name="JieP: joint intrinsic-extrinsic prior Retinex (2017)")).to_be_visible(
                timeout=30_000)
            sidebar = page.locator("[data-testid='stSidebar']")
            expect(sidebar.get_by_text("Database: SQLite")).to_be_visible()
            sidebar.get_by_role("link", name="Decompose").click()
            expect(page.get_by_role("heading", name="Decompose an image")).to_be_visible(timeout=30_000)
            page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(
                {"name": "photo.png", "mimeType": "image/png", "buffer": photo_png})
            expect(page.get_by_text("64×48 px")).to_be_visible(timeout=20_000)
            methods = page.locator("[data-testid='stMultiSelect']")
            expect(methods.get_by_text("JieP: joint intrinsic-extrinsic prior Retinex")).to_be_visible()

            run = page.get_by_role("button", name="Run")
            expect(run).to_be_enabled(timeout=10_000)
            run.click()
            try:
                expect(page.get_by_text("JieP: joint intrinsic-extrinsic prior Retinex · succeeded")).to_be_visible(
                    timeout=RESULT_TIMEOUT_MS)
            except AssertionError:
                page.screenshot(path=str(shots / "decompose_failed.png"))
                raise AssertionError("JieP's result did not appear; worker log:\n"
                                     + logs["worker"].read_text()[-3000:]) from None
            images = page.locator("[data-testid='stImage'] img")
            expect(images).to_have_count(5)  # the upload preview, then the input beside JieP's three layers
            for caption in ("illumination:", "reflectance:", "enhanced:"):
                expect(page.get_by_text(caption, exact=False).first).to_be_visible()
            expect(page.get_by_role("button", name="PNG", exact=True)).to_have_count(3)
            # The layer really is an image the browser decoded, at the input's aspect ratio.
            size = images.nth(3).evaluate("img => [img.naturalWidth, img.naturalHeight]")
            assert size == [64, 48]
            page.screenshot(path=str(shots / "decompose.png"), full_page=True)
        finally:
            browser.close()
