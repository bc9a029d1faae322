"""Test helpers for the MQTT bridge: readings, settings, a subscriber that collects messages
across broker restarts, and a bridge running in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
from redis.asyncio import Redis

from services.mqtt.bridge import Bridge
from services.mqtt.settings import MqttSettings
from shared.reading import Reading
from shared.stream import ReadingStream, connect
from tests.servers import MosquittoServer, RedisServer

SERIAL = "HPTEST01"
STREAM = "hanport:readings"
T0 = 1_764_000_000_000


def reading(n: int) -> Reading:
    """A three-phase reading whose values all derive from `n`."""
    return Reading(
        ts=T0 + n * 1000,
        received=T0 + n * 1000 + 5,
        ic=1000.0 + n,
        ec=2.5,
        p=[1500.0 + n, 500.0, 500.0, 500.0 + n],
        pi=[1500.0 + n, 500.0, 500.0, 500.0 + n],
        pe=[0.0, 0.0, 0.0, 0.0],
        u=[230.1, 231.2, 229.9],
        i=[2.2, 2.1, 2.3],
        meter_id="7350000000000001",
        meter_model="Kaifa MA304H4",
    )


def settings(
    redis: RedisServer, broker: MosquittoServer | str, license_keys: str, **extra: Any
) -> MqttSettings:
    """Bridge settings for the test servers; `license_keys` from the `license_keys` fixture."""
    values: dict[str, Any] = {
        "redis_url": redis.url,
        "license_public_keys": license_keys,
        "mqtt_url": broker if isinstance(broker, str) else broker.url,
        "serial": SERIAL,
        "stream": STREAM,
        "mqtt_consumer": "bridge-a",
        "metrics_port": 0,
        "mqtt_discovery": False,
        **extra,
    }
    return MqttSettings(**values)


@contextlib.asynccontextmanager
async def running_bridge(config: MqttSettings) -> AsyncIterator[Bridge]:
    """A bridge (with the real `Entitlements`) running in this event loop until the block ends."""
    redis = await connect(config.redis_url)
    bridge = Bridge(config, redis)
    task = asyncio.create_task(bridge.run())
    try:
        yield bridge
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()


async def writer(redis: RedisServer) -> ReadingStream:
    return ReadingStream(await connect(redis.url), STREAM)


class Subscriber:
    """Collects messages on `topics`; reconnects after a broker outage. With `client_id` it is a
    persistent session (clean_session False, QoS 1), so the broker keeps what it missed."""

    def __init__(
        self,
        broker: MosquittoServer,
        topics: list[str],
        *,
        client_id: str | None = None,
        tls: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.broker = broker
        self.topics = topics
        self.client_id = client_id
        self.tls = tls
        self.username = username
        self.password = password
        self.messages: list[aiomqtt.Message] = []
        self.times: list[float] = []  # loop time of each message's arrival
        self.arrived = asyncio.Condition()
        self.subscribed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Subscriber:
        self.task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.subscribed.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.broker.port,
                    identifier=self.client_id,
                    clean_session=self.client_id is None,
                    tls_context=self.tls,
                    username=self.username,
                    password=self.password,
                ) as client:
                    for topic in self.topics:
                        await client.subscribe(topic, qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        async with self.arrived:
                            self.messages.append(message)
                            self.times.append(asyncio.get_running_loop().time())
                            self.arrived.notify_all()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    def on(self, topic: str) -> list[aiomqtt.Message]:
        return [m for m in self.messages if m.topic.matches(topic)]

    async def wait_for(
        self, predicate: Callable[[list[aiomqtt.Message]], bool], within: float = 30
    ) -> list[aiomqtt.Message]:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: predicate(self.messages)), within)
        return self.messages

    async def wait_count(self, topic: str, n: int, within: float = 30) -> list[aiomqtt.Message]:
        await self.wait_for(lambda _m: len(self.on(topic)) >= n, within)
        return self.on(topic)


async def pending_count(redis: Redis, group: str = "mqtt", key: str = STREAM) -> int:
    summary = await redis.xpending(key, group)
    return int(summary["pending"])


async def no_pending(redis: Redis, group: str = "mqtt", key: str = STREAM) -> bool:
    """Every entry delivered to `group` is acknowledged and none waits undelivered."""
    groups = {g["name"].decode(): g for g in await redis.xinfo_groups(key)}
    lag = groups[group]["lag"] if group in groups else 1
    return await pending_count(redis, group, key) == 0 and not lag


async def eventually(check: Callable[[], Any], within: float = 20, every: float = 0.05) -> Any:
    """Poll an async/sync condition until it is truthy (for state with no event to await)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(every)
