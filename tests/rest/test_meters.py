"""Several meters through REST, on a real redis-server: three meters at once (one on the classic
stream, two with streams of their own registered in the directory, one with a gas sub-meter);
`/meter` stays the default meter's, `/meters` lists them all, `/meters/{id}` serves each, one
unplugged goes stale alone, an unknown id is a 404 naming the known ones, a reading of a meter
the directory does not know is served, `/events` and `/ws` say each reading's meter."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import msgspec
import pytest
import websockets

from shared.reading import cozify_message
from tests.licensing_helpers import grant
from tests.rest.conftest import TIMEOUT, RestFactory, RestUnderTest
from tests.rest.meters import (
    Event,
    Meter,
    add,
    add_from,
    box_meters,
    register,
    sse,
    wait_until_known,
)
from tests.servers import RedisServer

NAMES = ["gas", "heatpump", "main"]


async def three_meters(rest: RestUnderTest) -> dict[str, Meter]:
    """The three meters registered, each with a fresh reading held by the replica."""
    meters = box_meters(rest.settings.stream, rest.settings.raw_stream)
    for meter in meters.values():
        await register(rest, meter)
    await wait_until_known(rest, *NAMES)
    for meter in meters.values():
        await add_from(rest, meter)
    return meters


@pytest.fixture
async def box(rest_factory: RestFactory) -> tuple[RestUnderTest, dict[str, Meter]]:
    rest = await rest_factory(rest_stale_after=30.0)
    return rest, await three_meters(rest)


async def test_meters_lists_every_meter_and_the_default(
    box: tuple[RestUnderTest, dict[str, Meter]],
) -> None:
    rest, meters = box
    answer = await rest.client.get("/meters")
    assert answer.status_code == 200
    listing = answer.json()
    assert listing["type"] == "HAN_METERS" and listing["default"] == "main"
    by_id = {m["id"]: m for m in listing["meters"]}
    assert list(by_id) == NAMES
    gas = by_id["gas"]
    assert gas["model"] == "KFM5KAIFA-METER"
    assert gas["meter_id"] == meters["gas"].readings[0].meter_id
    assert gas["submeters"] == [{"channel": 1, "medium": "gas"}]
    assert gas["stream"] == "hanport:{gas}:readings" and gas["in_directory"] is True
    assert [m["default"] for m in by_id.values()] == [False, False, True]
    assert not any(m["stale"] for m in by_id.values())
    assert all(0 <= m["last_reading_age"] < 30 for m in by_id.values())
    assert by_id["main"]["stream"] == rest.settings.stream
    assert by_id["heatpump"]["submeters"] == []


async def test_each_meter_is_served_and_meter_stays_the_default(
    box: tuple[RestUnderTest, dict[str, Meter]],
) -> None:
    rest, _meters = box
    newest = {name: rest.state.meters[name].latest for name in NAMES}
    main = newest["main"]
    assert main is not None
    # /meter and /meter/data: exactly as before, the default meter's Cozify message
    for path in ("/meter", "/meter/data"):
        assert (await rest.client.get(path)).json() == cozify_message(main.reading)
    for name, snapshot in newest.items():
        assert snapshot is not None
        answer = await rest.client.get(f"/meters/{name}")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["meter"] == name
        assert {k: body[k] for k in cozify_message(snapshot.reading)} == cozify_message(
            snapshot.reading
        )
    han = (await rest.client.get("/han")).json()
    assert han["meter"]["id"] == main.reading.meter_id


async def test_the_sub_meter_is_an_extra_object_with_its_own_time(
    box: tuple[RestUnderTest, dict[str, Meter]],
) -> None:
    rest, _meters = box
    body = (await rest.client.get("/meters/gas")).json()
    snapshot = rest.state.meters["gas"].latest
    assert snapshot is not None
    (sub,) = snapshot.reading.submeters
    assert body["submeters"] == {
        "1": {
            "medium": "gas",
            "device_type": 3,
            "id": sub.id,
            "value": sub.value,
            "unit": "m3",
            "ts": sub.ts,
        }
    }
    assert sub.value is not None and sub.value > 0 and sub.ts != body["ts"]
    assert body["ic"] == snapshot.reading.ic  # the Cozify keys as ever
    assert "submeters" not in (await rest.client.get("/meters/main")).json()


async def test_one_meter_unplugged_goes_stale_alone(rest_factory: RestFactory) -> None:
    rest = await rest_factory(rest_stale_after=30.0)
    meters = box_meters(rest.settings.stream, rest.settings.raw_stream)
    for meter in meters.values():
        await register(rest, meter)
    await wait_until_known(rest, *NAMES)
    await add_from(rest, meters["main"])
    await add_from(rest, meters["gas"])
    await add_from(rest, meters["heatpump"], age_s=60)  # its last reading, a minute ago
    stale = await rest.client.get("/meters/heatpump")
    assert stale.status_code == 503
    body = stale.json()
    assert body["error"] == "stale" and body["meter"] == "heatpump"
    assert "heatpump" in body["message"] and body["age_seconds"] >= 59
    assert body["ingest"]["state"] == "ingest"  # its ingest never reported: it is not running
    # its ingest's word on its source, from its own status hash
    now_ms = int(time.time() * 1000)
    reason = "serial /dev/ttyUSB1: the device is missing"
    await rest.redis.hset(
        meters["heatpump"].keys.status,
        mapping={"state": "source", "reason": reason, "fix": "plug it in", "updated": now_ms},
    )
    why = (await rest.client.get("/meters/heatpump")).json()["ingest"]
    assert (why["state"], why["reason"], why["fix"]) == ("source", reason, "plug it in")
    for name in ("main", "gas"):
        assert (await rest.client.get(f"/meters/{name}")).status_code == 200
    assert (await rest.client.get("/meter")).status_code == 200
    listing = {m["id"]: m["stale"] for m in (await rest.client.get("/meters")).json()["meters"]}
    assert listing == {"gas": False, "heatpump": True, "main": False}
    # Home Assistant gets the stale answer as text, as from /meter
    text = await rest.client.get(
        "/meters/heatpump", headers={"user-agent": "HomeAssistant/2025.4.4 aiohttp/3.11"}
    )
    assert text.status_code == 503 and text.text.startswith("503 stale: ")


async def test_an_unknown_meter_is_404_listing_the_known_ones(
    box: tuple[RestUnderTest, dict[str, Meter]],
) -> None:
    rest, _meters = box
    for path in ("/meters/garage", "/meters/garage/history", "/meters/garage/telegram"):
        answer = await rest.client.get(path)
        assert answer.status_code == 404, path
        body = answer.json()
        assert body["error"] == "unknown_meter" and body["meters"] == NAMES
        assert "no meter 'garage' on this box; known: gas, heatpump, main" in body["message"]
    assert (await rest.client.get("/events?meter=garage")).status_code == 404
    assert (await rest.client.get("/meters/bad%20name")).status_code == 422


async def test_a_reading_of_a_meter_the_directory_does_not_know_is_served(
    box: tuple[RestUnderTest, dict[str, Meter]],
) -> None:
    rest, meters = box
    stranger = msgspec.structs.replace(meters["heatpump"].next(), meter="stranger")
    await add(rest, stranger, rest.settings.stream)
    answer = await rest.client.get("/meters/stranger")
    assert answer.status_code == 200 and answer.json()["meter"] == "stranger"
    listing = {m["id"]: m for m in (await rest.client.get("/meters")).json()["meters"]}
    assert listing["stranger"]["in_directory"] is False
    # the classic stream's registered meter stays the default
    assert (await rest.client.get("/meters")).json()["default"] == "main"


async def test_the_default_meter_setting_picks_what_meter_serves(
    rest_factory: RestFactory,
) -> None:
    rest = await rest_factory(default_meter="heatpump")
    meters = await three_meters(rest)
    heatpump = rest.state.meters["heatpump"].latest
    assert heatpump is not None and meters
    assert (await rest.client.get("/meter")).json() == cozify_message(heatpump.reading)
    assert (await rest.client.get("/meters")).json()["default"] == "heatpump"


async def test_history_and_telegram_per_meter(
    box: tuple[RestUnderTest, dict[str, Meter]],
) -> None:
    rest, meters = box
    more = [await add_from(rest, meters["heatpump"]) for _ in range(2)]
    await add_from(rest, meters["main"])  # another meter's reading in between
    history = (await rest.client.get("/meters/heatpump/history")).json()
    assert history["type"] == "HAN_METER_HISTORY"
    assert [r["id"] for r in history["readings"]][-2:] == [s.entry_id for s in more]
    assert len(history["readings"]) == 3 and history["more"] is False
    limited = (await rest.client.get("/meters/main/history?limit=1")).json()
    assert len(limited["readings"]) == 1 and limited["more"] is True
    telegram = (await rest.client.get("/meters/gas/telegram")).json()
    assert telegram["encoding"] == "text" and telegram["telegram"].startswith("/KFM5KAIFA-METER")
    missing = await rest.client.get("/meters/heatpump/telegram")
    assert missing.status_code == 404 and "hanport:{heatpump}:raw" in missing.json()["message"]


async def meter_events(rest: RestUnderTest, path: str, n: int, then: list[Meter]) -> list[Event]:
    """The first `n` readings `path` sends while `then` meters each add a reading."""
    got: list[Event] = []
    async with rest.client.stream("GET", path) as response:
        assert response.status_code == 200
        events = sse(response)
        async with asyncio.timeout(TIMEOUT):
            adding = asyncio.create_task(_add_each(rest, then))
            async for event in events:
                if event.event == "HAN_METER_MESSAGE":
                    got.append(event)
                    if len(got) == n:
                        break
            await adding
    return got


async def _add_each(rest: RestUnderTest, meters: list[Meter]) -> None:
    await asyncio.sleep(0.2)  # noqa: ASYNC110 - the stream is open; its snapshot comes first
    for meter in meters:
        await add_from(rest, meter)


async def test_events_say_each_readings_meter(
    box: tuple[RestUnderTest, dict[str, Meter]],
) -> None:
    rest, meters = box
    order = [meters["heatpump"], meters["gas"], meters["main"]]
    # every meter: each one's newest first, then live ones; `meter:` names each
    every = await meter_events(rest, "/events?meter=*", 6, order)
    assert [e.meter for e in every] == NAMES + ["heatpump", "gas", "main"]
    for event in every:
        assert json.loads(event.data)["type"] == "HAN_METER_MESSAGE"
    # the default (no parameter): only the default meter's, as before, saying `meter: main`
    default = await meter_events(rest, "/events", 2, order)
    assert [e.meter for e in default] == ["main", "main"]
    # one meter's, resumable by its stream's ids
    one = await meter_events(rest, "/meters/heatpump/events", 2, order)
    assert [e.meter for e in one] == ["heatpump", "heatpump"]
    missed = await add_from(rest, meters["heatpump"])
    async with rest.client.stream(
        "GET", "/meters/heatpump/events", headers={"Last-Event-ID": one[-1].id or ""}
    ) as response:
        async with asyncio.timeout(TIMEOUT):
            async for event in sse(response):
                if event.event == "HAN_METER_MESSAGE":
                    assert (event.id, event.meter) == (missed.entry_id, "heatpump")
                    break


async def test_websocket_of_every_meter_says_each_frames_meter(
    box: tuple[RestUnderTest, dict[str, Meter]],
) -> None:
    rest, meters = box
    url = rest.url.replace("http://", "ws://")
    async with websockets.connect(url + "/ws?meter=*", open_timeout=TIMEOUT) as socket:
        first = [json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT)) for _ in NAMES]
        assert [f["meter"] for f in first] == NAMES
        await add_from(rest, meters["gas"])
        live = json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))
        assert live["meter"] == "gas" and live["submeters"]["1"]["medium"] == "gas"
    async with websockets.connect(url + "/ws", open_timeout=TIMEOUT) as socket:
        plain = json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))
        main = rest.state.meters["main"].latest
        assert main is not None and plain == cozify_message(main.reading)  # as before


def test_a_default_meter_that_is_no_meter_name_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.rest.settings import RestSettings
    from shared.settings import load_settings

    monkeypatch.setenv("HANPORT_DEFAULT_METER", "main meter")
    with pytest.raises(SystemExit) as stopped:
        load_settings(RestSettings)
    assert stopped.value.code == 2
    line = capsys.readouterr().err
    assert "HANPORT_DEFAULT_METER='main meter'" in line and "not a meter name" in line


def test_meters_held_are_bounded_forgetting_the_longest_silent_unlisted_one() -> None:
    from services.rest.state import State
    from shared.meters import MeterKeys, MeterRecord
    from tests.readings import simulated_readings

    state = State(stale_after=30, max_meters=3)
    keys = MeterKeys.named("listed")
    state.set_records(
        [MeterRecord(name="listed", readings=keys.readings, raw=keys.raw, status=keys.status)]
    )
    template = simulated_readings(1)[0]
    now = int(time.time() * 1000)
    for number, name in enumerate(["listed", "a", "b", "c", "d"]):
        reading = msgspec.structs.replace(template, meter=name, received=now - 60_000 + number)
        state.publish(f"{now + number}-0", reading)
    # "listed" is in the directory: kept however silent; "a" was the longest silent of the rest,
    # then "b"; the newest reading's meter is always held
    assert sorted(state.meters) == ["c", "d", "listed"]


async def test_a_license_naming_meters_serves_only_those(
    rest_factory: RestFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = await grant(
        redis_server.url, tmp_path, "HPTESTMETERS", ["rest"], use="commercial",
        meters=["main", "gas"],
    )  # fmt: skip
    rest = await rest_factory(
        use="commercial",
        serial=env["HANPORT_SERIAL"],
        license_public_keys=env["HANPORT_LICENSE_PUBLIC_KEYS"],
    )
    assert rest.guard is not None and rest.guard.entitlements is not None
    await asyncio.wait_for(rest.guard.entitlements.wait_until("rest", granted=True), TIMEOUT)
    meters = await three_meters(rest)
    for path in ("/meter", "/meters/main", "/meters/gas", "/meters/gas/history"):
        assert (await rest.client.get(path)).status_code == 200, path
    for path in ("/meters/heatpump", "/meters/heatpump/history", "/meters/heatpump/telegram",
                 "/meters/heatpump/events", "/events?meter=heatpump"):  # fmt: skip
        refused = await rest.client.get(path)
        assert refused.status_code == 403, path
        body = refused.json()
        assert (body["error"], body["meter"]) == ("unlicensed", "heatpump")
        assert "serves only the meters gas, main, not meter 'heatpump'" in body["message"]
    served = {m["id"]: m["served"] for m in (await rest.client.get("/meters")).json()["meters"]}
    assert served == {"gas": True, "heatpump": False, "main": True}
    # every meter's stream leaves the heat pump's readings out
    order = [meters["heatpump"], meters["gas"]]
    every = await meter_events(rest, "/events?meter=*", 3, order)
    assert [e.meter for e in every] == ["gas", "main", "gas"]
    url = rest.url.replace("http://", "ws://") + "/ws?meter=heatpump"
    with pytest.raises(websockets.InvalidStatus) as denied:
        async with websockets.connect(url, open_timeout=TIMEOUT):
            pass
    assert denied.value.response.status_code == 403
