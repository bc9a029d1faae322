"""Background work of one replica: follow the readings stream into `State`, watch Redis
reachability and freshness (telling SSE clients when either changes), learn the reader serial,
and keep the entitlements current. Every loop survives Redis outages with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from shared.backoff import Backoff
from shared.identity import reader_serial
from shared.metrics import LAST_READING_TS, REDIS_CONNECTED
from shared.stream import REDIS_DOWN, ReadingStream

from .state import State

log = logging.getLogger(__name__)
HOT_GAP = 0.02  # s between XREADs under which readings count as arriving fast (> 50/s)
FOLLOW_COUNT = 100  # readings per XREAD at most
# While readings arrive fast, s to wait after each batch: at most this much added latency.
BATCH_WAIT = 0.005


async def follow(stream: ReadingStream, state: State, batch_wait: float = BATCH_WAIT) -> None:
    """Load the newest reading, then every later one, forever (catching up after outages).

    Readings come as the batches one XREAD returns. While they arrive fast (more than one per
    XREAD, or XREADs less than HOT_GAP s apart) it waits `batch_wait` s after each batch, so the
    next XREAD brings more at once: the per-XREAD cost (most of this service's CPU per reading)
    is shared. A meter sending every second or slower never waits."""
    if state.latest is not None:  # restarted after an error: resume exactly where it was
        after = state.latest.entry_id
    else:
        latest = await stream.wait_latest()
        after = "0-0"
        if latest is not None:
            after = latest[0]
            state.publish(*latest)
            LAST_READING_TS.set(latest[1].ts / 1000)
    state.loaded.set()
    previous = 0.0
    async for batch in stream.follow_batches(after, count=FOLLOW_COUNT):
        state.publish_batch(batch)
        now = time.monotonic()
        fast = len(batch) > 1 or now - previous < HOT_GAP
        if batch_wait > 0 and fast and len(batch) < FOLLOW_COUNT:  # a full one: more is there
            await asyncio.sleep(batch_wait)
        previous = now


async def redis_answers(redis: Redis, within: float) -> bool:
    """Whether Redis answers PING within `within` s. One retry: the first command after a
    Redis restart fails on the pool's dead socket, which is then replaced."""
    for _attempt in range(2):
        try:
            await asyncio.wait_for(redis.ping(), within)
            return True
        except REDIS_DOWN:
            continue
        except TimeoutError:
            return False
    return False


async def watch(redis: Redis, state: State, interval: float, keepalive: float) -> None:
    """Ping Redis every `interval` s; broadcast status on a change, and every `keepalive` s."""
    last: tuple[bool, bool] | None = None
    last_sent = 0.0
    while True:
        try:
            await asyncio.wait_for(redis.ping(), timeout=max(1.0, interval))
            ok = True
        except (TimeoutError, *REDIS_DOWN):
            ok = False
        if ok != state.redis_ok:
            log.log(
                logging.INFO if ok else logging.WARNING,
                "Redis %s",
                "reachable" if ok else "unreachable",
            )
        state.redis_ok = ok
        REDIS_CONNECTED.set(int(ok))
        now = time.monotonic()
        current = (ok, state.stale_reason() is not None)
        if current != last or now - last_sent >= keepalive:
            state.broadcast_status()
            last, last_sent = current, now
        await asyncio.sleep(interval)


async def learn_serial(configured: str | None, redis: Redis, state: State) -> None:
    backoff = Backoff()
    while state.serial is None:
        try:
            state.serial = await reader_serial(configured, redis)
        except REDIS_DOWN:
            await asyncio.sleep(backoff.next_delay())


async def supervise(name: str, work: Callable[[], Awaitable[None]]) -> None:
    """Run `work` forever: an unexpected error is logged and the work restarted with backoff,
    so no single failure takes the service down."""
    backoff = Backoff()
    while True:
        started = time.monotonic()
        try:
            await work()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; restarting it", name)
        if time.monotonic() - started > 60:
            backoff.reset()
        await asyncio.sleep(backoff.next_delay())
