"""Home Assistant's own code takes the energy-accounting discovery configs (services/mqtt/
accounting.py): on the meter's own device and on a device of their own, for the oldest and the
newest Home Assistant claimed, without an error or a warning (the same check as
test_home_assistant.py)."""

from __future__ import annotations

import pytest

from services.mqtt.accounting import SENSORS, discovery_messages
from services.mqtt.topics import Topics
from tests.clients.test_home_assistant import SERIALS, home_assistant_answer
from tests.clients.venvs import HOME_ASSISTANT_NEWEST, HOME_ASSISTANT_OLDEST, Client


def published() -> list[tuple[str, str]]:
    out = []
    for serial in SERIALS:
        topics = Topics(
            data=f"hanport/{serial}/data",
            prefix=f"hanport/{serial}",
            availability=f"hanport/{serial}/availability",
            raw=None,
        )
        for node in (None, "hanport_hp0a1b2c_garage"):
            messages = discovery_messages(
                "garage", topics=topics, serial=serial, prefix="homeassistant", device_node=node
            )
            out += [(topic, payload.decode()) for topic, payload in messages]
    return out


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "client", [HOME_ASSISTANT_OLDEST, HOME_ASSISTANT_NEWEST], ids=lambda client: client.name
)
def test_home_assistant_takes_the_accounting_configs(client: Client) -> None:
    messages = published()
    assert len(messages) == 2 * 2 * len(SENSORS)
    answer = home_assistant_answer(client, messages)
    results = answer["results"]
    assert [r["topic"] for r in results] == [topic for topic, _payload in messages]
    for result in results:
        assert result["errors"] == [], result
        assert result["warnings"] == [], result
