"""How long a readings stream keeps entries: never trim one a sink has not confirmed, within a
memory budget.

A readings stream is normally trimmed to `HANPORT_STREAM_MAXLEN` entries (`XADD MAXLEN ~`). The
export service reads it through consumer groups named `export-<sink>` (`RETAINING_PREFIX`) and
acknowledges an entry only once its sink confirmed it, so a sink down for hours has a backlog
that trimming would cut. The ingest's publisher therefore asks `Retention.maxlen` before each
round trip (at most once a second it looks at the groups):

- while every retaining group is less than half of `HANPORT_STREAM_MAXLEN` behind, the stream
  is trimmed as always (adding another half before the next look is out of reach);
- when one is further behind, the stream may grow to the budget `HANPORT_STREAM_RETAIN_MAX`
  (entries; docs/export.md gives the memory each takes), and shrinks back once all caught up;
- a group past 50% and past 90% of the budget: a warning each time it crosses (and the gauge
  `hanport_stream_retained_ratio`); past the budget the oldest entries are trimmed anyway, and
  the entries a group lost that way are counted in `hanport_stream_retention_dropped_total`
  (they appear in the group's lag, but no longer in the stream).

`group_backlogs` is also what the export service's lag gauges rest on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from .stream_id import StreamId

log = logging.getLogger(__name__)

RETAINING_PREFIX = "export-"  # consumer groups whose unconfirmed entries are kept
LOOK_EVERY_S = 1.0
WARN_AT = (0.5, 0.9)

RETAINED = Gauge(
    "hanport_stream_retained_entries",
    "Entries of the readings stream a retaining consumer group (export-*) has not confirmed, "
    "by stream, for the group furthest behind.",
    ["stream"],
)
RETAINED_RATIO = Gauge(
    "hanport_stream_retained_ratio",
    "Those entries as a share of HANPORT_STREAM_RETAIN_MAX (1: the oldest are being dropped).",
    ["stream"],
)
RETENTION_DROPPED = Counter(
    "hanport_stream_retention_dropped_total",
    "Entries a retaining consumer group had not confirmed when the stream was trimmed past the "
    "budget HANPORT_STREAM_RETAIN_MAX, by stream and group.",
    ["stream", "group"],
)


@dataclass(frozen=True)
class Backlog:
    """What a consumer group has not confirmed: entries still in the stream (pending + not yet
    delivered), the id of the oldest (None when none), and `missing`: entries it never got
    that the stream no longer holds (trimmed past the budget)."""

    entries: int
    oldest: str | None
    missing: int = 0

    def age_s(self, now: float | None = None) -> float:
        """Seconds since the oldest unconfirmed entry was received (0 when none)."""
        if self.oldest is None:
            return 0.0
        now = time.time() if now is None else now
        return max(0.0, now - StreamId.parse(self.oldest).ms / 1000)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def group_backlogs(redis: Redis, key: str, prefix: str = "") -> dict[str, Backlog]:
    """The backlog of every consumer group of `key` whose name starts with `prefix`; {} when
    the stream does not exist. Redis's `lag` is used only while the group has not read up to
    the stream's last entry (Redis 7.0 keeps a stale lag after a trim past the group); a group
    whose lag Redis cannot tell counts the whole stream."""
    try:
        groups: Any = await redis.xinfo_groups(key)
    except ResponseError as error:
        if "no such key" in str(error).lower():
            return {}
        raise
    groups = [g for g in groups if _text(g.get("name")).startswith(prefix)]
    if not groups:
        return {}
    stream: Any = await redis.xinfo_stream(key)
    length = int(stream.get("length") or 0)
    last = StreamId.parse(_text(stream.get("last-generated-id") or "0-0"))
    out: dict[str, Backlog] = {}
    for info in groups:
        name = _text(info.get("name"))
        pending = int(info.get("pending") or 0)
        delivered = _text(info.get("last-delivered-id") or "0-0")
        lag = info.get("lag")
        undelivered, missing = 0, 0
        if StreamId.parse(delivered) < last:
            behind = int(lag) if lag is not None else length
            undelivered, missing = min(behind, length), max(0, behind - length)
        oldest = None
        if pending:
            summary: Any = await redis.xpending(key, name)
            oldest = _text(summary.get("min")) if summary.get("min") else None
        elif undelivered:
            following: Any = await redis.xrange(key, f"({delivered}", "+", count=1)
            oldest = _text(following[0][0]) if following else None
        out[name] = Backlog(pending + undelivered, oldest, missing)
    return out


def choose_maxlen(maxlen: int, budget: int, behind: int) -> int:
    """The MAXLEN to trim to: `maxlen` while the group furthest behind is within half of it,
    else the budget (never less than `maxlen`)."""
    return maxlen if behind <= maxlen // 2 else max(maxlen, budget)


@dataclass
class Retention:
    """The trimming of one readings stream (see the module's docstring)."""

    budget: int = 604_800  # entries: 7 days at 1 reading/s
    prefix: str = RETAINING_PREFIX
    every: float = LOOK_EVERY_S
    _next_look: float = field(default=0.0, init=False)
    _maxlen: int | None = field(default=None, init=False)
    _warned: dict[str, float] = field(default_factory=dict, init=False)
    _lost: dict[str, int] = field(default_factory=dict, init=False)

    async def maxlen(self, redis: Redis, key: str, maxlen: int) -> int:
        """The MAXLEN for the next XADDs to `key`; looks at the groups at most every
        `every` s. Redis errors pass through (the publisher retries)."""
        now = time.monotonic()
        if self._maxlen is not None and now < self._next_look:
            return self._maxlen
        self._next_look = now + self.every
        backlogs = await group_backlogs(redis, key, self.prefix)
        behind = max((b.entries for b in backlogs.values()), default=0)
        self._maxlen = choose_maxlen(maxlen, self.budget, behind)
        RETAINED.labels(key).set(behind)
        RETAINED_RATIO.labels(key).set(behind / self.budget if self.budget else 0.0)
        if self._maxlen > maxlen:
            await self._account(key, backlogs)
        else:
            self._warned.clear()
            self._lost.clear()
        return self._maxlen

    async def _account(self, key: str, backlogs: dict[str, Backlog]) -> None:
        """Warn as a group crosses 50% and 90% of the budget; count what it lost past it."""
        for group, backlog in backlogs.items():
            share = backlog.entries / self.budget if self.budget else 1.0
            crossed = max((mark for mark in WARN_AT if share >= mark), default=0.0)
            if crossed > self._warned.get(group, 0.0):
                log.warning(
                    "stream %s: group %s has %d entries (%.0f s) unconfirmed, %.0f%% of "
                    "HANPORT_STREAM_RETAIN_MAX=%d; past it the oldest are dropped: bring the "
                    "sink back, or raise the budget if Redis has the memory (docs/export.md)",
                    key,
                    group,
                    backlog.entries,
                    backlog.age_s(),
                    share * 100,
                    self.budget,
                )
            self._warned[group] = crossed
            before = self._lost.get(group, 0)
            if backlog.missing > before:
                RETENTION_DROPPED.labels(key, group).inc(backlog.missing - before)
                if before == 0:
                    log.error(
                        "stream %s: over HANPORT_STREAM_RETAIN_MAX=%d, dropping the oldest "
                        "entries group %s has not confirmed (counted in "
                        "hanport_stream_retention_dropped_total)",
                        key,
                        self.budget,
                        group,
                    )
            self._lost[group] = backlog.missing
