"""The Leaderboards page in a real browser: a benchmark run done by a worker process, then ranking, charts and
the per-image drill-down into the gallery, in chromium driven by Playwright.

Reuses the dashboard tests' browser setup (``served``: dashboard + worker processes on a fresh store; chromium
path and flags) from ``tests/helpers/browser.py``. Set INTRINSIC_LAB_SCREENSHOTS to a folder to keep the screenshots.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from benchmark.tiny_data import BASELINES, write_tiny_mit

from helpers.browser import chromium_browser, screenshots, served  # noqa: F401 (served is a fixture)

pytestmark = pytest.mark.browser


def benchmark_through_worker(root: Path, timeout_s: float = 40.0) -> None:
    """Queue the baselines on a tiny MIT folder and let the served worker process do the jobs."""
    from db import benchmark_store as bstore
    from db.session import make_engine, make_sessions, session_scope
    from engine.benchmark import BenchConfig, collect, start

    write_tiny_mit(root)
    engine = make_engine()
    try:
        sessions = make_sessions(engine)
        with session_scope(sessions) as session:
            bstore.register_dataset(session, "mit-mini", "mit-intrinsic", str(root))
        report = start(BenchConfig(BASELINES, "mit-mini", "train"), sessions=sessions)
        deadline = time.monotonic() + timeout_s
        while not report.complete and time.monotonic() < deadline:
            time.sleep(0.5)
            report = collect(report.run_id, sessions=sessions)
        assert report.complete and report.succeeded == 4, report
    finally:
        engine.dispose()


def test_leaderboard_in_the_browser(served, tmp_path):
    from playwright.sync_api import expect

    url, logs = served
    try:
        benchmark_through_worker(tmp_path / "mit")
    except AssertionError:
        raise AssertionError("the worker did not finish the benchmark jobs:\n" + logs["worker"].read_text()[-3000:])
    shots = screenshots(tmp_path)
    with chromium_browser() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.goto(url)
        page.get_by_role("link", name="Leaderboards").click()
        expect(page.get_by_role("heading", name="Leaderboards")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("Measured · MIT Intrinsic Images · train (2 images)")).to_be_visible(
            timeout=20_000)
        # Tables and charts are lazily loaded components: give them time to arrive.
        expect(page.locator("[data-testid='stDataFrame']")).to_have_count(3, timeout=30_000)  # measured,
        # per image, reported. Plotly draws the bars as SVG: both methods on the axis, best (lowest LMSE) first.
        expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=30_000)
        ticks = page.locator(".js-plotly-plot").first.locator(".xtick text")
        # Display names, not internal ids, on the axis (lower LMSE first).
        expect(ticks).to_have_text(["Baseline: Color Retinex (MIT benchmark)", "Baseline: image as albedo, constant shading"],
                                   timeout=30_000)
        expect(page.get_by_text("Quality versus runtime")).to_be_visible()
        expect(page.get_by_role("heading", name="Reported in papers (not measured here)")).to_be_visible()
        expect(page.get_by_role("button", name="Download leaderboard (CSV)")).to_be_visible()
        page.screenshot(path=str(shots / "leaderboard.png"), full_page=True)

        chooser = page.get_by_role("combobox", name="Open one image in the gallery comparison")
        chooser.click()
        page.get_by_role("option", name="box", exact=True).click()
        expect(chooser).to_have_value("box")
        page.get_by_role("button", name="Compare in the gallery").click()
        expect(page.get_by_role("heading", name="Gallery")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("All methods in one grid")).to_be_visible(timeout=20_000)
        # the gallery opened on the drilled-down item, its address naming it
        page.wait_for_url(re.compile(r"input=\d+"), timeout=10_000)
        expect(page.get_by_role("combobox", name="Image")).to_have_value(re.compile(r"mit-mini/box$"))
        page.screenshot(path=str(shots / "leaderboard_gallery.png"), full_page=True)
