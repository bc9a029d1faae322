"""The live page's energy-accounting card in headless Chromium: with accounting state in Redis
(stored as the accounting service stores it) the page shows the month's value, step, headroom,
energy per hour today and yesterday and per day this month; without it the card stays hidden."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import async_playwright, expect

from services.accounting import store
from services.accounting.account import MeterAccount
from services.accounting.tariffs import rule
from shared.reading import Reading
from tests.rest.conftest import RestFactory
from tests.rest.test_page import ARGS, CHROMIUM

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")

T0 = 1_772_319_600_000  # 2026-03-01 00:00 Oslo


async def test_the_accounting_card(rest_factory: RestFactory, tmp_path: Path) -> None:
    rest = await rest_factory()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 1200})
            await page.goto(rest.url + "/", timeout=15_000)
            await expect(page.locator("#accounting")).to_be_hidden()

            # 2 days and 1.5 hours at 2 kW (Elvia): this month 2.0 kW, step 2 (2-5 kW)
            account = MeterAccount.new("m1", ZoneInfo("Europe/Oslo"), rule("no-elvia"))
            for k in range(12 * 49 + 7):
                ts = T0 + k * 300_000
                account.add(
                    Reading(ts=ts, received=ts, meter="m1", ic=100 + k * 2 / 12, pi=[2000.0])
                )
            await store.save(rest.redis, [account], {"m1": account.tariff_state()})

            await page.reload()
            await expect(page.locator("#accounting")).to_be_visible(timeout=15_000)
            await expect(page.locator("#month-value")).to_have_text("2.00")
            await expect(page.locator("#tariff-step")).to_have_text("2 (2–5 kW)")
            # the step holds while (2 + 2 + E) / 3 < 5 kW: E < 11 kWh this
            # hour, 10 kWh more in 30 min = 20 kW, 18 kW on top of the 2 kW drawn
            await expect(page.locator("#headroom")).to_have_text("18.00 kW")
            await expect(page.locator("#hours-today > i")).to_have_count(24)
            await expect(page.locator("#hours-yesterday > i")).to_have_count(24)
            await expect(page.locator("#days-month > i")).to_have_count(31)
            title = await page.locator("#hours-yesterday > i").first.get_attribute("title")
            assert title == "2026-03-02 00:00: 2.000 kWh"
            await page.screenshot(path=str(tmp_path / "accounting.png"), full_page=True)
        finally:
            await browser.close()
