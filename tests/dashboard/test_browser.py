"""The whole product in a real browser: dashboard and worker as processes, chromium driven by Playwright.

Upload a small photo, keep JieP selected, press Run, and wait until JieP's layers are shown.
Set INTRINSIC_LAB_SCREENSHOTS to a folder to keep the screenshots for a look.
"""

from __future__ import annotations


import pytest

from helpers.browser import RESULT_TIMEOUT_MS, chromium_browser, screenshots, served  # noqa: F401 (a fixture)

pytestmark = pytest.mark.browser


def test_upload_run_jiep_and_see_its_layers(served, photo_png, tmp_path):
    from playwright.sync_api import expect

    url, logs = served
    shots = screenshots(tmp_path)
    with chromium_browser() as browser:
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
        # the upload preview, then the input beside JieP's three layers, and the colour bar of the one-channel illumination
        expect(images).to_have_count(6)
        for caption in ("illumination:", "reflectance:", "enhanced:"):
            expect(page.get_by_text(caption, exact=False).first).to_be_visible()
        expect(page.get_by_role("button", name="PNG", exact=True)).to_have_count(3)
        # The layer really is an image the browser decoded, at the input's aspect ratio.
        size = images.nth(4).evaluate("img => [img.naturalWidth, img.naturalHeight]")  # the reflectance
        assert size == [64, 48]
        page.screenshot(path=str(shots / "decompose.png"), full_page=True)
