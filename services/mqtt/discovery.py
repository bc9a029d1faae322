"""Home Assistant MQTT discovery: one retained config message per sensor the meter sends.

Consumes a `Reading` (to see which values the meter sends and its model), the topics and the
reader serial; produces (config topic, JSON payload) pairs under
`<discovery prefix>/sensor/<node>/<object>/config`. The sensors are the values of the field
catalogue (shared/fields.py) that have `home_assistant`: their name, entity id, unit and classes
come from there. Each reads its value from the data topic's Cozify JSON, so the Energy dashboard
works without YAML (energy counters are `total_increasing` kWh).

The configs use only options Home Assistant 2025.1 and later take without a warning (checked
against Home Assistant's own code by tests/clients/test_home_assistant.py): the entity id is
suggested with `default_entity_id` (Home Assistant 2025.10 deprecated `object_id`, which stops
working in 2026.4; versions before 2025.10 drop the unknown option and make the same entity id
from the device and sensor names), and the reactive counters have no device class (see
`_REACTIVE_ENERGY` in shared/fields.py).
"""

from __future__ import annotations

import re
from importlib import metadata
from typing import Any

import msgspec

from shared.fields import FIELDS, Value, showing, totals_first
from shared.reading import Reading

from .topics import Topics

DOMAIN = "sensor"  # the Home Assistant entity domain of every config

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


def entity_id(node: str, sensor: Sensor) -> str:
    """`sensor.hanport_hp0a1b2c_power_l1`: the entity id suggested to Home Assistant, in the form
    it accepts (lower-case letters, digits and single underscores, none at either end); the
    same id Home Assistant before 2025.10 makes from the device and sensor names."""
    return f"{DOMAIN}.{re.sub(r'[^a-z0-9]+', '_', f'{node}_{sensor.slug}'.lower()).strip('_')}"


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
    origin = {"name": "hanport", "sw_version": software_version()}  # no support_url: none yet
    messages = []
    for sensor in sensors:
        kind = sensor.field.home_assistant
        assert kind is not None  # SENSORS holds only such values
        config: dict[str, Any] = {
            "name": sensor.name,
            "unique_id": f"{node}_{sensor.slug}",
            "default_entity_id": entity_id(node, sensor),
            "state_topic": topics.data,
            "value_template": f"{{{{ value_json.{sensor.path} }}}}",
            **({"device_class": kind.device_class} if kind.device_class else {}),
            "state_class": kind.state_class,
            "unit_of_measurement": sensor.field.unit,
            "availability_topic": topics.availability,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
            "origin": origin,
        }
        if expire_after:
            config["expire_after"] = expire_after
        topic = f"{prefix}/{DOMAIN}/{node}/{sensor.slug}/config"
        messages.append((topic, msgspec.json.encode(config)))
    return messages
