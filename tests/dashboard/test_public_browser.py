"""Public mode in a real browser: a visitor's results survive a reload through the address, another visitor
cannot open them (not even with the address), admin pages are not reachable without the login."""

from __future__ import annotations

import re

import pytest

from helpers.browser import (ADMIN_SECRET, RESULT_TIMEOUT_MS, chromium_browser, screenshots,  # noqa: F401
                             served_public)

pytestmark = pytest.mark.browser
JIEP_DONE = "JieP: joint intrinsic-extrinsic prior Retinex · succeeded"


def test_visitors_are_isolated_and_results_have_addresses(served_public, photo_png, tmp_path):
    from playwright.sync_api import expect

    url, logs = served_public
    shots = screenshots(tmp_path)
    with chromium_browser() as browser:
        alice = browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
        alice.goto(url)
        expect(alice.get_by_role("heading", name="Decompose an image")).to_be_visible(timeout=30_000)
        alice.wait_for_url(re.compile(r"visitor="), timeout=20_000)
        sidebar = alice.locator("[data-testid='stSidebar']")
        expect(sidebar.get_by_role("link", name="Jobs")).to_have_count(0)  # admin-only pages are absent
        uploader = alice.locator("[data-testid='stFileUploader'] input[type='file']")
        try:
            expect(uploader).to_have_count(1, timeout=30_000)
        except AssertionError:
            alice.screenshot(path=str(shots / "public_no_uploader.png"), full_page=True)
            raise
        uploader.set_input_files(
            {"name": "[click](http://evil.example) ![x](y).png", "mimeType": "image/png", "buffer": photo_png})
        expect(alice.get_by_text("64×48 px")).to_be_visible(timeout=20_000)
        alice.get_by_role("button", name="Run").click()
        try:
            expect(alice.get_by_text(JIEP_DONE)).to_be_visible(timeout=RESULT_TIMEOUT_MS)
        except AssertionError:
            alice.screenshot(path=str(shots / "public_failed.png"))
            raise AssertionError("no result; worker log:\n" + logs["worker"].read_text()[-3000:]) from None
        alice.wait_for_url(re.compile(r"jobs=\d+"), timeout=10_000)
        address = alice.url
        alice.reload()  # a reload keeps the submitted jobs: they are in the address
        expect(alice.get_by_text(JIEP_DONE)).to_be_visible(timeout=30_000)
        alice.goto(re.sub(r"/?\?.*$", "", url) + "/gallery?" + address.split("?", 1)[1])
        expect(alice.get_by_role("heading", name="Gallery")).to_be_visible(timeout=30_000)
        # The file name is shown as text: no link or image is made of the markdown in it.
        expect(alice.get_by_text("[click](http://evil.example)", exact=False).first).to_be_visible()
        expect(alice.locator("a[href='http://evil.example']")).to_have_count(0)

        bob = browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
        bob.goto(f"{url}/gallery")
        expect(bob.get_by_role("heading", name="Gallery")).to_be_visible(timeout=30_000)
        expect(bob.get_by_text("Nothing here yet")).to_be_visible(timeout=20_000)
        bob.wait_for_url(re.compile(r"visitor="), timeout=20_000)
        bob_token = re.search(r"visitor=([\w-]+)", bob.url).group(1)
        # Alice's address with Bob's own key: the job and input ids are there, the results are not.
        stolen = re.sub(r"visitor=[\w-]+", f"visitor={bob_token}", address)
        bob.goto(stolen)
        expect(bob.get_by_role("heading", name="Decompose an image")).to_be_visible(timeout=30_000)
        bob.wait_for_timeout(2000)
        expect(bob.get_by_text(JIEP_DONE)).to_have_count(0)
        bob.goto(f"{url}/jobs?visitor={bob_token}")  # not a page for visitors: the default page opens instead
        expect(bob.get_by_role("heading", name="Decompose an image")).to_be_visible(timeout=30_000)
        expect(bob.get_by_role("heading", name="Jobs", exact=True)).to_have_count(0)

        # The admin signs in and gets the Jobs page.
        expect(bob.get_by_text("Page not found")).to_be_visible(timeout=10_000)
        bob.keyboard.press("Escape")
        expect(bob.get_by_text("Page not found")).to_have_count(0, timeout=10_000)
        password = bob.get_by_label("Admin password")
        if not password.is_visible():
            bob.locator("[data-testid='stSidebar']").get_by_text("Admin", exact=True).click()
        password.fill(ADMIN_SECRET)
        bob.get_by_role("button", name="Sign in").click()
        expect(bob.locator("[data-testid='stSidebar']").get_by_role("link", name="Jobs")).to_be_visible(
            timeout=20_000)
        bob.screenshot(path=str(shots / "public_admin.png"), full_page=True)
