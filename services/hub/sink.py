"""Fleet sink workers: the hub stream -> VictoriaMetrics and/or PostgreSQL, and the fleet view.

Every worker binds the same durable pull consumer (`HANPORT_HUB_SINK_DURABLE`, explicit acks),
so starting more workers spreads the work; a worker that dies leaves its unacknowledged messages
to be delivered again to the others after the ack wait. A batch is acknowledged only after the
store confirmed it (readings written twice overwrite themselves: same series and time); while the
store is down the worker retries the same batch with backoff and tells JetStream it is still
working on it. Readings the store refuses for good are logged and counted, then acknowledged.
Health messages feed the fleet view (services/hub/fleetview.py). Accounting intervals
(`.energy`) go through the stores' `write_intervals` (the export's measurement `hanport_energy`
and table `hanport_intervals`), per box, after the batch's readings.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.export.sinks import Entry, Rejected, SinkDown
from services.export.sinks.intervals import Interval
from services.uplink.messages import (
    ENERGY,
    HEALTH,
    MSG_ID,
    decode_health,
    decode_interval,
    parse_subject,
)
from shared.backoff import Backoff
from shared.reading import decode_reading

from .fleetview import ERRORS, INTERVALS, READINGS, REFUSED, FleetView
from .stream import HUB_STREAM
from .writer import Writer

log = logging.getLogger(__name__)

ACK_WAIT_S = 30.0


@dataclass
class SinkWorker:
    nc: Client
    writer: Writer | None
    durable: str = "fleet-sink"
    batch: int = 500
    view: FleetView = field(default_factory=FleetView)
    written: int = 0
    intervals_written: int = 0

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ACK_WAIT_S,
            max_ack_pending=20 * self.batch,
            max_deliver=-1,
        )

    async def run(self) -> None:
        js = self.nc.jetstream()
        sub = await js.pull_subscribe(
            "hanport.>", durable=self.durable, stream=HUB_STREAM, config=self.consumer_config()
        )
        while True:
            try:
                msgs = await sub.fetch(self.batch, timeout=2.0)
            except (TimeoutError, NatsTimeout):
                continue
            await self.handle(msgs)

    def split(self, msgs: list[Msg]) -> tuple[list[Entry], dict[str, list[Interval]]]:
        """The batch's readings, and its accounting intervals by box: of an interval sent
        several times (revisions) the batch's last, as a store may keep either of two points of
        one series and time written in one request."""
        entries: list[Entry] = []
        latest: dict[str, dict[tuple[str, str, int], Interval]] = {}
        now = time.time()
        for m in msgs:
            subject = parse_subject(m.subject)
            try:
                if subject is None:
                    raise ValueError(f"unexpected subject {m.subject}")
                self.view.seen(subject.box, now)
                if subject.kind == HEALTH:
                    health = decode_health(m.data)
                    if health.box != subject.box:
                        raise ValueError(f"health of {health.box} under {m.subject}")
                    self.view.health(health)
                elif subject.kind == "readings":
                    msg_id = (m.headers or {}).get(MSG_ID) or f"{subject.box}:{subject.meter}:?"
                    entries.append((msg_id, decode_reading(m.data)))
                elif subject.kind == ENERGY:
                    interval = decode_interval(m.data)
                    if interval.meter != subject.meter:
                        raise ValueError(f"interval of {interval.meter} under {m.subject}")
                    key = (interval.meter, interval.resolution, interval.start_ms)
                    latest.setdefault(subject.box, {})[key] = interval
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as error:
                ERRORS.labels("bad_message").inc()
                log.warning("skipping message %s: %s", m.subject, error)
        return entries, {box: list(by_key.values()) for box, by_key in latest.items()}

    async def handle(self, msgs: list[Msg]) -> None:
        entries, intervals = self.split(msgs)
        if entries and self.writer is not None:
            await self.write(entries, msgs)
        self.written += len(entries)
        READINGS.inc(len(entries))
        if self.writer is not None:
            for box, part in intervals.items():
                await self.write_intervals(box, part, msgs)
        self.intervals_written += sum(map(len, intervals.values()))
        await asyncio.gather(*(m.ack() for m in msgs))

    async def write(self, entries: list[Entry], msgs: list[Msg]) -> None:
        assert self.writer is not None
        backoff = Backoff()
        while True:
            try:
                result = await self.writer.write(entries)
                break
            except SinkDown as error:
                ERRORS.labels("store_down").inc()
                delay = backoff.next_delay()
                log.warning("the store cannot take writes (%s); retrying in %.1f s", error, delay)
                await asyncio.gather(*(m.in_progress() for m in msgs))
                await asyncio.sleep(delay)
        for msg_id, _reading, reason in result.refused:
            REFUSED.inc()
            log.warning("the store refused reading %s for good: %s", msg_id, reason)

    async def write_intervals(self, box: str, intervals: list[Interval], msgs: list[Msg]) -> None:
        assert self.writer is not None
        backoff = Backoff()
        while True:
            try:
                await self.writer.write_box_intervals(box, intervals)
                INTERVALS.inc(len(intervals))
                return
            except Rejected as error:
                ERRORS.labels("intervals_refused").inc(len(intervals))
                log.warning("the store refused %d intervals of box %s for good: %s",
                            len(intervals), box, error)  # fmt: skip
                return
            except SinkDown as error:
                ERRORS.labels("store_down").inc()
                delay = backoff.next_delay()
                log.warning("the store cannot take intervals (%s); retrying in %.1f s",
                            error, delay)  # fmt: skip
                await asyncio.gather(*(m.in_progress() for m in msgs))
                await asyncio.sleep(delay)


async def consumer_state(nc: Client, durable: str) -> dict[str, Any]:
    info = await nc.jetstream().consumer_info(HUB_STREAM, durable)
    return {"pending": info.num_pending, "ack_pending": info.num_ack_pending}
