"""Run by a Home Assistant venv's python (tests/clients/venvs.py), not by hanport's: checks MQTT
discovery configs with Home Assistant's own code, the steps its MQTT integration takes for a
config message of one component (homeassistant/components/mqtt/discovery.py) and then the MQTT
sensor platform's discovery schema (homeassistant/components/mqtt/sensor.py).

stdin: JSON `{"prefix": "homeassistant", "messages": [[topic, payload text], ...]}`.
stdout: JSON `{"version": ..., "results": [{topic, errors, warnings, dropped, entity_id,
generated_entity_id}, ...]}`: `errors` that make Home Assistant refuse the config, `warnings` it
logs (deprecations included), `dropped` options it ignores (the discovery schema removes options
it does not know), the entity id the config suggests and the one Home Assistant makes from the
device and sensor names when it ignores the suggestion.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
from typing import Any

from homeassistant.components.mqtt import discovery, sensor
from homeassistant.components.sensor import DEVICE_CLASS_STATE_CLASSES, DEVICE_CLASS_UNITS
from homeassistant.const import __version__
from homeassistant.core import HomeAssistant, valid_entity_id
from homeassistant.helpers import frame
from homeassistant.util import slugify
from homeassistant.util.json import json_loads_object


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


def check(prefix: str, topic: str, text: str, log: Collect) -> dict[str, Any]:
    log.lines = []
    errors: list[str] = []
    match = discovery.TOPIC_MATCHER.match(topic.removeprefix(prefix + "/"))
    if not match or match.group("component") != "sensor":
        errors.append(f"topic {topic!r} is not a sensor discovery topic")
    payload = discovery.MQTTDiscoveryPayload(json_loads_object(text))
    discovery._replace_all_abbreviations(payload)
    if not discovery._valid_origin_info(payload):
        errors.append("origin refused")
    given = dict(payload)
    config: dict[str, Any] = {}
    try:
        config = sensor.DISCOVERY_SCHEMA(payload)
    except Exception as error:  # vol.Invalid: Home Assistant refuses the config
        errors.append(f"{type(error).__name__}: {error}")
    device_class, state_class = config.get("device_class"), config.get("state_class")
    unit = config.get("unit_of_measurement")
    # what the sensor entity checks when it writes a state (homeassistant/components/sensor)
    if (
        device_class
        and state_class
        and state_class not in DEVICE_CLASS_STATE_CLASSES.get(device_class, {state_class})
    ):
        errors.append(f"state class {state_class} does not go with device class {device_class}")
    if device_class in DEVICE_CLASS_UNITS and unit not in DEVICE_CLASS_UNITS[device_class]:
        errors.append(f"unit {unit} does not go with device class {device_class}")
    generated = f"{given.get('device', {}).get('name')} {given.get('name')}"
    return {
        "topic": topic,
        "errors": errors,
        "warnings": list(log.lines),
        "dropped": sorted(set(given) - set(config)) if config else [],
        "entity_id": given.get("default_entity_id"),
        "entity_id_valid": valid_entity_id(str(given.get("default_entity_id"))),
        "generated_entity_id": f"sensor.{slugify(generated)}",
    }


async def check_all(request: dict[str, Any]) -> list[dict[str, Any]]:
    """Inside a (not started) Home Assistant instance, as its templates need one."""
    with tempfile.TemporaryDirectory() as config_dir:
        hass = HomeAssistant(config_dir)
        if hasattr(frame, "async_setup"):  # since 2025.2; before, templates need no frame helper
            frame.async_setup(hass)
        log = Collect()
        logging.getLogger().addHandler(log)
        logging.getLogger().setLevel(logging.DEBUG)
        return [check(request["prefix"], t, p, log) for t, p in request["messages"]]


def main() -> int:
    request = json.load(sys.stdin)
    results = asyncio.run(check_all(request))
    json.dump({"version": __version__, "results": results}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
