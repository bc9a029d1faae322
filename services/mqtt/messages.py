"""Building the bridge's MQTT messages from a reading: pure functions, no I/O.

Consumes a `Reading`, the topics (`services.mqtt.topics.Topics`) and the settings that shape the
messages; produces `Message`s: the Cozify `/meter` JSON on the data topic, the optional split
topics, the M-Bus sub-meters message when the meter has sub-meters, and the Home Assistant
discovery configs (retained, QoS 1) for sensors not announced yet.
"""

from __future__ import annotations

from shared.reading import Reading, encode_cozify

from .discovery import Device, Sensor, discovery_messages, present_sensors, submeter_messages
from .submeters import sensors as submeter_sensors
from .submeters import submeter_payload
from .topics import Topics, split_messages

# topic, payload, QoS, retain, kind (the `kind` label of the published/failed counters)
Message = tuple[str, bytes, int, bool, str]
KINDS = ("reading", "split", "submeters", "raw", "other")


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
    if reading.submeters:
        payload = submeter_payload(reading.submeters)
        messages.append((topics.submeters, payload, qos, retain, "submeters"))
    return messages


def submeter_announcements(
    reading: Reading,
    announced: set[str],
    *,
    topics: Topics,
    device: Device,
    prefix: str,
    expire_after: int,
) -> list[Message]:
    """Discovery configs for the sub-meter sensors of `reading` not in `announced` (which
    gains them)."""
    fresh = [
        sensor
        for sub in reading.submeters
        for sensor in submeter_sensors(sub)
        if sensor.slug not in announced
    ]
    if not fresh:
        return []
    announced.update(sensor.slug for sensor in fresh)
    configs = submeter_messages(
        fresh,
        model=reading.meter_model,
        topics=topics,
        device=device,
        prefix=prefix,
        expire_after=expire_after,
    )
    return [(topic, payload, 1, True, "other") for topic, payload in configs]


def announcements(
    reading: Reading,
    unannounced: tuple[Sensor, ...],
    *,
    topics: Topics,
    serial: str,
    prefix: str,
    expire_after: int,
    device: Device | None = None,
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
        device=device,
    )
    remaining = tuple(s for s in unannounced if s not in fresh)
    return remaining, [(topic, payload, 1, True, "other") for topic, payload in configs]
