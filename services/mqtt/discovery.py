"""Home Assistant MQTT discovery: one retained config message per sensor the meter sends.

Consumes a `Reading` (to see which values the meter sends and its model), the topics and the
reader serial; produces (config topic, JSON payload) pairs under
`<discovery prefix>/sensor/<node>/<object>/config`. The sensors are the values of the field
catalogue (shared/fields.py) that have `home_assistant`: their name, object id, unit and classes
come from there. Each reads its value from the data topic's Cozify JSON, so the Energy dashboard
works without YAML (energy counters are `total_increasing` kWh).
"""

from __future__ import annotations

import re
from importlib import metadata
from typing import Any

import msgspec

from shared.fields import FIELDS, Value, showing, totals_first
from shared.reading import Reading

from .topics import Topics

Sensor = Value  # a sensor is a value of the catalogue that has `home_assistant`

# scalars and totals first, then per phase (the order the configs are published in)
SENSORS: tuple[Sensor, ...] = showing("home_assistant", totals_first(FIELDS))


def software_version() -> str:
    try:
        return metadata.version("hanport")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def node_id(serial: str) -> str:
    """The discovery node id: the serial with only the characters Home Assistant allows."""
    return "hanport_" + re.sub(r"[^a-zA-Z0-9_-]", "_", serial).lower()


def present_sensors(reading: Reading, among: tuple[Sensor, ...] = SENSORS) -> list[Sensor]:
    """The sensors (of `among`) whose value this reading carries."""
    return [sensor for sensor in among if sensor.of(reading) is not None]


def discovery_messages(
    sensors: list[Sensor],
    *,
    reading: Reading,
    topics: Topics,
    serial: str,
    prefix: str,
    expire_after: int,
) -> list[tuple[str, bytes]]:
    """The (config topic, JSON) of each sensor in `sensors`, for Home Assistant discovery."""
    node = node_id(serial)
    device = {
        "identifiers": [node],
        "name": f"hanport {serial}",
        "manufacturer": "hanport",
        "model": reading.meter_model or "HAN/P1 meter",
        "serial_number": serial,
        "sw_version": software_version(),
    }
    messages = []
    for sensor in sensors:
        kind = sensor.field.home_assistant
        assert kind is not None  # SENSORS holds only such values
        config: dict[str, Any] = {
            "name": sensor.name,
            "unique_id": f"{node}_{sensor.slug}",
            "object_id": f"{node}_{sensor.slug}",
            "state_topic": topics.data,
            "value_template": f"{{{{ value_json.{sensor.path} }}}}",
            "device_class": kind.device_class,
            "state_class": kind.state_class,
            "unit_of_measurement": sensor.field.unit,
            "availability_topic": topics.availability,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
        }
        if expire_after:
            config["expire_after"] = expire_after
        topic = f"{prefix}/sensor/{node}/{sensor.slug}/config"
        messages.append((topic, msgspec.json.encode(config)))
    return messages
