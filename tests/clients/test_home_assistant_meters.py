"""Home Assistant's own code takes the discovery configs of a box with several meters: the box's
device (its status sensor), a meter's device `via_device` the box, and the M-Bus sub-meter
sensors (gas m³, water m³, heat GJ, each with its time), for the oldest and newest Home
Assistant claimed, without an error or a warning (tests/clients/home_assistant_check.py)."""

from __future__ import annotations

import pytest

from services.mqtt.discovery import (
    SENSORS,
    Device,
    box_messages,
    box_node,
    discovery_messages,
    present_sensors,
    submeter_messages,
)
from services.mqtt.submeters import sensors
from services.mqtt.topics import Topics
from shared.reading import SubMeter
from tests.clients.test_home_assistant import home_assistant_answer
from tests.clients.venvs import HOME_ASSISTANT_NEWEST, HOME_ASSISTANT_OLDEST, Client
from tests.fields.snapshot import full_reading

SERIAL = "HP0A1B2C"
BASE = Topics(data=f"hanport/{SERIAL}/data", prefix=f"hanport/{SERIAL}",
              availability=f"hanport/{SERIAL}/availability", raw=None)  # fmt: skip
SUBS = [
    SubMeter(channel=1, device_type=3, id="G1", value=246.138, unit="m3", ts=1_764_000_000_000),
    SubMeter(channel=2, device_type=7, id="W2", value=12.5, unit="m3", ts=1_764_000_000_000),
    SubMeter(channel=3, device_type=4, id="H3", value=1.25, unit="GJ", ts=1_764_000_000_000),
]


def published() -> list[tuple[str, str]]:
    via = box_node(SERIAL)
    heatpump = Device.of_meter(SERIAL, "heatpump", "HP-77")
    heatpump = Device(heatpump.node, heatpump.name, heatpump.serial_number, via)
    default = Device.of_box(SERIAL)
    default = Device(default.node, default.name, default.serial_number, via)
    reading = full_reading()
    messages = box_messages(serial=SERIAL, topics=BASE, prefix="homeassistant")
    for device, topics in ((default, BASE), (heatpump, BASE.for_meter("heatpump"))):
        messages += discovery_messages(
            present_sensors(reading, SENSORS), reading=reading, topics=topics, serial=SERIAL,
            prefix="homeassistant", expire_after=60, device=device,
        )  # fmt: skip
        messages += submeter_messages(
            [s for sub in SUBS for s in sensors(sub)], model="ISK5", topics=topics,
            device=device, prefix="homeassistant", expire_after=60,
        )  # fmt: skip
    return [(topic, payload.decode()) for topic, payload in messages]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("client", [HOME_ASSISTANT_OLDEST, HOME_ASSISTANT_NEWEST],
                         ids=lambda client: client.name)  # fmt: skip
def test_home_assistant_takes_the_configs_of_several_meters(client: Client) -> None:
    messages = published()
    assert len(messages) == 1 + 2 * (23 + 6)
    results = home_assistant_answer(client, messages)["results"]
    assert [r["topic"] for r in results] == [topic for topic, _payload in messages]
    for result in results:
        assert result["errors"] == [], result
        assert result["warnings"] == [], result
        assert result["entity_id_valid"], result
        assert result["dropped"] == ["default_entity_id"], result
        assert result["entity_id"] == result["generated_entity_id"], result
