"""Background work of one replica besides following the stream (`shared.follow.Follower` into
`State.publish_batch`): watch Redis reachability and freshness (telling SSE clients when either
changes), read the directory of meters (`hanport:meters`) and learn the reader serial. Every loop survives Redis outages with backoff; all run
under `shared.supervise` (services/rest/app.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.follow import EVERY_READING, Follower
from shared.identity import wait_for_serial
from shared.meter_streams import MeterStreams
from shared.meters import MeterDirectory
from shared.metrics import REDIS_CONNECTED
from shared.stream import REDIS_DOWN, ReadingStream

from .state import State

log = logging.getLogger(__name__)


def follower(streams: ReadingStream | MeterStreams, state: State) -> Follower:
    """Every reading of every meter (`MeterStreams`) into `state` (which encodes only what is
    served); `state.loaded` is set once each meter's newest reading was looked up."""
    return Follower(streams, state.publish_batch, EVERY_READING, loaded=state.loaded)


def follow_every_meter(redis: Redis, classic: str, state: State) -> Callable[[], Awaitable[None]]:
    """The follower task: read the directory first (so the first readings are told apart:
    which meter is on the classic stream), then follow every meter's stream for ever. Restarted
    after an error, it resumes where each stream was left (one `Follower`, its cursor kept)."""
    every = follower(MeterStreams(redis, classic), state)

    async def run() -> None:
        if not state.records:
            await read_directory_once(redis, state)
        await every.run()

    return run


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
    last: tuple[bool, tuple[bool, ...]] | None = None
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
        current = (ok, state.stale_flags())
        if current != last or now - last_sent >= keepalive:
            state.broadcast_status()
            last, last_sent = current, now
        await asyncio.sleep(interval)


# Seconds between two reads of the directory of meters (`shared.meter_streams` finds new ones
# as often).
DIRECTORY_INTERVAL = 2.0


async def read_directory(redis: Redis, state: State, interval: float = DIRECTORY_INTERVAL) -> None:
    """Keep `state.records` the directory of meters, re-read every `interval` s (a Redis outage
    keeps the last one read; the next round tries again)."""
    while True:
        await read_directory_once(redis, state, max(1.0, interval))
        await asyncio.sleep(interval)


async def read_directory_once(redis: Redis, state: State, within: float = 2.0) -> None:
    """`state.records` := the directory of meters, if Redis answers within `within` s (else
    the last one read stays)."""
    try:
        state.set_records(await asyncio.wait_for(MeterDirectory(redis).records(), within))
    except (TimeoutError, ResponseError, *REDIS_DOWN) as error:
        log.debug("directory of meters not read (%s); keeping the last one", error)


async def learn_serial(configured: str | None, folder: Path, redis: Redis, state: State) -> None:
    state.serial = await wait_for_serial(configured, folder, redis)
