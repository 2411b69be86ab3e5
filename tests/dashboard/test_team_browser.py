"""A team in a real browser: two methods on one input, the all-methods grid with a shared zoom, a vote that
reaches the preference leaderboard, and a comparison opened from its address."""

from __future__ import annotations

import re

import pytest

from helpers.browser import RESULT_TIMEOUT_MS, chromium_browser, screenshots, served  # noqa: F401

pytestmark = pytest.mark.browser


def test_grid_vote_and_linked_comparison(served, photo_png, tmp_path):
    from playwright.sync_api import expect

    url, logs = served
    shots = screenshots(tmp_path)
    with chromium_browser() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        page.goto(url)
        expect(page.get_by_role("heading", name="Decompose an image")).to_be_visible(timeout=30_000)
        page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(
            {"name": "dark.png", "mimeType": "image/png", "buffer": photo_png})
        expect(page.get_by_text("64×48 px")).to_be_visible(timeout=20_000)
        methods = page.locator("[data-testid='stMultiSelect']").first
        methods.click()
        page.get_by_role("option", name=re.compile("RetinexNet")).click()
        page.keyboard.press("Escape")
        methods.click()
        page.get_by_role("option", name=re.compile("identity \\(low-light")).click()
        page.keyboard.press("Escape")
        page.get_by_role("button", name="Run").click()
        for title in ("RetinexNet", "Baseline: identity (low-light enhancement)"):
            try:
                expect(page.get_by_text(re.compile(re.escape(title) + r".* · succeeded"))).to_be_visible(
                    timeout=RESULT_TIMEOUT_MS)
            except AssertionError:
                page.screenshot(path=str(shots / "team_failed.png"), full_page=True)
                raise AssertionError(f"{title} did not finish; worker log:\n"
                                     + logs["worker"].read_text()[-3000:]) from None
        expect(page.get_by_text("colour scale:").first).to_be_visible()  # one-channel layers get a colour bar
        downloads = page.get_by_role("button", name=re.compile("Download all"))
        # one per finished result (JieP, selected by default, may still run); waited for, not counted at once: the
        # results area is redrawn while the page polls the running job, so a count can fall between two draws
        expect(downloads.nth(1)).to_be_visible()

        page.locator("[data-testid='stSidebar']").get_by_role("link", name="Gallery").click()
        expect(page.get_by_role("heading", name="Gallery")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("All methods in one grid")).to_be_visible(timeout=20_000)
        for row in ("enhanced", "reflectance", "illumination"):
            expect(page.get_by_text(row, exact=True).first).to_be_visible()
        page.get_by_role("button", name="RetinexNet is better", exact=False).click()
        expect(page.get_by_text("Thanks: your vote")).to_be_visible(timeout=20_000)

        page.get_by_text("Compare two layers").click()
        expect(page.get_by_text("left of the line:", exact=False)).to_be_visible(timeout=20_000)
        page.wait_for_url(re.compile(r"mode=wipe"), timeout=10_000)
        linked = page.url
        colleague = browser.new_page(viewport={"width": 1400, "height": 2000})
        colleague.goto(linked)
        expect(colleague.get_by_text("left of the line:", exact=False)).to_be_visible(timeout=30_000)

        page.locator("[data-testid='stSidebar']").get_by_role("link", name="Leaderboards").click()
        expect(page.get_by_text("Team preference", exact=False)).to_be_visible(timeout=30_000)
        expect(page.get_by_text("1 vote(s)", exact=False)).to_be_visible()
        page.screenshot(path=str(shots / "team_leaderboard.png"), full_page=True)
