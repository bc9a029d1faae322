"""The accounting service's energy intervals to one sink.

Consumes the accounting service's sorted sets `hanport:{<meter>}:accounting:15m|1h|1d|1mo` of
every meter in `hanport:accounting:meters`, read with its own functions
(services/accounting/store.py); produces `Sink.write_intervals` calls. At start every stored
interval is written (a store that missed some catches up; writing one again overwrites it), then
every `every` s the intervals of the last `LOOKBACK_MS` whose member changed since it was last
written (the running interval, and those a gap was spread over). Only the meters the license
serves (`ServedMeters`): another meter's intervals wait until a license names it, then all of
them are written. A sink that is down gets the
same intervals again with backoff; nothing is marked written before it confirmed them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Set
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.accounting import store
from services.accounting.account import RESOLUTIONS, IntervalRow
from shared.backoff import Backoff
from shared.cancellation import raise_if_cancelling
from shared.stream import REDIS_DOWN

from . import metrics
from .license import ServedMeters
from .sinks import Rejected, Sink, SinkDown
from .sinks.intervals import Interval

log = logging.getLogger(__name__)

# Intervals that start before this can no longer change (the accounting service changes them
# from the month of its oldest register baseline on): two months covers it.
LOOKBACK_MS = 62 * 86_400_000
Seen = dict[tuple[str, str, int], str]  # (meter, resolution, start) -> member written


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def interval_of(meter: str, row: IntervalRow) -> Interval:
    imported, exported, reactive_imported, reactive_exported = row.values
    return Interval(
        meter,
        RESOLUTIONS[row.period],
        row.start_ms,
        imported,
        exported,
        reactive_imported,
        reactive_exported,
        row.estimated,
    )


async def changed_intervals(
    redis: Redis, seen: Seen, since_ms: int | None, all_of: Set[str] = frozenset()
) -> list[tuple[Interval, str]]:
    """Intervals (and their members) starting at `since_ms` or later (all when None; all of
    the meters `all_of`) whose member differs from the one in `seen`."""
    out: list[tuple[Interval, str]] = []
    for meter in await store.meters(redis):
        start = "-inf" if since_ms is None or meter in all_of else since_ms
        for period, resolution in RESOLUTIONS.items():
            members: Any = await redis.zrangebyscore(
                store.energy_key(meter, resolution), start, "+inf"
            )
            for raw in members:
                member = _text(raw)
                try:
                    interval = interval_of(meter, store.decode_row(period, member))
                except (ValueError, IndexError) as error:
                    log.debug("skipping an accounting interval %r: %s", member, error)
                    continue
                if seen.get((meter, resolution, interval.start_ms)) != member:
                    out.append((interval, member))
    return out


@dataclass
class IntervalExport:
    """Writes the accounting intervals to one sink; `run()` forever."""

    redis: Redis
    sink: Sink
    every: float = 60.0
    meters: ServedMeters | None = None  # the license's meters; None: every meter
    seen: Seen = field(default_factory=dict)
    # meters the license did not serve: once it does, every interval of theirs is written
    unserved: set[str] = field(default_factory=set)

    async def run(self) -> None:
        since: int | None = None  # the first round: everything stored
        backoff = Backoff()
        while True:
            now_served = self.meters.names(self.unserved) if self.meters else set()
            try:
                changed = await changed_intervals(self.redis, self.seen, since, now_served)
            except (*REDIS_DOWN, ResponseError) as error:
                raise_if_cancelling(error)
                metrics.REDIS_ERRORS.labels(self.sink.name).inc()
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            if self.meters is not None:
                served = self.meters.names(interval.meter for interval, _member in changed)
                self.unserved -= now_served
                self.unserved |= {i.meter for i, _member in changed if i.meter not in served}
                changed = [(i, member) for i, member in changed if i.meter in served]
            if changed:
                await self._write([i for i, _member in changed])
                for interval, member in changed:
                    self.seen[(interval.meter, interval.resolution, interval.start_ms)] = member
            since = int(time.time() * 1000) - LOOKBACK_MS
            for key in [k for k in self.seen if k[2] < since]:
                del self.seen[key]
            await asyncio.sleep(self.every)

    async def _write(self, intervals: list[Interval]) -> None:
        backoff = Backoff(maximum=30.0)
        while True:
            try:
                await self.sink.write_intervals(intervals)
                metrics.INTERVALS.labels(self.sink.name).inc(len(intervals))
                return
            except SinkDown as error:
                raise_if_cancelling()
                metrics.FAILURES.labels(self.sink.name).inc()
                if backoff.attempts in (0, 5):
                    log.warning("%s cannot take accounting intervals: %s", self.sink.name, error)
            except Rejected as error:
                log.error(
                    "%s refused %d accounting intervals: %s; they are not written",
                    self.sink.name,
                    len(intervals),
                    error,
                )
                return
            await asyncio.sleep(backoff.next_delay())
