"""Several meters through the bridge, on a real mosquitto and redis-server: the default meter
keeps the one-meter topics and device, every other meter publishes under `<prefix>/meters/<name>`
as a Home Assistant device of its own, `via_device` the box; a DSMR meter's gas sub-meter is a
gas sensor with its own time; every reading of every meter's stream is published and
acknowledged; a license naming meters serves only those."""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.meters import MeterDirectory, MeterKeys, MeterRecord
from shared.reading import Reading, SubMeter, encode_cozify
from shared.stream import ReadingStream, connect
from tests.licensing_helpers import grant
from tests.servers import MosquittoServer, RedisServer

from .support import SERIAL, STREAM, Subscriber, eventually, no_pending, running_bridge, settings

BASE = f"hanport/{SERIAL}"
NODE = "hanport_hptest01"
BOX = f"{NODE}-box"
T0 = 1_764_000_000_000
N = 5  # readings per meter
DSMR_ID = "E0044007382246019"


def main_reading(n: int) -> Reading:
    return Reading(
        ts=T0 + n * 1000, received=T0 + n * 1000 + 5, meter="main", meter_id="7350000000000001",
        meter_model="Kaifa MA304H4", ic=1000.0 + n, p=[1500.0 + n, None, None, None],
    )  # fmt: skip


def heatpump_reading(n: int) -> Reading:
    return Reading(
        ts=T0 + n * 1000, received=T0 + n * 1000 + 7, meter="heatpump", meter_id="HP-77",
        meter_model="ABB B23", ic=50.0 + n, p=[800.0 + n, None, None, None],
    )  # fmt: skip


def dsmr_reading(n: int) -> Reading:
    return Reading(
        ts=T0 + n * 1000, received=T0 + n * 1000 + 9, meter="dsmr", meter_id=DSMR_ID,
        meter_model="ISK5\\2M550T-1012", ic=2130.115 + n, p=[111.0, None, None, None],
        submeters=[
            SubMeter(channel=1, device_type=3, id="G0039001936990619", value=246.138 + n,
                     unit="m3", ts=T0 - 300_000),
        ],
    )  # fmt: skip


async def add_meters(redis_url: str) -> None:
    """`main` on the classic stream, `heatpump` and `dsmr` on streams of their own, listed in
    the directory as their ingests list them; N readings each."""
    redis = await connect(redis_url)
    directory = MeterDirectory(redis)
    now = int(time.time() * 1000)
    for name in ("heatpump", "dsmr"):
        keys = MeterKeys.named(name)
        await directory.put(MeterRecord(name=name, readings=keys.readings, raw=keys.raw,
                                        status=keys.status, started=now, updated=now))  # fmt: skip
    classic = ReadingStream(redis, STREAM)
    heatpump = ReadingStream(redis, MeterKeys.named("heatpump").readings)
    dsmr = ReadingStream(redis, MeterKeys.named("dsmr").readings)
    for n in range(N):
        await classic.add(main_reading(n))
        await heatpump.add(heatpump_reading(n))
        await dsmr.add(dsmr_reading(n))
    await redis.aclose()


def config_of(sub: Subscriber, node: str, slug: str) -> dict[str, Any] | None:
    topic = f"homeassistant/sensor/{node}/{slug}/config"
    found = [m for m in sub.on(topic) if m.payload]
    return msgspec.json.decode(found[-1].payload) if found else None


def refused(meter: str) -> float:
    value = REGISTRY.get_sample_value(
        "hanport_entitlement_meter_refused_total", {"feature": "mqtt", "meter": meter}
    )
    return value or 0.0


async def test_three_meters_each_publish_as_a_device_of_their_own(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    await add_meters(redis_server.url)
    config = settings(redis_server, mosquitto_server, license_keys, mqtt_discovery=True)
    heatpump_data = f"{BASE}/meters/heatpump/data"
    dsmr_data = f"{BASE}/meters/dsmr/data"
    async with (
        Subscriber(mosquitto_server, ["homeassistant/#", f"{BASE}/#"]) as sub,
        running_bridge(config),
    ):
        await sub.wait_count(f"{BASE}/data", N)
        await sub.wait_count(heatpump_data, N)
        await sub.wait_count(dsmr_data, N)
        # the default meter's configs are sent again once the box has other meters
        await sub.wait_for(
            lambda _m: (
                (c := config_of(sub, NODE, "energy_import")) is not None
                and c["device"].get("via_device") == BOX
            )
        )
        redis = await connect(redis_server.url)
        keys = [STREAM, *(MeterKeys.named(n).readings for n in ("heatpump", "dsmr"))]
        for key in keys:
            await eventually(functools.partial(no_pending, redis, key=key))
        await redis.aclose()

    # the default meter (on the classic stream) keeps the one-meter topic, in order
    assert [m.payload for m in sub.on(f"{BASE}/data")] == [
        encode_cozify(main_reading(n)) for n in range(N)
    ]
    assert [m.payload for m in sub.on(heatpump_data)] == [
        encode_cozify(heatpump_reading(n)) for n in range(N)
    ]
    assert [m.payload for m in sub.on(dsmr_data)] == [
        encode_cozify(dsmr_reading(n)) for n in range(N)
    ]
    assert not sub.on(f"{BASE}/meters/main/#")

    # the box's device, and each meter its own device via it
    box = config_of(sub, BOX, "status")
    assert box is not None
    assert box["device"]["identifiers"] == [BOX] and box["state_topic"] == f"{BASE}/availability"
    main = config_of(sub, NODE, "energy_import")
    assert main is not None
    assert main["unique_id"] == f"{NODE}_energy_import"  # the one-meter entity stays
    assert main["state_topic"] == f"{BASE}/data"
    assert main["device"]["identifiers"] == [NODE] and main["device"]["via_device"] == BOX
    heat = config_of(sub, f"{NODE}_heatpump", "power")
    assert heat is not None
    assert heat["unique_id"] == f"{NODE}_heatpump_power"
    assert heat["default_entity_id"] == f"sensor.{NODE}_heatpump_power"
    assert heat["state_topic"] == heatpump_data
    assert heat["device"] == {
        "identifiers": [f"{NODE}_heatpump"], "name": f"hanport {SERIAL} heatpump",
        "manufacturer": "hanport", "model": "ABB B23", "serial_number": "HP-77",
        "sw_version": heat["device"]["sw_version"], "via_device": BOX,
    }  # fmt: skip

    # the DSMR meter's gas sub-meter: a gas sensor and its own time
    node = f"{NODE}_dsmr"
    gas = config_of(sub, node, "gas_1")
    assert gas is not None
    assert (gas["device_class"], gas["state_class"], gas["unit_of_measurement"]) == (
        "gas",
        "total_increasing",
        "m³",
    )
    assert gas["state_topic"] == f"{BASE}/meters/dsmr/submeters"
    assert gas["value_template"] == "{{ value_json.gas_1.value }}"
    assert gas["unique_id"] == f"{node}_gas_1" and gas["device"]["via_device"] == BOX
    gas_time = config_of(sub, node, "gas_1_time")
    assert gas_time is not None and gas_time["device_class"] == "timestamp"
    assert "state_class" not in gas_time
    last = msgspec.json.decode(sub.on(f"{BASE}/meters/dsmr/submeters")[-1].payload)
    assert last["gas_1"]["value"] == 246.138 + N - 1
    assert last["gas_1"]["unit"] == "m3" and last["gas_1"]["medium"] == "gas"
    assert last["gas_1"]["ts"] == T0 - 300_000
    assert last["gas_1"]["time"] == "2025-11-24T15:55:00+00:00"
    assert len(sub.on(f"{BASE}/meters/dsmr/submeters")) == N


async def test_a_license_naming_meters_serves_only_those(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, tmp_path: Path
) -> None:
    """`main` named by its name, `dsmr` by its equipment id; `heatpump` not named: its readings
    are acknowledged unpublished, logged and counted."""
    env = await grant(redis_server.url, tmp_path, SERIAL, ["mqtt"], meters=["main", DSMR_ID])
    await add_meters(redis_server.url)
    config = settings(
        redis_server, mosquitto_server, env["HANPORT_LICENSE_PUBLIC_KEYS"], mqtt_discovery=True
    )
    before = refused("heatpump")
    async with (
        Subscriber(mosquitto_server, ["homeassistant/#", f"{BASE}/#"]) as sub,
        running_bridge(config),
    ):
        await sub.wait_count(f"{BASE}/data", N)
        await sub.wait_count(f"{BASE}/meters/dsmr/data", N)
        redis = await connect(redis_server.url)
        heatpump = MeterKeys.named("heatpump").readings
        await eventually(lambda: no_pending(redis, key=heatpump))
        await redis.aclose()
    assert not sub.on(f"{BASE}/meters/heatpump/#")
    assert not sub.on(f"homeassistant/sensor/{NODE}_heatpump/#")
    assert refused("heatpump") == before + N
    assert refused("main") == refused("dsmr") == 0


async def test_the_configured_default_meter_takes_the_one_meter_topics(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    """`HANPORT_DEFAULT_METER` (here by equipment id): that meter publishes on the configured
    topic with the one-meter device; the meter on the classic stream moves under `meters/`."""
    await add_meters(redis_server.url)
    config = settings(
        redis_server, mosquitto_server, license_keys, mqtt_discovery=True, default_meter="HP-77"
    )
    async with (
        Subscriber(mosquitto_server, ["homeassistant/#", f"{BASE}/#"]) as sub,
        running_bridge(config),
    ):
        await sub.wait_count(f"{BASE}/data", N)
        await sub.wait_count(f"{BASE}/meters/main/data", N)
        await sub.wait_for(lambda _m: config_of(sub, f"{NODE}_main", "energy_import") is not None)
    assert [m.payload for m in sub.on(f"{BASE}/data")] == [
        encode_cozify(heatpump_reading(n)) for n in range(N)
    ]
    assert [m.payload for m in sub.on(f"{BASE}/meters/main/data")] == [
        encode_cozify(main_reading(n)) for n in range(N)
    ]
    power = config_of(sub, NODE, "power")
    assert power is not None and power["device"]["model"] == "ABB B23"


async def raw_group_on(redis: Redis, key: str) -> bool:
    try:
        return any(g["name"] == b"mqtt-raw" for g in await redis.xinfo_groups(key))
    except ResponseError:  # the stream does not exist yet
        return False


async def test_each_named_meter_has_its_raw_topic(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    """With HANPORT_MQTT_RAW_TOPIC, a named meter's decoded telegrams go to
    `<prefix>/meters/<name>/raw`, from its own raw stream; the classic raw topic is unchanged."""
    await add_meters(redis_server.url)
    config = settings(redis_server, mosquitto_server, license_keys, mqtt_raw_topic="hanport/raw")
    raw_key = MeterKeys.named("dsmr").raw
    redis = await connect(redis_server.url)
    async with (
        Subscriber(mosquitto_server, ["hanport/raw", f"{BASE}/meters/+/raw"]) as sub,
        running_bridge(config),
    ):
        await eventually(functools.partial(raw_group_on, redis, raw_key))
        for raw, result in (
            (b"/ISK5 one", "ok"),
            (b"/ISK5 bad", "crc_error"),
            (b"/ISK5 two", "ok"),
        ):
            await redis.xadd(raw_key, {b"raw": raw, b"result": result, b"received": 1})
        got = await sub.wait_count(f"{BASE}/meters/dsmr/raw", 2)
        await eventually(functools.partial(no_pending, redis, "mqtt-raw", raw_key))
    await redis.aclose()
    assert [m.payload for m in got] == [b"/ISK5 one", b"/ISK5 two"]
    assert not sub.on("hanport/raw") and not sub.on(f"{BASE}/meters/heatpump/raw")


def unique(payloads: list[bytes]) -> list[bytes]:
    """In order of first arrival (at least once: a message whose PUBACK was lost may repeat)."""
    return list(dict.fromkeys(payloads))


async def test_a_redis_restart_loses_no_meters_reading(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    """Every meter's stream, before and after Redis restarts, is published whole and in order,
    and nothing stays pending on any of them."""
    await add_meters(redis_server.url)  # readings 0..N-1 of each meter
    config = settings(redis_server, mosquitto_server, license_keys)
    topics = {
        STREAM: (f"{BASE}/data", main_reading),
        MeterKeys.named("heatpump").readings: (f"{BASE}/meters/heatpump/data", heatpump_reading),
        MeterKeys.named("dsmr").readings: (f"{BASE}/meters/dsmr/data", dsmr_reading),
    }
    async with (
        Subscriber(mosquitto_server, [f"{BASE}/#"]) as sub,
        running_bridge(config),
    ):
        for topic, _make in topics.values():
            await sub.wait_count(topic, N)
        await asyncio.to_thread(redis_server.restart)  # append-only file: the streams survive
        redis = await connect(redis_server.url)
        for key, (_topic, make) in topics.items():
            for n in range(N, 2 * N):
                await ReadingStream(redis, key).add(make(n))
        for topic, _make in topics.values():
            await sub.wait_for(functools.partial(all_arrived, sub, topic))
        for key in topics:
            await eventually(functools.partial(no_pending, redis, key=key))
        await redis.aclose()
    for topic, make in topics.values():
        assert unique(pay(sub, topic)) == [encode_cozify(make(n)) for n in range(2 * N)]


def pay(sub: Subscriber, topic: str) -> list[bytes]:
    return [bytes(m.payload) for m in sub.on(topic)]


def all_arrived(sub: Subscriber, topic: str, _messages: object) -> bool:
    return len(unique(pay(sub, topic))) >= 2 * N
