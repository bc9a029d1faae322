"""Energy accounting over MQTT: each meter's live tariff answer, as the accounting service stored
it in Redis (`services.accounting.store`), on `<prefix>/accounting/<meter>` (retained JSON: the
body of REST `/meters/{id}/tariff`), and Home Assistant discovery for the sensors people ask
for: energy this hour, today and this month, the month's peak and capacity value, the price
step and the headroom.

Consumes the accounting keys in Redis (read every `INTERVAL_S`; a meter's answer is published
when it changed); produces MQTT messages through the session's client. Redis being away only
pauses it; an MQTT error ends the session as any other publish does.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import msgspec
from redis.asyncio import Redis

from services.accounting import store
from shared.backoff import Backoff
from shared.stream import REDIS_DOWN

from .discovery import node_id, software_version
from .settings import MqttSettings
from .topics import Topics

log = logging.getLogger(__name__)

INTERVAL_S = 5.0


@dataclass(frozen=True)
class AccountingSensor:
    slug: str
    name: str
    template: str  # the value in the answer's JSON (a Jinja expression on value_json)
    unit: str | None
    device_class: str | None
    state_class: str


# Energy counters that start again each hour/day/month are `total_increasing`: Home Assistant
# takes the drop at the start of the next interval as a reset.
SENSORS: tuple[AccountingSensor, ...] = (
    AccountingSensor("energy_this_hour", "Energy this hour", "value_json.energy['1h']['import']", "kWh", "energy", "total_increasing"),
    AccountingSensor("energy_today", "Energy today", "value_json.energy['1d']['import']", "kWh", "energy", "total_increasing"),
    AccountingSensor("energy_this_month", "Energy this month", "value_json.energy['1mo']['import']", "kWh", "energy", "total_increasing"),
    AccountingSensor("month_peak", "Month peak", "(value_json.peaks[0].kw if value_json.peaks else 0)", "kW", "power", "measurement"),
    AccountingSensor("capacity_value", "Capacity value", "value_json.value_kw", "kW", "power", "measurement"),
    AccountingSensor("tariff_step", "Tariff step", "value_json.step.index", None, None, "measurement"),
    AccountingSensor("headroom", "Power headroom", "value_json.headroom_w", "W", "power", "measurement"),
)  # fmt: skip


def state_topic(topics: Topics, meter: str) -> str:
    return f"{topics.prefix}/accounting/{meter}"


def discovery_messages(
    meter: str, *, topics: Topics, serial: str, prefix: str, device_node: str | None = None
) -> list[tuple[str, bytes]]:
    """(config topic, JSON) of each accounting sensor of `meter`: on the meter's own Home
    Assistant device when its node is given (`device_node`), else on a device of their own. A
    null value (headroom when the window does not count) renders as `None`, which Home
    Assistant shows as unknown."""
    node = f"{node_id(serial)}_{re.sub(r'[^a-zA-Z0-9_-]', '_', meter).lower()}_accounting"
    device: dict[str, Any] = (
        {"identifiers": [device_node]}
        if device_node
        else {
            "identifiers": [node],
            "name": f"hanport {serial} {meter} accounting",
            "manufacturer": "hanport",
            "model": "energy accounting",
            "sw_version": software_version(),
        }
    )
    out = []
    for sensor in SENSORS:
        config: dict[str, Any] = {
            "name": sensor.name,
            "unique_id": f"{node}_{sensor.slug}",
            "state_topic": state_topic(topics, meter),
            "value_template": f"{{{{ {sensor.template} }}}}",
            "state_class": sensor.state_class,
            "availability_topic": topics.availability,
            "device": device,
            "origin": {"name": "hanport", "sw_version": software_version()},
        }
        if sensor.unit:
            config["unit_of_measurement"] = sensor.unit
        if sensor.device_class:
            config["device_class"] = sensor.device_class
        out.append((f"{prefix}/sensor/{node}/{sensor.slug}/config", msgspec.json.encode(config)))
    return out


async def publish_accounting(
    client: aiomqtt.Client,
    redis: Redis,
    settings: MqttSettings,
    topics: Topics,
    serial: str,
    interval_s: float = INTERVAL_S,
    device_node: Callable[[str], str] | None = None,
) -> None:
    """Publish each meter's accounting answer when it changed (and its discovery once per
    session), forever."""
    announced: set[str] = set()
    last: dict[str, bytes] = {}
    backoff = Backoff()
    while True:
        try:
            meters = await store.meters(redis)
            answers = {m: await redis.get(store.tariff_key(m)) for m in meters}
            backoff.reset()
        except REDIS_DOWN as error:
            log.debug("accounting over MQTT waits for Redis: %s", error)
            await asyncio.sleep(backoff.next_delay())
            continue
        for meter, raw in answers.items():
            if raw is None or last.get(meter) == raw:
                continue
            if settings.mqtt_discovery and meter not in announced:
                for topic, payload in discovery_messages(
                    meter,
                    topics=topics,
                    serial=serial,
                    prefix=settings.mqtt_discovery_prefix,
                    device_node=device_node(meter) if device_node else None,
                ):
                    await client.publish(topic, payload, qos=1, retain=True)
                announced.add(meter)
            payload = raw if isinstance(raw, bytes) else str(raw).encode()
            await client.publish(
                state_topic(topics, meter), payload, qos=settings.mqtt_qos, retain=True
            )
            last[meter] = payload
        await asyncio.sleep(interval_s)
