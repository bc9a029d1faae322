"""Home Assistant MQTT discovery: one retained config message per sensor the meter sends.

Consumes a `Reading` (to see which values the meter sends and its model), the topics and the
reader serial; produces (config topic, JSON payload) pairs under
`<discovery prefix>/sensor/<node>/<object>/config`. The sensors are the table `SENSORS`, walked by
`discovery_messages`; each reads its value from the data topic's Cozify JSON, so the Energy
dashboard works without YAML (energy counters are `total_increasing` kWh).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import msgspec

from shared.reading import Reading

from .topics import Topics


@dataclass(frozen=True)
class Sensor:
    object_id: str
    name: str
    key: str  # Cozify JSON key
    index: int | None  # position in the key's array, None for a scalar
    device_class: str
    state_class: str
    unit: str


def _phases(object_id: str, name: str, key: str, device_class: str, unit: str) -> list[Sensor]:
    return [
        Sensor(f"{object_id}_l{n}", f"{name} L{n}", key, n - 1 if key in ("u", "i") else n,
               device_class, "measurement", unit)
        for n in (1, 2, 3)
    ]  # fmt: skip


SENSORS: tuple[Sensor, ...] = (
    Sensor("energy_import", "Energy import", "ic", None, "energy", "total_increasing", "kWh"),
    Sensor("energy_export", "Energy export", "ec", None, "energy", "total_increasing", "kWh"),
    Sensor("reactive_energy_import", "Reactive energy import", "ric", None,
           "reactive_energy", "total_increasing", "kvarh"),
    Sensor("reactive_energy_export", "Reactive energy export", "rec", None,
           "reactive_energy", "total_increasing", "kvarh"),
    Sensor("power", "Power", "p", 0, "power", "measurement", "W"),
    Sensor("power_import", "Power import", "pi", 0, "power", "measurement", "W"),
    Sensor("power_export", "Power export", "pe", 0, "power", "measurement", "W"),
    Sensor("reactive_power", "Reactive power", "r", 0, "reactive_power", "measurement", "var"),
    *_phases("power", "Power", "p", "power", "W"),
    *_phases("power_import", "Power import", "pi", "power", "W"),
    *_phases("power_export", "Power export", "pe", "power", "W"),
    *_phases("voltage", "Voltage", "u", "voltage", "V"),
    *_phases("current", "Current", "i", "current", "A"),
)  # fmt: skip


def software_version() -> str:
    try:
        return metadata.version("hanport")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def node_id(serial: str) -> str:
    """The discovery node id: the serial with only the characters Home Assistant allows."""
    return "hanport_" + re.sub(r"[^a-zA-Z0-9_-]", "_", serial).lower()


def _value(reading: Reading, sensor: Sensor) -> Any:
    value = getattr(reading, sensor.key)
    return value if sensor.index is None else value[sensor.index]


def present_sensors(reading: Reading, among: tuple[Sensor, ...] = SENSORS) -> list[Sensor]:
    """The sensors (of `among`) whose value this reading carries."""
    return [sensor for sensor in among if _value(reading, sensor) is not None]


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
        path = sensor.key if sensor.index is None else f"{sensor.key}[{sensor.index}]"
        config: dict[str, Any] = {
            "name": sensor.name,
            "unique_id": f"{node}_{sensor.object_id}",
            "object_id": f"{node}_{sensor.object_id}",
            "state_topic": topics.data,
            "value_template": f"{{{{ value_json.{path} }}}}",
            "device_class": sensor.device_class,
            "state_class": sensor.state_class,
            "unit_of_measurement": sensor.unit,
            "availability_topic": topics.availability,
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
        }
        if expire_after:
            config["expire_after"] = expire_after
        topic = f"{prefix}/sensor/{node}/{sensor.object_id}/config"
        messages.append((topic, msgspec.json.encode(config)))
    return messages
