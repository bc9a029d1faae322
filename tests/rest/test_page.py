"""The live page in headless Chromium (Debian's, driven by Playwright): a reading added to the
stream appears on the page without a reload, and the page says plainly when data is stale."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from tests.rest.conftest import RestFactory

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")


async def test_a_reading_added_to_the_stream_appears_on_the_page(
    rest_factory: RestFactory, tmp_path: Path
) -> None:
    rest = await rest_factory(rest_stale_after=3.0)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 760})
            await page.goto(rest.url + "/", timeout=15_000)
            await expect(page.locator("#banner")).to_contain_text(
                "waiting for the first reading", timeout=10_000
            )

            entry_id = await rest.add()
            latest = rest.state.latest
            assert latest is not None and latest.entry_id == entry_id
            reading = latest.reading
            assert reading.ic is not None and reading.u[0] is not None and reading.i[2] is not None
            await expect(page.locator("#ic")).to_have_text(f"{reading.ic:.3f}", timeout=10_000)
            await expect(page.locator("#banner")).to_have_text("Live")
            await expect(page.locator("#u0")).to_have_text(f"{reading.u[0]:.1f} V")
            await expect(page.locator("#i2")).to_have_text(f"{reading.i[2]:.2f} A")
            net = (reading.p[0] or 0) / 1000
            await expect(page.locator("#net")).to_have_text(f"{abs(net):.3f}")
            await expect(page.locator("#meter-id")).to_have_text(str(reading.meter_id))
            shot = Path(os.environ.get("HANPORT_PAGE_SCREENSHOT", tmp_path / "live.png"))
            await page.screenshot(path=str(shot), full_page=True)

            # no new reading: after the limit the page says so plainly
            await expect(page.locator("#banner")).to_contain_text("Data is stale", timeout=10_000)
        finally:
            await browser.close()


async def test_the_page_says_when_the_service_is_unreachable(rest_factory: RestFactory) -> None:
    rest = await rest_factory()
    await rest.add()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            await page.goto(rest.url + "/", timeout=15_000)
            await expect(page.locator("#banner")).to_have_text("Live", timeout=10_000)
            await rest.stop()  # the service goes away under the open page
            await expect(page.locator("#banner")).to_contain_text(
                "Connection to the hanport service lost", timeout=10_000
            )
        finally:
            await browser.close()
