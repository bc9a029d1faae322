"""Why no data arrives, said where a user looks: a real ingest service with a missing adapter and
a real REST service; `/han`, `/readyz` and the live page (headless Chromium) carry ingest's
reason and fix (`hanport:ingest:status`), and `/meter` keeps its Cozify body. Also: with read
auth on, `/han` stays open (docs/security.md) and still serves no reading."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from services.ingest.diagnosis import FIXES
from shared.ingest_status import STATUS_KEY, explain, one_line
from shared.stale import NO_READING
from tests.rest.conftest import RestFactory
from tests.rest.process import ROOT, STREAM, rest_process
from tests.rest.test_page import ARGS, CHROMIUM
from tests.servers import RedisServer

TIMEOUT = 20.0


@contextlib.contextmanager
def ingest_process(redis_server: RedisServer, source: str, log: Path) -> Iterator[None]:
    """`python -m services.ingest` reading `source`; its output in `log`."""
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HANPORT_REDIS_URL": redis_server.url,
        "HANPORT_SOURCE": source,
        "HANPORT_STREAM": STREAM,
        "HANPORT_METRICS_PORT": "0",
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.ingest"],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


async def han_with_ingest(client: httpx.AsyncClient) -> dict[str, Any]:
    """/han once it carries ingest's verdict on its source (ingest writes it within seconds of
    failing to open the device); fails after TIMEOUT."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            han: dict[str, Any] = (await client.get("/han")).json()
            if han.get("ingest", {}).get("state") == "source":
                return han
            await asyncio.sleep(0.2)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
async def test_a_missing_device_is_named_by_han_readyz_and_the_page(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    missing = str(tmp_path / "ttyUSB0")
    with (
        ingest_process(redis_server, missing, tmp_path / "ingest.log"),
        rest_process(redis_server, tmp_path / "rest.log", HANPORT_REST_STALE_AFTER="5") as rest,
    ):
        async with httpx.AsyncClient(base_url=rest.url, timeout=5) as client:
            han = await han_with_ingest(client)
            ready = await client.get("/readyz")
            meter = await client.get("/meter")  # the Cozify body is unchanged: no `ingest`
        ingest = han["ingest"]
        assert ingest["reason"].startswith(f"serial {missing} ")
        assert "the device is missing" in ingest["reason"]
        assert ingest["fix"] == FIXES["missing"] and "HANPORT_SOURCE" in ingest["fix"]
        assert abs(ingest["updated"] - time.time() * 1000) < 30_000
        assert han["last_reading"] is None and han["redis"] is True

        assert ready.status_code == 503
        body = ready.json()
        assert body["ready"] is False and body["fresh"] is False and body["redis"] is True
        assert body["ingest"]["reason"] == ingest["reason"]
        assert body["message"].startswith(NO_READING + "; ingest: " + ingest["reason"])
        assert one_line(ingest) in body["message"] and ingest["fix"] in body["message"]

        assert meter.status_code == 503
        assert set(meter.json()) == {
            "error",
            "message",
            "age_seconds",
            "stale_after",
            "last_reading",
        }

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = await browser.new_page()
                await page.goto(rest.url + "/", timeout=15_000)
                banner = page.locator("#banner")
                await expect(banner).to_contain_text(
                    "waiting for the first reading", timeout=10_000
                )
                await expect(banner).to_contain_text(f"Why: serial {missing} ", timeout=10_000)
                await expect(banner).to_contain_text("the device is missing")
                await expect(banner).to_contain_text("Fix: " + ingest["fix"])
                shot = Path(os.environ.get("HANPORT_PAGE_SCREENSHOT", tmp_path / "why.png"))
                await page.screenshot(path=str(shot), full_page=True)
            finally:
                await browser.close()


def test_without_ingest_han_says_it_has_not_reported(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    with (
        rest_process(redis_server, tmp_path / "rest.log") as rest,
        httpx.Client(base_url=rest.url, timeout=5) as client,
    ):
        han = client.get("/han").json()
        assert han["ingest"]["state"] == "ingest"
        assert (
            han["ingest"]["reason"]
            == "the ingest service has not reported yet (no status in Redis)"
        )
        assert han["ingest"]["updated"] is None
        assert "start the ingest service" in han["ingest"]["fix"]


async def test_an_old_status_means_ingest_is_silent_and_a_fresh_reading_hides_it(
    rest_factory: RestFactory,
) -> None:
    rest = await rest_factory()
    old = int(time.time() * 1000) - 120_000
    await rest.redis.hset(
        STATUS_KEY, mapping={"state": "source", "reason": "x", "fix": "y", "updated": old}
    )
    han = (await rest.client.get("/han")).json()
    assert han["ingest"]["state"] == "ingest" and han["ingest"]["updated"] == old
    assert han["ingest"]["reason"].startswith("the ingest service has not reported for 12")

    await rest.redis.delete(STATUS_KEY)
    await rest.redis.set(STATUS_KEY, "not a hash")  # unreadable: as if ingest never wrote it
    han = (await rest.client.get("/han")).json()
    assert han["ingest"]["state"] == "ingest" and han["ingest"]["updated"] is None

    await rest.add()  # a fresh reading: /han and /readyz answer as before, without `ingest`
    han = (await rest.client.get("/han")).json()
    assert "ingest" not in han and han["last_reading"] is not None
    ready = (await rest.client.get("/readyz")).json()
    assert ready == {"ready": True, "redis": True, "fresh": True, "message": "ready"}


async def test_han_stays_open_with_read_auth_and_serves_no_reading(
    rest_factory: RestFactory,
) -> None:
    rest = await rest_factory(rest_tokens="reader-1:read", rest_read_auth=True)
    await rest.add()
    assert (await rest.client.get("/meter")).status_code == 401
    han = await rest.client.get("/han")
    assert han.status_code == 200
    body = han.json()
    reading_keys = {"p", "pi", "pe", "u", "i", "ic", "ec", "ric", "rec"}
    assert not reading_keys & set(body), body
    assert body["type"] == "HAN_STATE_MESSAGE" and body["last_reading"] is not None
    assert (await rest.client.get("/", follow_redirects=False)).status_code == 200


def test_explain_judges_freshness_by_updated() -> None:
    now = 1_764_152_400_000
    written = {"state": "bytes", "reason": "no bytes in 60 s", "fix": "check the cable"}
    fresh = explain({**written, "updated": str(now - 29_000)}, now)
    assert fresh == {**written, "updated": now - 29_000}
    assert one_line(fresh) == "no bytes in 60 s — check the cable"
    assert one_line({**fresh, "fix": ""}) == "no bytes in 60 s"
    old = explain({**written, "updated": str(now - 31_000)}, now)
    assert old["state"] == "ingest" and old["updated"] == now - 31_000
    assert old["reason"] == "the ingest service has not reported for 31 s (status older than 30 s)"
    for garbage in ({}, {"updated": ""}, {"updated": "soon"}, {"updated": "-5"}):
        silent = explain(garbage, now)
        assert silent["state"] == "ingest" and silent["updated"] is None, garbage
        assert silent["reason"] == "the ingest service has not reported yet (no status in Redis)"
