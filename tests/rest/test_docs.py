"""`/docs` works offline: the page names only files this service serves, each answers, and
Swagger UI renders every operation in headless Chromium while every request off the service is
blocked (as on an edge box without Internet access)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from playwright.async_api import Request, Route, async_playwright, expect

from tests.rest.conftest import RestFactory
from tests.rest.test_page import ARGS, CHROMIUM

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")

REFERENCE = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


async def test_docs_names_only_files_this_service_serves(rest_factory: RestFactory) -> None:
    rest = await rest_factory()
    page = await rest.client.get("/docs")
    assert page.status_code == 200
    references = REFERENCE.findall(page.text) + re.findall(r"url: '([^']+)'", page.text)
    assert len(references) >= 4, page.text  # stylesheet, icon, script, the OpenAPI document
    for reference in references:
        parts = urlsplit(reference)
        assert not parts.scheme and not parts.netloc, reference  # a path on this service
        answer = await rest.client.get(reference)
        assert answer.status_code == 200, reference
        assert answer.content, reference
    assert '"validatorUrl": null' in page.text  # no badge fetched from the online validator


async def test_swagger_ui_renders_every_operation_without_the_internet(
    rest_factory: RestFactory,
) -> None:
    rest = await rest_factory()
    await rest.add()
    document = (await rest.client.get("/openapi.json")).json()
    operations = [
        (method.upper(), path) for path, methods in document["paths"].items() for method in methods
    ]
    assert len(operations) >= 12
    elsewhere: list[str] = []

    async def only_this_service(route: Route, request: Request) -> None:
        if request.url.startswith(rest.url + "/"):
            await route.continue_()
        else:
            elsewhere.append(request.url)
            await route.abort("internetdisconnected")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            await page.route("**/*", only_this_service)
            await page.goto(urljoin(rest.url, "/docs"), timeout=15_000)
            blocks = page.locator(".opblock-summary")
            await expect(blocks).to_have_count(len(operations), timeout=15_000)
            shown = {
                (
                    (await block.locator(".opblock-summary-method").inner_text()).strip(),
                    (await block.locator(".opblock-summary-path").inner_text()).strip(),
                )
                for block in await blocks.all()
            }
            assert shown == set(operations)
            await expect(page.locator(".info .title")).to_contain_text("hanport REST")
        finally:
            await browser.close()
    assert elsewhere == []
