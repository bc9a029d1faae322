"""Helpers of the fleet tests: readings into Redis, the hub's messages read back, settings."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError
from redis.asyncio import Redis

from services.hub.stream import HUB_STREAM, ensure_hub_stream, hub_stream_config
from services.uplink.messages import MSG_ID, Health, decode_health, parse_subject
from services.uplink.settings import UplinkSettings
from shared.reading import decode_reading, encode_reading
from shared.stream import READING_FIELD, ReadingStream
from tests.readings import simulated_readings
from tests.stack.polling import until

BOX = "HPTESTBOX01"
TS0 = 1_717_236_000_000  # distinct meter times: 10 ms apart


def settings(hub_url: str, redis_url: str, **extra: Any) -> UplinkSettings:
    values: dict[str, Any] = {
        "uplink_url": hub_url, "redis_url": redis_url, "uplink_box": BOX,
        "uplink_health_interval": 0.5, "uplink_ack_timeout": 1.0, "metrics_port": 0,
        "license_dir": Path("/nonexistent"), **extra,
    }  # fmt: skip
    return UplinkSettings(**values)


class Feeder:
    """Writes readings of meters `meters` (round robin) into one stream, ids chosen here."""

    def __init__(self, redis: Redis, key: str, meters: tuple[str, ...] = ("a", "b.1")) -> None:
        self.stream = ReadingStream(redis, key)
        self.meters = meters
        self.sent: dict[str, list[str]] = defaultdict(list)  # meter -> entry ids in order
        self.count = 0
        self.pool = simulated_readings(50)

    async def add(self, n: int) -> None:
        """`n` more readings, written in pipelined chunks."""
        redis = self.stream.redis
        pipe = redis.pipeline(transaction=False)
        for k in range(n):
            meter = self.meters[self.count % len(self.meters)]
            reading = msgspec.structs.replace(
                self.pool[self.count % 50], meter=meter, ts=TS0 + 10 * self.count
            )
            entry_id = f"{1_700_000_000_000 + self.count}-0"
            pipe.xadd(self.stream.key, {READING_FIELD: encode_reading(reading)}, id=entry_id)
            self.sent[meter].append(entry_id)
            self.count += 1
            if k % 500 == 499:
                await pipe.execute()
        await pipe.execute()

    async def flow(self, rate: float, stop: asyncio.Event) -> None:
        """`rate` readings/s until `stop` is set."""
        while not stop.is_set():
            await self.add(1)
            await asyncio.sleep(1 / rate)


async def hub_client(url: str, creds: Path | None = None) -> Client:
    return await nats.connect(
        url, user_credentials=str(creds) if creds else None, max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
    )  # fmt: skip


async def create_hub_stream(nc: Client, replicas: int = 1) -> None:
    await ensure_hub_stream(nc.jetstream(), hub_stream_config(replicas=replicas))


async def hub_readings(nc: Client, box: str = BOX) -> dict[str, list[str]]:
    """meter -> the entry ids of its readings in the hub stream, in stream order."""
    js = nc.jetstream()
    info = await js.stream_info(HUB_STREAM)
    out: dict[str, list[str]] = defaultdict(list)
    if info.state.messages == 0:
        return out
    sub = await js.pull_subscribe(
        f"hanport.{box}.*.readings", durable=None, stream=HUB_STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )  # fmt: skip
    try:
        while True:
            try:
                msgs = await sub.fetch(1000, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            for m in msgs:
                parsed = parse_subject(m.subject)
                assert parsed is not None and parsed.meter is not None
                entry = (m.headers or {})[MSG_ID].rsplit(":", 1)[1]
                assert decode_reading(m.data).meter == parsed.meter
                out[parsed.meter].append(entry)
            if msgs and msgs[-1].metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return out


async def wait_all(
    nc: Client, feeder: Feeder, logs: Callable[[], str], within: float = 60.0
) -> dict[str, list[str]]:
    async def check() -> dict[str, list[str]] | None:
        try:
            got = await hub_readings(nc)
        except (APIError, nats.errors.TimeoutError):  # a cluster still electing its leaders
            return None
        return got if sum(map(len, got.values())) >= feeder.count else None

    result: dict[str, list[str]] = await until(check, "every reading at the hub", logs, within, 0.3)
    return result


def no_logs() -> str:
    return ""


async def eventually(check: Callable[[], Awaitable[Any]], what: str, within: float = 30.0) -> Any:
    return await until(check, what, no_logs, within, 0.1)


async def hub_health(nc: Client, box: str = BOX) -> list[Health]:
    """The box's health messages in the hub stream, in order."""
    sub = await nc.jetstream().pull_subscribe(
        f"hanport.{box}.health", durable=None, stream=HUB_STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )  # fmt: skip
    out: list[Health] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(100, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            out += [decode_health(m.data) for m in msgs]
            if msgs[-1].metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return out
