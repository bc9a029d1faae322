"""The box's disk spool: a file-backed JetStream stream on a nats-server of the box's own.

Days offline without loss and without RAM: readings go from Redis to the spool (`MeterRelay`,
stage `spool`), and `Forwarder` sends the spool to the hub. The spool holds only what the hub
has not acknowledged: after each acknowledged prefix it purges every message up to it, so its
first sequence is the forwarder's cursor, kept on disk by the server itself; a forwarder
restarted after a crash begins there (messages acknowledged by the hub but not yet purged go
again and are stored once: same `Nats-Msg-Id`, within the hub's duplicate window).

Bounded: `max_bytes` and `max_age`; past either, the oldest readings are dropped (counted by
the server, and visible as the spool's first sequence jumping).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from shared.backoff import Backoff

from .messages import MSG_ID, Outgoing, box_subjects
from .metrics import SPOOLED
from .publish import publish_in_order

log = logging.getLogger(__name__)

SPOOL_STREAM = "HANPORT_SPOOL"
DUPLICATE_WINDOW_S = 120.0


def spool_config(box: str, max_bytes: int, max_age_s: float) -> StreamConfig:
    return StreamConfig(
        name=SPOOL_STREAM,
        subjects=[box_subjects(box)],
        storage=StorageType.FILE,
        max_bytes=max_bytes,
        max_age=max_age_s,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=1,
    )


async def ensure_spool(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the spool stream, or bring an existing one to `config`."""
    try:
        await js.stream_info(SPOOL_STREAM)
    except NotFoundError:
        await js.add_stream(config)
        log.info("created the spool stream %s (%s)", SPOOL_STREAM, config.subjects)
        return
    await js.update_stream(config)


async def spooled(js: JetStreamContext) -> int:
    info = await js.stream_info(SPOOL_STREAM)
    SPOOLED.set(info.state.messages)
    return int(info.state.messages)


FORWARDER = "forwarder"  # the spool's one consumer
CHECK_EVERY = 30  # empty fetches (2 s each) between checks that the consumer is still there


@dataclass
class Forwarder:
    """The spool -> the hub, in order, purging what the hub acknowledged.

    It reads through a durable consumer without acks (`FORWARDER`), made anew at each start so
    that it begins at the spool's first message (everything before was purged: at the hub). A
    durable one, not an ephemeral one: the server deletes an idle ephemeral consumer, and a
    forwarder retrying one batch through a days-long outage is idle to the server. While no
    message comes it checks every `CHECK_EVERY` empty fetches that its consumer still exists
    (raising, so it is restarted and makes it again, if someone deleted it)."""

    spool: JetStreamContext
    hub: JetStreamContext
    box: str
    batch: int = 100
    timeout: float = 5.0
    backoff: Backoff = field(default_factory=Backoff)

    async def consumer(self) -> JetStreamContext.PullSubscription:
        with contextlib.suppress(NotFoundError):
            await self.spool.delete_consumer(SPOOL_STREAM, FORWARDER)
        return await self.spool.pull_subscribe(
            box_subjects(self.box),
            durable=FORWARDER,
            stream=SPOOL_STREAM,
            config=ConsumerConfig(
                durable_name=FORWARDER,
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.ALL,
            ),
        )

    async def run(self) -> None:
        sub = await self.consumer()
        empty = 0
        try:
            while True:
                try:
                    msgs = await sub.fetch(self.batch, timeout=2.0)
                except (TimeoutError, NatsTimeout):
                    empty += 1
                    if empty % CHECK_EVERY == 0:
                        await sub.consumer_info()  # NotFoundError: restarted, made again
                    continue
                held = [
                    (m.metadata.sequence.stream,
                     Outgoing(m.subject, m.data, (m.headers or {}).get(MSG_ID, "")))
                    for m in msgs
                ]  # fmt: skip
                await self.forward(held)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def forward(self, held: list[tuple[int, Outgoing]]) -> None:
        while held:
            todo = [m for _seq, m in held]
            done = await publish_in_order(self.hub, todo, ack_timeout=self.timeout, stage="hub")
            if done:
                # everything before the next unsent message is at the hub
                await self.spool.purge_stream(SPOOL_STREAM, seq=held[done - 1][0] + 1)
                held = held[done:]
                self.backoff.reset()
            if held:
                await asyncio.sleep(self.backoff.next_delay())
