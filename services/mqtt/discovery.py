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
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import msgspec

from shared.fields import FIELDS, Value, showing, totals_first
from shared.reading import Reading

from .submeters import SubSensor
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


def box_node(serial: str) -> str:
    """The box's own device (several meters): `hanport_<serial>-box`; no meter's node can be
    it, as a meter's adds `_` to the serial's."""
    return f"{node_id(serial)}-box"


@dataclass(frozen=True)
class Device:
    """The Home Assistant device a meter's sensors belong to. The default meter's is the one a
    one-meter box always had (`hanport_<serial>`, so its entities stay); any other meter's is
    `hanport_<serial>_<meter>`. With several meters each is `via_device` the box's device."""

    node: str
    name: str
    serial_number: str
    via: str | None = None

    @classmethod
    def of_box(cls, serial: str) -> Device:
        """The device of a one-meter box, and of the default meter."""
        return cls(node_id(serial), f"hanport {serial}", serial)

    @classmethod
    def of_meter(cls, serial: str, meter: str, meter_id: str | None) -> Device:
        slug = re.sub(r"[^a-z0-9-]+", "_", meter.lower()).strip("_") or "meter"
        return cls(f"{node_id(serial)}_{slug}", f"hanport {serial} {meter}", meter_id or meter)


def _device(device: Device, model: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "identifiers": [device.node],
        "name": device.name,
        "manufacturer": "hanport",
        "model": model or "HAN/P1 meter",
        "serial_number": device.serial_number,
        "sw_version": software_version(),
    }
    if device.via is not None:
        out["via_device"] = device.via
    return out


def _origin() -> dict[str, Any]:
    return {"name": "hanport", "sw_version": software_version()}  # no support_url: none yet


def entity_id(node: str, sensor: Sensor) -> str:
    """`sensor.hanport_hp0a1b2c_power_l1`: the entity id suggested to Home Assistant, in the form
    it accepts (lower-case letters, digits and single underscores, none at either end); the
    same id Home Assistant before 2025.10 makes from the device and sensor names."""
    return _entity_id(node, sensor.slug)


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
    device: Device | None = None,
) -> list[tuple[str, bytes]]:
    """The (config topic, JSON) of each sensor in `sensors`, for Home Assistant discovery;
    `device`: whose sensors (default: the box's one meter, as always)."""
    device = device or Device.of_box(serial)
    node = device.node
    device_info = _device(device, reading.meter_model)
    origin = _origin()
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
            "device": device_info,
            "origin": origin,
        }
        if expire_after:
            config["expire_after"] = expire_after
        topic = f"{prefix}/{DOMAIN}/{node}/{sensor.slug}/config"
        messages.append((topic, msgspec.json.encode(config)))
    return messages


def submeter_messages(
    sensors: list[SubSensor],
    *,
    model: str | None,
    topics: Topics,
    device: Device,
    prefix: str,
    expire_after: int,
) -> list[tuple[str, bytes]]:
    """The discovery configs of a meter's M-Bus sub-meter sensors (`services.mqtt.submeters`):
    each reads the meter's sub-meters message, with the meter's device."""
    device_info = _device(device, model)
    messages = []
    for sensor in sensors:
        config: dict[str, Any] = {
            "name": sensor.name,
            "unique_id": f"{device.node}_{sensor.slug}",
            "default_entity_id": _entity_id(device.node, sensor.slug),
            "state_topic": topics.submeters,
            "value_template": f"{{{{ value_json.{sensor.path} }}}}",
            **({"device_class": sensor.device_class} if sensor.device_class else {}),
            **({"state_class": sensor.state_class} if sensor.state_class else {}),
            **({"unit_of_measurement": sensor.unit} if sensor.unit else {}),
            "availability_topic": topics.availability,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device_info,
            "origin": _origin(),
        }
        if expire_after:
            config["expire_after"] = expire_after
        topic = f"{prefix}/{DOMAIN}/{device.node}/{sensor.slug}/config"
        messages.append((topic, msgspec.json.encode(config)))
    return messages


def box_messages(*, serial: str, topics: Topics, prefix: str) -> list[tuple[str, bytes]]:
    """The box's own device (several meters: every meter's device is `via_device` it), with
    one diagnostic sensor, the bridge's status (`online`/`offline`, the availability topic)."""
    node = box_node(serial)
    config = {
        "name": "Status",
        "unique_id": f"{node}_status",
        "default_entity_id": _entity_id(node, "status"),
        "state_topic": topics.availability,
        "entity_category": "diagnostic",
        "device": {
            "identifiers": [node],
            "name": f"hanport {serial} box",
            "manufacturer": "hanport",
            "model": "hanport HAN/P1 gateway",
            "serial_number": serial,
            "sw_version": software_version(),
        },
        "origin": _origin(),
    }
    return [(f"{prefix}/{DOMAIN}/{node}/status/config", msgspec.json.encode(config))]


def _entity_id(node: str, slug: str) -> str:
    return f"{DOMAIN}.{re.sub(r'[^a-z0-9]+', '_', f'{node}_{slug}'.lower()).strip('_')}"
