"""Home Assistant's own code takes every discovery config hanport publishes: for the oldest
Home Assistant claimed (docs/mqtt.md) and the newest release on the package index, each in a
venv of its own (tests/clients/venvs.py), tests/clients/home_assistant_check.py runs the MQTT
integration's discovery steps and its sensor platform's discovery schema on the configs, and no
config may be refused or make Home Assistant log a warning."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from services.mqtt.discovery import SENSORS, discovery_messages, present_sensors
from services.mqtt.topics import Topics
from tests.clients.venvs import HOME_ASSISTANT_NEWEST, HOME_ASSISTANT_OLDEST, Client, provision
from tests.fields.snapshot import full_reading, partial_reading

CHECK = Path(__file__).with_name("home_assistant_check.py")
# a plain serial, and one with characters an entity id cannot hold
SERIALS = ("HP0A1B2C", "HP-0A1B.2C")


def published() -> list[tuple[str, str]]:
    """Every config the bridge publishes for a meter that sends everything (23 sensors) and
    for a single-phase meter, under both serials."""
    out = []
    for serial in SERIALS:
        topics = Topics(data=f"hanport/{serial}/data", prefix=f"hanport/{serial}",
                        availability=f"hanport/{serial}/availability", raw=None)  # fmt: skip
        for reading, expire_after in ((full_reading(), 0), (partial_reading(), 60)):
            messages = discovery_messages(
                present_sensors(reading, SENSORS), reading=reading, topics=topics,
                serial=serial, prefix="homeassistant", expire_after=expire_after,
            )  # fmt: skip
            out += [(topic, payload.decode()) for topic, payload in messages]
    return out


def home_assistant_answer(client: Client, messages: list[tuple[str, str]]) -> dict[str, Any]:
    python = provision(client)
    request = json.dumps({"prefix": "homeassistant", "messages": messages})
    done = subprocess.run(
        [str(python), str(CHECK)], input=request, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


@pytest.mark.timeout(900)  # the first run makes the venv (about a minute, more on a cold pip cache)
@pytest.mark.parametrize("client", [HOME_ASSISTANT_OLDEST, HOME_ASSISTANT_NEWEST],
                         ids=lambda client: client.name)  # fmt: skip
def test_home_assistant_takes_every_config_without_a_warning(client: Client) -> None:
    messages = published()
    assert len(messages) == 2 * (23 + 9)
    answer = home_assistant_answer(client, messages)
    assert client.bare == f"homeassistant=={answer['version']}"
    results = answer["results"]
    assert [r["topic"] for r in results] == [topic for topic, _payload in messages]
    for result in results:
        assert result["errors"] == [], result
        assert result["warnings"] == [], result
        assert result["entity_id_valid"], result
        # these versions drop `default_entity_id` (it came in 2025.10) and make the same id
        assert result["dropped"] == ["default_entity_id"], result
        assert result["entity_id"] == result["generated_entity_id"], result


@pytest.mark.timeout(900)
def test_the_check_sees_a_refused_config() -> None:
    """The check is not blind: Home Assistant before 2025.6 refuses the `reactive_energy`
    device class hanport published before (2 of the 23 configs of a full meter)."""
    topic, text = next((t, p) for t, p in published() if "reactive_energy_import" in t)
    config = json.loads(text)
    config["device_class"] = "reactive_energy"
    answer = home_assistant_answer(HOME_ASSISTANT_NEWEST, [(topic, json.dumps(config))])
    (result,) = answer["results"]
    assert "device_class" in result["errors"][0]
