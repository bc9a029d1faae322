"""What the bridge publishes, checked on a real broker: Home Assistant discovery field by field,
retained availability, split topics, the Cozify topic as is, and latest-wins pacing."""

from __future__ import annotations

from typing import Any

import aiomqtt
import msgspec
import pytest

from services.mqtt import metrics
from services.mqtt.discovery import software_version
from shared.reading import Reading, encode_cozify
from tests.readings import simulated_readings, simulated_telegrams
from tests.servers import MosquittoServer, RedisServer

from .support import (
    SERIAL,
    Subscriber,
    eventually,
    no_pending,
    reading,
    running_bridge,
    settings,
    writer,
)

DATA = f"hanport/{SERIAL}/data"
AVAILABILITY = f"hanport/{SERIAL}/availability"
NODE = "hanport_hptest01"


def configs(sub: Subscriber) -> dict[str, dict[str, Any]]:
    return {m.topic.value: msgspec.json.decode(m.payload) for m in sub.on("homeassistant/sensor/#")}


async def test_home_assistant_discovery_field_by_field(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    stream = await writer(redis_server)
    one = Reading(
        ts=1_764_000_000_000,
        received=1_764_000_000_005,
        ic=1234.5,
        ec=12.25,
        p=[1500.0, 500.0, 500.0, 500.0],
        pi=[1500.0, 500.0, 500.0, 500.0],
        pe=[0.0, 0.0, 0.0, 0.0],
        u=[230.1, 231.2, 229.9],
        i=[2.2, 2.1, 2.3],
        meter_model="Kaifa MA304H4",
    )
    config = settings(redis_server, mosquitto_server, license_keys, mqtt_discovery=True)
    async with Subscriber(mosquitto_server, ["homeassistant/#", DATA, AVAILABILITY]) as sub:
        async with running_bridge(config):
            await stream.add(one)
            await sub.wait_count(DATA, 1)
            found = configs(sub)
        await sub.wait_for(lambda _m: sub.on(AVAILABILITY)[-1].payload == b"offline")
    # one sensor per value the meter sent: ic, ec, p/pi/pe total and 3 phases each, u and i of
    # 3 phases; ric, rec and r (reactive) were not sent
    assert len(found) == 2 + 3 * 4 + 3 + 3
    assert not any("reactive" in topic for topic in found)
    energy = found[f"homeassistant/sensor/{NODE}/energy_import/config"]
    assert energy == {
        "name": "Energy import",
        "unique_id": f"{NODE}_energy_import",
        "default_entity_id": f"sensor.{NODE}_energy_import",
        "state_topic": DATA,
        "value_template": "{{ value_json.ic }}",
        "device_class": "energy",
        "state_class": "total_increasing",
        "unit_of_measurement": "kWh",
        "availability_topic": AVAILABILITY,
        "payload_available": "online",
        "payload_not_available": "offline",
        "expire_after": 60,
        "device": {
            "identifiers": [NODE],
            "name": f"hanport {SERIAL}",
            "manufacturer": "hanport",
            "model": "Kaifa MA304H4",
            "serial_number": SERIAL,
            "sw_version": software_version(),
        },
        "origin": {"name": "hanport", "sw_version": software_version()},
    }
    power = found[f"homeassistant/sensor/{NODE}/power/config"]
    assert (power["device_class"], power["state_class"], power["unit_of_measurement"]) == (
        "power",
        "measurement",
        "W",
    )
    assert power["value_template"] == "{{ value_json.p[0] }}"
    l2 = found[f"homeassistant/sensor/{NODE}/voltage_l2/config"]
    assert (l2["device_class"], l2["unit_of_measurement"], l2["value_template"]) == (
        "voltage",
        "V",
        "{{ value_json.u[1] }}",
    )
    current_l3 = found[f"homeassistant/sensor/{NODE}/current_l3/config"]
    assert current_l3["value_template"] == "{{ value_json.i[2] }}"
    assert current_l3["unit_of_measurement"] == "A"
    export = found[f"homeassistant/sensor/{NODE}/energy_export/config"]
    assert export["state_class"] == "total_increasing" and export["value_template"] == (
        "{{ value_json.ec }}"
    )
    # each template points at the value in the data message
    data = msgspec.json.decode(encode_cozify(one))
    assert data["ic"] == 1234.5 and data["u"][1] == 231.2 and data["i"][2] == 2.3
    assert sub.on(AVAILABILITY)[0].payload == b"online"
    assert sub.on(AVAILABILITY)[-1].payload == b"offline"  # said on a clean stop
    # all retained: Home Assistant started later still finds them, and the availability
    async with Subscriber(mosquitto_server, ["homeassistant/#", AVAILABILITY]) as later:
        await later.wait_count("homeassistant/#", len(found))
        await later.wait_count(AVAILABILITY, 1)
    assert all(m.retain and m.qos == 1 for m in later.messages)
    assert configs(later) == found
    assert later.on(AVAILABILITY)[0].payload == b"offline"


async def test_discovery_is_sent_again_when_home_assistant_restarts(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    stream = await writer(redis_server)
    config = settings(redis_server, mosquitto_server, license_keys, mqtt_discovery=True)
    energy = f"homeassistant/sensor/{NODE}/energy_import/config"
    async with (
        Subscriber(mosquitto_server, ["homeassistant/sensor/#", DATA]) as sub,
        running_bridge(config),
    ):
        await stream.add(reading(1))
        await sub.wait_count(DATA, 1)
        await stream.add(reading(2))
        await sub.wait_count(DATA, 2)
        assert len(sub.on(energy)) == 1  # not repeated with every reading
        # Home Assistant announces itself on homeassistant/status after a restart
        async with aiomqtt.Client("127.0.0.1", mosquitto_server.port) as client:
            await client.publish("homeassistant/status", b"online", qos=1)
        await sub.wait_count(energy, 2)  # at once, from the last reading


async def test_split_topics_and_a_cozify_topic_as_is(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    stream = await writer(redis_server)
    config = settings(
        redis_server,
        mosquitto_server,
        license_keys,
        mqtt_topic="Cozify/HAN123/Data",
        mqtt_split_topics=True,
    )
    async with (
        Subscriber(mosquitto_server, ["Cozify/#", f"hanport/{SERIAL}/#"]) as sub,
        running_bridge(config),
    ):
        await stream.add(reading(7))
        await sub.wait_count("Cozify/HAN123/Data", 1)
        await sub.wait_count(f"hanport/{SERIAL}/timestamp", 1)
    assert sub.on("Cozify/HAN123/Data")[0].payload == encode_cozify(reading(7))
    values = {m.topic.value: m.payload for m in sub.on(f"hanport/{SERIAL}/#")}
    prefix = f"hanport/{SERIAL}"
    assert values[f"{prefix}/energy/import"] == b"1007"
    assert values[f"{prefix}/energy/export"] == b"2.5"
    assert values[f"{prefix}/power/active"] == b"1507"
    assert values[f"{prefix}/power/import"] == b"1507"
    assert values[f"{prefix}/power/import/l3"] == b"507"
    assert values[f"{prefix}/voltage/l1"] == b"230.1"
    assert values[f"{prefix}/current/l3"] == b"2.3"
    assert values[f"{prefix}/timestamp"] == str(reading(7).ts).encode()
    assert f"{prefix}/energy/reactive_import" not in values  # not sent by the meter: no topic
    assert f"{prefix}/data" not in values  # the data topic is the Cozify one


@pytest.mark.parametrize("qos", [0, 2])
async def test_simulated_readings_as_meter_json_at_qos_0_and_2(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str, qos: int
) -> None:
    readings = simulated_readings(10)
    stream = await writer(redis_server)
    config = settings(redis_server, mosquitto_server, license_keys, mqtt_qos=qos, mqtt_retain=True)
    async with (
        Subscriber(mosquitto_server, [DATA]) as sub,
        running_bridge(config),
    ):
        for one in readings:
            await stream.add(one)
        got = await sub.wait_count(DATA, 10)
        await eventually(lambda: no_pending(stream.redis))  # after PUBCOMP / once written
    assert [m.payload for m in got] == [encode_cozify(r) for r in readings]
    assert all(m.qos == min(qos, 1) for m in got)  # the subscription is QoS 1


async def test_min_interval_publishes_the_latest_and_supersedes_the_rest(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    stream = await writer(redis_server)
    for n in range(10):  # waiting before the bridge starts: one batch
        await stream.add(reading(n))
    superseded = metrics.SUPERSEDED._value.get()
    config = settings(redis_server, mosquitto_server, license_keys, mqtt_min_interval=3600)
    async with (
        Subscriber(mosquitto_server, [DATA]) as sub,
        running_bridge(config),
    ):
        got = await sub.wait_count(DATA, 1)
        await eventually(lambda: no_pending(stream.redis))
    assert [m.payload for m in got] == [encode_cozify(reading(9))]
    assert metrics.SUPERSEDED._value.get() == superseded + 9


async def raw_group_exists(redis: Any) -> bool:
    try:
        return any(g["name"] == b"mqtt-raw" for g in await redis.xinfo_groups("hanport:raw"))
    except Exception:  # the stream does not exist yet
        return False


async def test_raw_telegram_topic_carries_each_decoded_telegram_as_is(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    telegrams = simulated_telegrams(2)
    stream = await writer(redis_server)
    config = settings(redis_server, mosquitto_server, license_keys, mqtt_raw_topic="hanport/raw")
    async with (
        Subscriber(mosquitto_server, ["hanport/raw"]) as sub,
        running_bridge(config),
    ):
        await eventually(lambda: raw_group_exists(stream.redis))
        # as ingest writes them: raw bytes, the decode result, the receive time
        for raw, result in ((telegrams[0], "ok"), (b"/XYZ garbage", "crc"), (telegrams[1], "ok")):
            await stream.redis.xadd("hanport:raw", {b"raw": raw, b"result": result, b"received": 1})
        got = await sub.wait_count("hanport/raw", 2)
        await eventually(lambda: no_pending(stream.redis, "mqtt-raw", "hanport:raw"))
    assert [m.payload for m in got] == telegrams
