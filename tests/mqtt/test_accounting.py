"""Energy accounting over MQTT: what the accounting service stored for a meter is published on
`<prefix>/accounting/<meter>` (retained) with Home Assistant discovery for its sensors, by the
real bridge on a real broker and Redis."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from services.accounting import store
from services.accounting.account import MeterAccount
from services.accounting.tariffs import rule
from services.mqtt.accounting import SENSORS
from shared.reading import Reading
from tests.servers import MosquittoServer, RedisServer

from .support import SERIAL, Subscriber, running_bridge, settings

HOUR_MS = 3_600_000
T0 = 1_772_319_600_000  # 2026-03-01 00:00 Oslo


async def store_account(redis_url: str) -> dict[str, object]:
    """An hour and a half of readings through the real account and store."""
    account = MeterAccount.new("m1", ZoneInfo("Europe/Oslo"), rule("no-elvia"))
    for k in range(19):  # every 5 minutes at 2 kW
        ts = T0 + k * 300_000
        account.add(Reading(ts=ts, received=ts, meter="m1", ic=100 + k * 2 / 12, pi=[2000.0]))
    answer = account.tariff_state()
    redis = Redis.from_url(redis_url)
    try:
        await store.save(redis, [account], {"m1": answer})
    finally:
        await redis.aclose()
    return answer


async def test_accounting_state_and_discovery(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    answer = await store_account(redis_server.url)
    config = settings(redis_server, mosquitto_server, license_keys, mqtt_discovery=True)
    state = f"hanport/{SERIAL}/accounting/m1"
    async with (
        Subscriber(mosquitto_server, [state, "homeassistant/sensor/+/+/config"]) as sub,
        running_bridge(config),
    ):
        messages = await sub.wait_count(state, 1)
        configs = await sub.wait_for(
            lambda _m: len([m for m in sub.messages if "accounting" in str(m.topic)]) > len(SENSORS)
        )
        async with Subscriber(mosquitto_server, [state]) as late:  # retained for newcomers
            kept = await late.wait_count(state, 1)
    body = json.loads(messages[0].payload)
    assert body == answer
    # 00:00-01:30 at 2 kW: this hour (01:00) 1.0 kWh so far, today 3.0
    assert body["energy"]["1h"]["import"] == 1.0 and body["energy"]["1d"]["import"] == 3.0
    assert kept[0].retain and kept[0].payload == messages[0].payload
    found = {
        json.loads(m.payload)["unique_id"]: json.loads(m.payload)
        for m in configs
        if str(m.topic).endswith("/config") and "accounting" in str(m.topic)
    }
    node = f"hanport_{SERIAL.lower()}_m1_accounting"
    assert set(found) == {f"{node}_{s.slug}" for s in SENSORS}
    headroom = found[f"{node}_headroom"]
    assert (headroom["state_topic"], headroom["unit_of_measurement"]) == (state, "W")
    assert found[f"{node}_energy_today"]["device_class"] == "energy"
    # on the meter's own device (the bridge's: `hanport_<serial>_<meter>` for a meter that is
    # not the default one), not a device of their own
    assert {json.dumps(c["device"]) for c in found.values()} == {
        json.dumps({"identifiers": [f"hanport_{SERIAL.lower()}_m1"]})
    }
