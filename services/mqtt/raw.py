"""The optional raw-telegram topic: each telegram the meter sent, as is, for support tools.

Consumes the raw stream `HANPORT_RAW_STREAM` (written by ingest, fields in `shared.raw_stream`)
through its own consumer group `<group>-raw` (`shared.raw_stream.RawGroupReader`); produces one
message per decoded telegram on `HANPORT_MQTT_RAW_TOPIC` with the telegram's bytes as the
payload (P1 text or DLMS frame bytes). Telegrams that did not decode are left out (ingest counts
them). Like readings, an entry is acknowledged only after the broker confirmed its message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from shared.raw_stream import RawEntry, RawGroupReader, RawStream
from shared.stream import BLOCK_MS

log = logging.getLogger(__name__)
BATCH = 100
PENDING_EVERY_S = 30

RedisCall = Callable[..., Awaitable[Any]]
Publish = Callable[[str, bytes], Awaitable[None]]


class RawForwarder:
    def __init__(self, redis: Redis, key: str, group: str, consumer: str, topic: str) -> None:
        self.reader = RawGroupReader(RawStream(redis, key), group, consumer)
        self.group = group
        self.topic = topic
        self.meter = ""  # a named meter's forwarder: the meter (the license may not serve it)

    async def ensure_group(self) -> None:
        """Create the group if missing; a new group starts with the next telegram."""
        await self.reader.ensure_group("$")

    async def run(self, call: RedisCall, publish: Publish) -> None:
        """Forward forever: this consumer's pending entries first, then new ones."""
        await call(self.ensure_group)
        while True:
            # own pending entries first, and again now and then: a read whose reply was lost in
            # a Redis outage leaves its entries pending with this consumer
            cursor = "0"
            while entries := await call(self.reader.pending_after, cursor, BATCH):
                await self._forward(entries, call, publish)
                cursor = entries[-1][0]
            until = time.monotonic() + PENDING_EVERY_S
            while time.monotonic() < until:
                await self._forward(await call(self.reader.new, BATCH, BLOCK_MS), call, publish)

    async def _forward(self, entries: list[RawEntry], call: RedisCall, publish: Publish) -> None:
        for entry_id, telegram in entries:
            if telegram.raw and telegram.decoded:
                await publish(self.topic, telegram.raw)
            await call(self.reader.ack, entry_id)
