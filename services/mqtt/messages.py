"""Building the bridge's MQTT messages from a reading: pure functions, no I/O.

Consumes a `Reading`, the topics (`services.mqtt.topics.Topics`) and the settings that shape the
messages; produces `Message`s: the Cozify `/meter` JSON on the data topic, the optional split
topics, and the Home Assistant discovery configs (retained, QoS 1) for sensors not announced yet.
"""

from __future__ import annotations

from shared.reading import Reading, encode_cozify

from .discovery import Sensor, discovery_messages, present_sensors
from .topics import Topics, split_messages

# topic, payload, QoS, retain, kind (the `kind` label of the published/failed counters)
Message = tuple[str, bytes, int, bool, str]
KINDS = ("reading", "split", "raw", "other")


def reading_messages(
    reading: Reading, topics: Topics, *, qos: int, retain: bool, split: bool
) -> list[Message]:
    """The data message, then (with `split`) one message per value on its own topic."""
    messages: list[Message] = [(topics.data, encode_cozify(reading), qos, retain, "reading")]
    if split:
        messages += [
            (topic, payload, qos, retain, "split")
            for topic, payload in split_messages(reading, topics.prefix)
        ]
    return messages


def announcements(
    reading: Reading,
    unannounced: tuple[Sensor, ...],
    *,
    topics: Topics,
    serial: str,
    prefix: str,
    expire_after: int,
) -> tuple[tuple[Sensor, ...], list[Message]]:
    """Discovery configs for the sensors of `reading` among `unannounced`; and the sensors still
    unannounced after them."""
    if not unannounced:  # the usual case: look at no value at all
        return unannounced, []
    fresh = present_sensors(reading, unannounced)
    if not fresh:
        return unannounced, []
    configs = discovery_messages(
        fresh,
        reading=reading,
        topics=topics,
        serial=serial,
        prefix=prefix,
        expire_after=expire_after,
    )
    remaining = tuple(s for s in unannounced if s not in fresh)
    return remaining, [(topic, payload, 1, True, "other") for topic, payload in configs]
