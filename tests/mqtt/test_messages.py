"""services/mqtt/messages.py: what the bridge publishes for a reading (pure, no broker)."""

from __future__ import annotations

from services.mqtt.discovery import SENSORS, discovery_messages, present_sensors
from services.mqtt.messages import announcements, reading_messages
from services.mqtt.topics import Topics, split_messages
from shared.reading import encode_cozify

from .support import SERIAL, reading

TOPICS = Topics(
    data=f"hanport/{SERIAL}/data",
    prefix=f"hanport/{SERIAL}",
    availability=f"hanport/{SERIAL}/availability",
    raw=None,
)


def test_the_data_message_then_the_split_topics_in_order() -> None:
    r = reading(1)
    assert reading_messages(r, TOPICS, qos=1, retain=False, split=False) == [
        (TOPICS.data, encode_cozify(r), 1, False, "reading")
    ]
    with_split = reading_messages(r, TOPICS, qos=2, retain=True, split=True)
    assert with_split[0] == (TOPICS.data, encode_cozify(r), 2, True, "reading")
    assert [(t, p) for t, p, _q, _r, _k in with_split[1:]] == split_messages(r, TOPICS.prefix)
    assert {(q, rt, k) for _t, _p, q, rt, k in with_split[1:]} == {(2, True, "split")}


def test_discovery_configs_go_out_once_per_sensor_retained() -> None:
    r = reading(1)
    remaining, messages = announcements(
        r, SENSORS, topics=TOPICS, serial=SERIAL, prefix="homeassistant", expire_after=60
    )
    present = present_sensors(r, SENSORS)
    expected = discovery_messages(
        present, reading=r, topics=TOPICS, serial=SERIAL, prefix="homeassistant", expire_after=60
    )
    assert messages and messages == [(t, p, 1, True, "other") for t, p in expected]
    assert remaining == tuple(s for s in SENSORS if s not in present)
    again = announcements(
        r, remaining, topics=TOPICS, serial=SERIAL, prefix="homeassistant", expire_after=60
    )
    assert again == (remaining, [])  # nothing new in the same kind of reading
