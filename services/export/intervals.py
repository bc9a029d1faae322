"""The accounting service's energy intervals to one sink (a hook on the accounting service's
Redis layout: services/export/sinks/intervals.py describes it).

Consumes the sorted sets `hanport:{<meter>}:accounting:15m|1h|1d|1mo` of every meter in
`hanport:accounting:meters`; produces `Sink.write_intervals` calls. At start every stored
interval is written (a store that missed some catches up; writing one again overwrites it), then
every `every` s the intervals of the last `LOOKBACK_MS` whose member changed since it was last
written (the running interval, and those a gap was spread over). A sink that is down gets the
same intervals again with backoff; nothing is marked written before it confirmed them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.backoff import Backoff
from shared.cancellation import raise_if_cancelling
from shared.stream import REDIS_DOWN

from . import metrics
from .sinks import Rejected, Sink, SinkDown
from .sinks.intervals import METERS_KEY, RESOLUTIONS, Interval, intervals_key, parse_member

log = logging.getLogger(__name__)

# Intervals that start before this can no longer change (the accounting service changes them
# from the month of its oldest register baseline on): two months covers it.
LOOKBACK_MS = 62 * 86_400_000
Seen = dict[tuple[str, str, int], str]  # (meter, resolution, start) -> member written


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def changed_intervals(
    redis: Redis, seen: Seen, since_ms: int | None
) -> list[tuple[Interval, str]]:
    """Intervals (and their members) starting at `since_ms` or later (all when None) whose
    member differs from the one in `seen`."""
    out: list[tuple[Interval, str]] = []
    meters = sorted(_text(m) for m in await redis.smembers(METERS_KEY))
    for meter in meters:
        for resolution in RESOLUTIONS:
            members: Any = await redis.zrangebyscore(
                intervals_key(meter, resolution), "-inf" if since_ms is None else since_ms, "+inf"
            )
            for raw in members:
                member = _text(raw)
                try:
                    interval = parse_member(meter, resolution, member)
                except ValueError as error:
                    log.debug("skipping an accounting interval: %s", error)
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
    seen: Seen = field(default_factory=dict)

    async def run(self) -> None:
        since: int | None = None  # the first round: everything stored
        backoff = Backoff()
        while True:
            try:
                changed = await changed_intervals(self.redis, self.seen, since)
            except (*REDIS_DOWN, ResponseError) as error:
                raise_if_cancelling(error)
                metrics.REDIS_ERRORS.labels(self.sink.name).inc()
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
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
