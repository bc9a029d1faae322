"""Several meters through the bridge, on a real mosquitto and redis-server: the default meter
keeps the one-meter topics and device, every other meter publishes under `<prefix>/meters/<name>`
as a Home Assistant device of its own, `via_device` the box; a DSMR meter's gas sub-meter is a
gas sensor with its own time; every reading of every meter's stream is published and
acknowledged; a license naming meters serves only those."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client import REGISTRY

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
