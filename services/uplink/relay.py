"""One meter's readings stream -> JetStream (the box's spool, or the hub directly).

A consumer group (`HANPORT_UPLINK_GROUP`) on the meter's stream: entries this consumer was
handed but had not acknowledged (a crash mid-batch) are sent first, then every new one, in
order. An entry is acknowledged in Redis only after JetStream acknowledged its message; what was
not acknowledged stays pending and is sent again, in order, after a backoff. A restart sends
the pending entries again: JetStream stores each once (`Nats-Msg-Id`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from nats.js import JetStreamContext
from redis.asyncio import Redis

from shared.backoff import Backoff
from shared.stream import Entry, GroupReader, ReadingStream

from .messages import Outgoing, reading_message
from .publish import publish_in_order

log = logging.getLogger(__name__)


@dataclass
class MeterRelay:
    redis: Redis
    stream_key: str
    js: JetStreamContext
    box: str
    group: str
    consumer: str
    stage: str
    batch: int = 100
    timeout: float = 5.0
    last_entry: str | None = None
    backoff: Backoff = field(default_factory=Backoff)

    def reader(self) -> GroupReader:
        return GroupReader(ReadingStream(self.redis, self.stream_key), self.group, self.consumer)

    async def run(self) -> None:
        reader = self.reader()
        await reader.ensure_group("0")
        while True:  # first what this consumer holds from before (a crash mid-batch)
            held = await reader.pending_mine(self.batch)
            if not held:
                break
            await self.send(reader, held)
        while True:
            entries = await reader.new(self.batch)
            if entries:
                await self.send(reader, entries)

    async def send(self, reader: GroupReader, entries: list[Entry]) -> None:
        """Send `entries` until JetStream acknowledged them all, acking each prefix in Redis."""
        todo: list[Outgoing] = [reading_message(self.box, i, r) for i, r in entries]
        while todo:
            done = await publish_in_order(self.js, todo, ack_timeout=self.timeout, stage=self.stage)
            if done:
                await reader.ack(*(m.key for m in todo[:done]))
                self.last_entry = todo[done - 1].key
                todo = todo[done:]
                self.backoff.reset()
            if todo:
                await asyncio.sleep(self.backoff.next_delay())
