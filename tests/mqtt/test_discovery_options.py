"""The discovery configs use only options every supported Home Assistant takes without a
warning (docs/mqtt.md): `default_entity_id` instead of the deprecated `object_id`, no
`reactive_energy` device class (refused before Home Assistant 2025.6), and an `origin` block."""

from __future__ import annotations

import msgspec

from services.mqtt.discovery import (
    SENSORS,
    discovery_messages,
    present_sensors,
    software_version,
)
from services.mqtt.topics import Topics
from tests.fields.snapshot import full_reading

TOPICS = Topics(data="hanport/HP-7/data", prefix="hanport/HP-7",
                availability="hanport/HP-7/availability", raw=None)  # fmt: skip


def configs() -> dict[str, dict[str, object]]:
    reading = full_reading()
    messages = discovery_messages(present_sensors(reading, SENSORS), reading=reading,
                                  topics=TOPICS, serial="HP-7", prefix="homeassistant",
                                  expire_after=60)  # fmt: skip
    return {topic.split("/")[3]: msgspec.json.decode(payload) for topic, payload in messages}


def test_entity_id_is_suggested_with_default_entity_id_not_object_id() -> None:
    found = configs()
    assert len(found) == 23
    assert not any("object_id" in config for config in found.values())
    assert found["power_l1"]["unique_id"] == "hanport_hp-7_power_l1"  # unchanged: same entities
    assert found["power_l1"]["default_entity_id"] == "sensor.hanport_hp_7_power_l1"
    assert found["energy_import"]["default_entity_id"] == "sensor.hanport_hp_7_energy_import"


def test_reactive_counters_have_no_device_class() -> None:
    found = configs()
    for slug in ("reactive_energy_import", "reactive_energy_export"):
        assert "device_class" not in found[slug]
        assert (found[slug]["unit_of_measurement"], found[slug]["state_class"]) == (
            "kvarh",
            "total_increasing",
        )
    assert found["reactive_power"]["device_class"] == "reactive_power"
    assert found["energy_import"]["device_class"] == "energy"


def test_every_config_names_its_origin() -> None:
    origin = {"name": "hanport", "sw_version": software_version()}
    assert all(config["origin"] == origin for config in configs().values())
