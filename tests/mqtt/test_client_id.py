"""Two bridges on one host (same host name, so the same consumer name) get different MQTT client
ids by default, so the broker keeps both connected instead of disconnecting one whenever the
other connects."""

from __future__ import annotations

import asyncio
import logging

from services.mqtt import metrics
from services.mqtt.connection import lost_hint, make_client
from services.mqtt.settings import MqttSettings
from services.mqtt.topics import Topics
from shared.stream import ReadingStream, connect
from tests.servers import MosquittoServer, RedisServer

from .support import Subscriber, reading, running_bridge, settings

TOPICS = Topics(data="d", prefix="p", availability="p/availability", raw=None)


def two_meters(
    redis: RedisServer, broker: MosquittoServer, keys: str, client_id: str | None = None
) -> tuple[MqttSettings, MqttSettings]:
    """Two bridges on one host: two streams, two topic trees, one host name."""
    first, second = (
        settings(
            redis,
            broker,
            keys,
            stream=f"meter-{n}:readings",
            mqtt_topic=f"meter{n}/data",
            mqtt_topic_prefix=f"meter{n}",
            **({"mqtt_client_id": client_id} if client_id else {}),
        )  # fmt: skip
        for n in (1, 2)
    )
    return first, second


async def test_default_client_id_is_unique_per_bridge_on_one_host() -> None:
    one, two = (
        MqttSettings.model_validate({"mqtt_url": "mqtt://b", "mqtt_consumer": "box"}) for _ in "12"
    )
    ids = {make_client(one, TOPICS).identifier, make_client(two, TOPICS).identifier}
    assert len(ids) == 2
    assert all(
        id_.startswith("hanport-box-") and len(id_) == len("hanport-box-") + 6 for id_ in ids
    )
    given = MqttSettings.model_validate(
        {"mqtt_url": "mqtt://b", "mqtt_consumer": "box", "mqtt_client_id": "mine"}
    )
    assert make_client(given, TOPICS).identifier == "mine"


async def test_two_bridges_on_one_host_stay_connected(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    """Two meters read on one host: two streams, two topic trees, one host name."""
    first, second = two_meters(redis_server, mosquitto_server, license_keys)
    assert first.mqtt_consumer == second.mqtt_consumer
    streams = [ReadingStream(await connect(redis_server.url), s.stream) for s in (first, second)]
    topics = ["meter1/data", "meter2/data", "meter1/availability", "meter2/availability"]
    async with (
        Subscriber(mosquitto_server, topics) as sub,
        running_bridge(first),
        running_bridge(second),
    ):
        await sub.wait_for(lambda _m: len(sub.on("meter1/availability")) > 0
                           and len(sub.on("meter2/availability")) > 0)  # fmt: skip
        reconnects = metrics.RECONNECTS._value.get()
        for n in range(20):
            await streams[0].add(reading(n))
            await streams[1].add(reading(n))
        await sub.wait_count("meter1/data", 20)
        await sub.wait_count("meter2/data", 20)
        # neither was disconnected: no last will `offline`, no reconnect
        for availability in ("meter1/availability", "meter2/availability"):
            assert [m.payload for m in sub.on(availability)] == [b"online"]
        assert metrics.RECONNECTS._value.get() == reconnects
    for stream in streams:
        await stream.redis.aclose()


def test_lost_hint_names_the_client_id_when_dropped_soon_or_taken_over() -> None:
    soon = lost_hint(ConnectionError("Disconnected during message iteration"), 0.4, "box")
    assert "client id 'box'" in soon and "HANPORT_MQTT_CLIENT_ID" in soon
    taken = lost_hint(ConnectionError("Session taken over [code:142]"), 3600.0, "box")
    assert "HANPORT_MQTT_CLIENT_ID" in taken
    assert lost_hint(ConnectionError("Disconnected during message iteration"), 3600.0, "b") == ""


class SaysWhy(logging.Handler):
    """Sets `seen` at the first "lost the broker connection" line that names the client id."""

    def __init__(self, client_id: str) -> None:
        super().__init__(logging.WARNING)
        self.client_id, self.seen = client_id, asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "lost the broker connection" in text and f"client id {self.client_id!r}" in text:
            self.seen.set()


async def test_two_bridges_with_one_client_id_say_why_they_drop(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    """Set by hand to the same id, two bridges knock each other off: the log says why."""
    first, second = two_meters(redis_server, mosquitto_server, license_keys, "same-id")
    says_why = SaysWhy("same-id")
    logger = logging.getLogger("services.mqtt.bridge")
    logger.addHandler(says_why)
    try:
        async with running_bridge(first), running_bridge(second):
            await asyncio.wait_for(says_why.seen.wait(), 30)
    finally:
        logger.removeHandler(says_why)
