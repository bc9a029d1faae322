"""The optional raw-telegram topic: each telegram the meter sent, as is, for support tools.

Consumes the raw stream `HANPORT_RAW_STREAM` (written by ingest: fields `raw` bytes, `result`
"ok" or the decode error, `received` ms) through its own consumer group `<group>-raw`; produces
one message per decoded telegram on `HANPORT_MQTT_RAW_TOPIC` with the telegram's bytes as the
payload (P1 text or DLMS frame bytes). Telegrams that did not decode are left out (ingest counts
them). Like readings, an entry is acknowledged only after the broker confirmed its message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.stream import BLOCK_MS

log = logging.getLogger(__name__)
BATCH = 100
PENDING_EVERY_S = 30

RedisCall = Callable[..., Awaitable[Any]]
Publish = Callable[[str, bytes], Awaitable[None]]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RawForwarder:
    def __init__(self, redis: Redis, key: str, group: str, consumer: str, topic: str) -> None:
        self.redis = redis
        self.key = key
        self.group = group
        self.consumer = consumer
        self.topic = topic

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.key, self.group, "$", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def read(self, start: str, block: int | None) -> list[tuple[str, dict[bytes, Any]]]:
        response: Any = await self.redis.xreadgroup(
            self.group, self.consumer, {self.key: start}, count=BATCH, block=block
        )
        return [(_text(i), f or {}) for _k, entries in response or () for i, f in entries]

    async def run(self, call: RedisCall, publish: Publish) -> None:
        """Forward forever: this consumer's pending entries first, then new ones."""
        await call(self.ensure_group)
        while True:
            # own pending entries first, and again now and then: a read whose reply was lost in
            # a Redis outage leaves its entries pending with this consumer
            cursor = "0"
            while entries := await call(self.read, cursor, None):
                await self._forward(entries, call, publish)
                cursor = entries[-1][0]
            until = time.monotonic() + PENDING_EVERY_S
            while time.monotonic() < until:
                await self._forward(await call(self.read, ">", BLOCK_MS), call, publish)

    async def _forward(
        self, entries: list[tuple[str, dict[bytes, Any]]], call: RedisCall, publish: Publish
    ) -> None:
        for entry_id, fields in entries:
            raw, result = fields.get(b"raw"), _text(fields.get(b"result", b""))
            if raw and result == "ok":
                await publish(self.topic, bytes(raw))
            await call(self.redis.xack, self.key, self.group, entry_id)
