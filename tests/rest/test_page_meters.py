"""The live page with several meters, in headless Chromium (as tests/rest/test_page.py): a button
per meter, the default one shown first; picking another shows its readings live, its
sub-meters (gas) and, for an unplugged one, that its data is stale."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from tests.rest.conftest import RestFactory
from tests.rest.meters import add_from, box_meters, register, wait_until_known
from tests.rest.test_page import ARGS, CHROMIUM

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")


async def test_the_page_shows_every_meter_and_picks_one(
    rest_factory: RestFactory, tmp_path: Path
) -> None:
    rest = await rest_factory(rest_stale_after=30.0)
    meters = box_meters(rest.settings.stream, rest.settings.raw_stream)
    for meter in meters.values():
        await register(rest, meter)
    await wait_until_known(rest, *meters)
    main = await add_from(rest, meters["main"])
    gas = await add_from(rest, meters["gas"])
    await add_from(rest, meters["heatpump"], age_s=60)  # unplugged a minute ago
    assert main.reading.ic is not None and gas.reading.ic is not None
    assert round(main.reading.ic, 3) != round(gas.reading.ic, 3)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 860})
            await page.goto(rest.url + "/", timeout=15_000)
            buttons = page.locator("#meters button")
            await expect(buttons).to_have_count(3, timeout=10_000)
            await expect(buttons).to_have_text(["gas", "heatpump", "maindefault"])
            # the default meter first, as /events serves it
            await expect(page.locator('#meters button[data-meter="main"]')).to_have_attribute(
                "aria-pressed", "true"
            )
            await expect(page.locator("#ic")).to_have_text(f"{main.reading.ic:.3f}")
            await expect(page.locator("#banner")).to_have_text("Live")
            await expect(page.locator("#submeters")).to_be_hidden()
            await expect(page.locator('#meters button[data-meter="heatpump"]')).to_have_class(
                "stale"
            )

            # the gas meter: its readings, its meter id, its gas sub-meter with its own time
            await page.locator('#meters button[data-meter="gas"]').click()
            await expect(page.locator("#ic")).to_have_text(f"{gas.reading.ic:.3f}")
            await expect(page.locator("#meter-id")).to_have_text(str(gas.reading.meter_id))
            (sub,) = gas.reading.submeters
            card = page.locator("#submeters #sub1")
            await expect(card.locator(".num")).to_have_text(f"{sub.value:.3f}")
            await expect(card.locator("small")).to_have_text("m³")
            await expect(card.locator(".label")).to_contain_text("gas")
            assert page.url.endswith("#meter=gas")
            # a new reading of the picked meter shows live
            newer = await add_from(rest, meters["gas"])
            await expect(page.locator("#banner")).to_have_text("Live")
            assert newer.entry_id != gas.entry_id
            shot = Path(os.environ.get("HANPORT_PAGE_SCREENSHOT", tmp_path / "meters.png"))
            await page.screenshot(path=str(shot), full_page=True)

            # the unplugged meter: stale, said plainly; the others are unaffected
            await page.locator('#meters button[data-meter="heatpump"]').click()
            await expect(page.locator("#banner")).to_contain_text("Data is stale")
            # why, from the heat pump's own ingest status (its ingest never reported)
            await expect(page.locator("#banner .why")).to_contain_text(
                "the ingest service has not reported yet"
            )
            await expect(page.locator('#meters button[data-meter="gas"]')).to_have_class("live")

            # the address names the meter: a reload shows the same one
            await page.reload()
            await expect(page.locator('#meters button[data-meter="heatpump"]')).to_have_attribute(
                "aria-pressed", "true", timeout=10_000
            )
        finally:
            await browser.close()
