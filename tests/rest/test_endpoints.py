"""Every REST endpoint against a real redis-server and the service really serving HTTP."""

from __future__ import annotations

import asyncio

import msgspec

from shared.ingest_status import one_line
from shared.reading import cozify_message
from tests.rest.conftest import RestFactory, RestUnderTest


async def test_meter_serves_the_latest_reading_as_the_cozify_message(rest: RestUnderTest) -> None:
    await rest.add()
    entry_id = await rest.add()
    stored = await rest.stream.range(entry_id, entry_id)
    expected = cozify_message(stored[0][1])

    for path in ("/meter", "/meter/data"):
        response = await rest.client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == expected
    assert expected["type"] == "HAN_METER_MESSAGE"
    assert expected["ts"] == stored[0][1].ts


async def test_meter_is_503_with_the_reason_before_any_reading(rest: RestUnderTest) -> None:
    response = await rest.client.get("/meter")
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "stale"
    assert "no reading received yet" in body["message"]
    assert body["age_seconds"] is None and body["last_reading"] is None


async def test_meter_is_503_when_the_newest_reading_is_too_old(rest_factory: RestFactory) -> None:
    rest = await rest_factory(rest_stale_after=2.0)
    await rest.add(age_s=7.0)
    for path in ("/meter", "/meter/data"):
        response = await rest.client.get(path)
        assert response.status_code == 503
        body = response.json()
        assert body["error"] == "stale"
        assert 7.0 <= body["age_seconds"] < 60
        assert body["stale_after"] == 2.0
        assert "limit 2 s" in body["message"]
    await rest.add()  # a fresh one: served again
    assert (await rest.client.get("/meter")).status_code == 200


async def test_han_state_message(rest: RestUnderTest) -> None:
    await rest.add()
    # the serial the licensing service establishes (REST waits for it, never makes one up)
    await rest.redis.set("hanport:serial", "HPTEST0001")
    async with asyncio.timeout(10):
        while rest.state.serial is None:  # noqa: ASYNC110 - no event marks it
            await asyncio.sleep(0.05)
    body = (await rest.client.get("/han")).json()
    latest = rest.state.latest
    assert latest is not None
    assert body["type"] == "HAN_STATE_MESSAGE"
    assert body["name"] == "hanport" and body["model"] == "hanport"
    assert body["serial"] and await rest.redis.get("hanport:serial") == body["serial"].encode()
    assert body["version"] == "0.1.0"
    assert body["uptime"] >= 0
    assert body["meter"] == {"id": latest.reading.meter_id, "model": latest.reading.meter_model}
    assert body["last_reading"] == latest.reading.ts
    assert body["licensed"] == {
        "rest": True, "mqtt": False, "modbus": False, "shelly": False, "homewizard": False, "sma": False,
        "export": False,
    }  # fmt: skip


async def test_telegram_text_for_p1_and_hex_for_binary(rest: RestUnderTest) -> None:
    assert (await rest.client.get("/meter/telegram")).status_code == 404
    p1 = b"/TST5\\253833635_A\r\n\r\n1-0:1.8.0(000123.456*kWh)\r\n!ABCD\r\n"
    entry = await rest.redis.xadd(
        rest.settings.raw_stream, {"raw": p1, "result": "ok", "received": 1764152400000}
    )
    body = (await rest.client.get("/meter/telegram")).json()
    assert body == {
        "type": "HAN_TELEGRAM",
        "id": entry.decode() if isinstance(entry, bytes) else entry,
        "encoding": "text",
        "telegram": p1.decode(),
        "fields": {"result": "ok", "received": "1764152400000"},
    }
    frame = bytes.fromhex(
        "7ea0 2a41 0883 1304 13e6 e700 0f40 0000 0000 0101 0203 0906 0000 0100 00ff 7e"
    )
    await rest.redis.xadd(
        rest.settings.raw_stream, {"raw": frame, "result": "ok", "received": 1764152401000}
    )
    body = (await rest.client.get("/meter/telegram")).json()
    assert body["encoding"] == "hex" and body["telegram"] == frame.hex()


async def test_history_by_time_since_and_limit(rest: RestUnderTest) -> None:
    ids = [await rest.add() for _ in range(5)]
    everything = (await rest.client.get("/meter/history")).json()
    assert [r["id"] for r in everything["readings"]] == ids
    assert everything["more"] is False and everything["next_since"] == ids[-1]
    stored = {i: cozify_message(r) for i, r in await rest.stream.range()}
    for item in everything["readings"]:
        assert {k: v for k, v in item.items() if k != "id"} == stored[item["id"]]

    page = (await rest.client.get("/meter/history", params={"limit": 2})).json()
    assert [r["id"] for r in page["readings"]] == ids[:2] and page["more"] is True
    rest_of = (await rest.client.get("/meter/history", params={"since": page["next_since"]})).json()
    assert [r["id"] for r in rest_of["readings"]] == ids[2:]

    ms = [int(i.split("-")[0]) for i in ids]
    window = (await rest.client.get("/meter/history", params={"from": ms[1], "to": ms[3]})).json()
    assert [r["id"] for r in window["readings"]] == [
        i for i, m in zip(ids, ms, strict=True) if ms[1] <= m <= ms[3]
    ]
    from datetime import UTC, datetime

    inverted = (await rest.client.get("/meter/history", params={"from": ms[3], "to": ms[1]})).json()
    assert inverted["readings"] == [] and inverted["next_since"] is None
    both = (await rest.client.get("/meter/history", params={"since": ids[0], "from": ms[2]})).json()
    assert [r["id"] for r in both["readings"]] == [
        i for i, m in zip(ids, ms, strict=True) if m >= ms[2]
    ]
    iso = datetime.fromtimestamp(ms[2] / 1000, UTC).isoformat(timespec="milliseconds")
    later = (await rest.client.get("/meter/history", params={"from": iso})).json()
    assert [r["id"] for r in later["readings"]] == [
        i for i, m in zip(ids, ms, strict=True) if m >= ms[2]
    ]


async def test_bad_parameters_are_422_with_a_clear_message(rest: RestUnderTest) -> None:
    cases = {
        "from=yesterday": "'from'",
        "to=12:00": "'to'",
        "since=abc": "'since'",
        "limit=0": "'limit'",
        "limit=many": "'limit'",
    }
    for query, needle in cases.items():
        response = await rest.client.get(f"/meter/history?{query}")
        assert response.status_code == 422, query
        body = response.json()
        assert body["error"] == "bad_request"
        assert needle in body["message"], (query, body["message"])
    response = await rest.client.get("/events", headers={"Last-Event-ID": "not-an-id"})
    assert response.status_code == 422
    assert "header parameter 'last-event-id'='not-an-id'" in response.json()["message"]
    metrics = (await rest.client.get("/metrics")).text
    assert "hanport_rest_bad_requests_total" in metrics


async def test_health_readiness_and_metrics(rest: RestUnderTest) -> None:
    assert (await rest.client.get("/healthz")).json() == {"status": "ok"}
    not_ready = await rest.client.get("/readyz")
    assert not_ready.status_code == 503
    body = not_ready.json()
    ingest = body.pop("ingest")  # no ingest service in this test: it has not reported
    assert ingest["state"] == "ingest" and ingest["updated"] is None
    assert body == {
        "ready": False,
        "redis": True,
        "fresh": False,
        "message": "no reading received yet; ingest: " + one_line(ingest),
    }
    await rest.add()
    ready = await rest.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    await rest.client.get("/meter")
    metrics = await rest.client.get("/metrics")
    assert metrics.status_code == 200
    assert 'hanport_rest_meter_requests_total{status="200"}' in metrics.text
    assert "hanport_redis_connected 1.0" in metrics.text


async def test_live_page_and_its_assets_are_served(rest: RestUnderTest) -> None:
    page = await rest.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/static/app.js" in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert (await rest.client.get(asset)).status_code == 200


async def test_reading_entries_that_do_not_decode_are_skipped(rest: RestUnderTest) -> None:
    good = await rest.add()
    await rest.redis.xadd(rest.settings.stream, {"reading": b"{not json"})
    newer = await rest.add()
    assert rest.state.latest is not None and rest.state.latest.entry_id == newer != good
    body = (await rest.client.get("/meter")).json()
    stored = (await rest.stream.range(newer, newer))[0][1]
    assert body == msgspec.json.decode(msgspec.json.encode(cozify_message(stored)))
