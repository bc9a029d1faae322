"""The bridge's housekeeping: backlog gauges kept current, and the consumer names of replicas
gone for good removed from the groups.

Consumes the consumer groups' state in Redis (XPENDING, XINFO GROUPS); produces
`hanport_mqtt_backlog`, `hanport_mqtt_backlog_age_seconds` and
`hanport_mqtt_consumers_forgotten_total`. Errors are logged at debug level and tried again at
the next round; a cancel (which redis-py may turn into a ConnectionError) ends the watch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.cancellation import raise_if_cancelling
from shared.stream import REDIS_DOWN, ConsumerGroup
from shared.stream_id import StreamId

from . import metrics

log = logging.getLogger(__name__)
# A consumer that held nothing and did not even try to read for this long is a replica gone for
# good (`compose up` recreating a container gives it a new host name, so a new consumer name):
# its name is removed from the groups, looked for every FORGET_EVERY_S.
FORGET_IDLE_MS = 3_600_000
FORGET_EVERY_S = 300.0


async def watch_backlog(
    redis: Redis,
    keys: str | Callable[[], Iterable[str]],
    group: str,
    forget: Callable[[], Awaitable[object]],
    every: float = 2.0,
) -> None:
    """Keep the backlog gauges current: pending + undelivered entries of every meter's stream
    (`keys`: one key, or the keys now), the oldest one's age; now and then remove the consumer
    names of replicas gone for good."""
    next_forget = time.monotonic() + every
    while True:
        if time.monotonic() >= next_forget:
            await forget()
            next_forget = time.monotonic() + FORGET_EVERY_S
        try:
            total, oldest_ms = 0, None
            for key in [keys] if isinstance(keys, str) else list(keys()):
                try:
                    count, oldest = await _backlog(redis, key, group)
                except ResponseError as error:  # a meter's stream whose group is not made yet
                    if "NOGROUP" not in str(error) and "no such key" not in str(error):
                        raise
                    continue
                total += count
                if oldest is not None:
                    ms = StreamId.parse(oldest).ms
                    oldest_ms = ms if oldest_ms is None else min(oldest_ms, ms)
            metrics.BACKLOG.set(total)
            age = time.time() - oldest_ms / 1000 if oldest_ms is not None else 0.0
            metrics.BACKLOG_AGE.set(max(0.0, age))
        except (*REDIS_DOWN, ResponseError) as error:
            raise_if_cancelling(error)  # a cancelled command is not an outage: stop
            log.debug("backlog metrics unavailable: %s", error)
        await asyncio.sleep(every)


async def _backlog(redis: Redis, key: str, group: str) -> tuple[int, str | None]:
    """Pending + undelivered entries of `group` on `key`, and the oldest one's id."""
    summary = await redis.xpending(key, group)
    groups = await redis.xinfo_groups(key)
    info = next((g for g in groups if _text(g.get("name")) == group), {})
    lag = int(info.get("lag") or 0)
    oldest = _text(summary.get("min")) if summary.get("pending") else None
    if oldest is None and lag:
        after = _text(info.get("last-delivered-id") or "0-0")
        nxt = await redis.xrange(key, f"({after}", "+", count=1)
        oldest = _text(nxt[0][0]) if nxt else None
    return int(summary.get("pending") or 0) + lag, oldest


async def forget_gone_replicas(
    groups: Sequence[ConsumerGroup[Any]], min_idle_ms: int = FORGET_IDLE_MS
) -> list[str]:
    """Remove from `groups` every other consumer that holds no pending entry and has not
    tried to read for `min_idle_ms`; the names removed."""
    removed: list[str] = []
    for reader in groups:
        try:
            names = await reader.forget_idle_consumers(min_idle_ms)
        except (*REDIS_DOWN, ResponseError) as error:  # tried again next time
            raise_if_cancelling(error)
            log.debug("could not look for gone replicas in %s: %s", reader.group, error)
            continue
        if names:
            log.info(
                "removed %d consumers of replicas gone for over %d s from group %s: %s",
                len(names),
                min_idle_ms // 1000,
                reader.group,
                ", ".join(sorted(names)),
            )
            metrics.CONSUMERS_FORGOTTEN.inc(len(names))
        removed += names
    return removed


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
