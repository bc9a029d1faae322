"""Every meter's readings stream, read as one: what a consumer of several meters follows.

A box's meters each have a readings stream (`shared.meters`): the classic `HANPORT_STREAM` and
one per named meter, listed in the directory `hanport:meters`. Two ways to read them all:

- `MeterStreams`, for `shared.follow.Follower` (every replica sees every reading): one
  `XREAD` over all the streams at once, batches in order per meter. A meter that appears later
  (its ingest started after us) is found within `REFRESH_S` and followed from its newest
  reading, as every meter is at start.
- `each_meter_stream(redis, classic, start)`, for consumer-group readers (each reading handled
  once, acknowledged when done): calls `start(stream_key)` once per stream, as a supervised task,
  for the streams there now and those that appear later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from .backoff import Backoff
from .cancellation import stop
from .meters import MeterDirectory
from .metrics import LAST_READING_TS, REDIS_CONNECTED, STREAM_ENTRIES
from .stream import REDIS_DOWN, Entry, ReadingStream, parse_entries, wait_for_redis
from .stream_id import FIRST, entry_id_text
from .supervise import supervise

log = logging.getLogger(__name__)

REFRESH_S = 2.0  # how often the directory is read for meters that appeared
BLOCK_MS = 2000  # an XREAD waits at most this long, so a new meter is noticed in time

Cursor = dict[str, str]  # stream key -> the last entry id handed over


class MeterStreams:
    """The readings streams of every meter on the box (`directory` given), or a fixed set."""

    def __init__(
        self, redis: Redis, classic: str, *, directory: MeterDirectory | None = None
    ) -> None:
        self.redis = redis
        self.classic = classic
        self.directory = directory if directory is not None else MeterDirectory(redis)
        self.fixed = False

    @classmethod
    def single(cls, stream: ReadingStream) -> MeterStreams:
        """Just one stream (what `Follower` makes of a plain `ReadingStream`)."""
        streams = cls(stream.redis, stream.key)
        streams.fixed = True
        return streams

    async def keys(self) -> list[str]:
        """The classic stream's key, then every meter's from the directory."""
        keys = [self.classic]
        if not self.fixed:
            for record in await self.directory.records():
                if record.readings not in keys:
                    keys.append(record.readings)
        return keys

    async def newest(self, cursor: Cursor) -> list[Entry]:
        """For each stream not yet in `cursor`: its newest reading (returned) and a cursor
        entry to follow it from (FIRST when the stream is still empty)."""
        found: list[Entry] = []
        for key in await self.keys():
            if key in cursor:
                continue
            latest = await ReadingStream(self.redis, key).latest()
            if latest is None:
                cursor[key] = FIRST
            else:
                cursor[key] = latest[0]
                found.append(latest)
        return found

    async def wait_newest(self, cursor: Cursor) -> list[Entry]:
        """`newest`, waiting out a Redis outage."""
        backoff = Backoff()
        while True:
            try:
                return await self.newest(cursor)
            except REDIS_DOWN as error:
                await wait_for_redis(error, backoff)

    async def follow_batches(
        self, cursor: Cursor, *, count: int = 100
    ) -> AsyncGenerator[list[Entry], None]:
        """Every reading after `cursor` (updated as batches go out), forever, one stream's batch
        at a time; meters that appear are added with their newest reading. Rides out Redis
        outages, resuming where each stream was left: nothing skipped or repeated."""
        backoff = Backoff()
        next_refresh = time.monotonic() + REFRESH_S
        while True:
            try:
                if not self.fixed and time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + REFRESH_S
                    for entry in await self.newest(cursor):
                        yield [entry]
                positions: dict[Any, Any] = dict(cursor)
                response: Any = await self.redis.xread(
                    positions, count=count, block=BLOCK_MS if not self.fixed else 5000
                )
            except REDIS_DOWN as error:
                await wait_for_redis(error, backoff)
                continue
            if backoff.attempts:
                backoff.reset()
                REDIS_CONNECTED.set(1)
            for raw_key, raw_entries in response or ():
                if not raw_entries:
                    continue
                key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
                cursor[key] = entry_id_text(raw_entries[-1][0])
                batch = parse_entries(raw_entries)
                if batch:
                    STREAM_ENTRIES.inc(len(batch))
                    LAST_READING_TS.set(batch[-1][1].ts / 1000)
                    yield batch


StartStream = Callable[[str], Awaitable[None]]


async def each_meter_stream(
    redis: Redis,
    classic: str,
    start: StartStream,
    *,
    directory: MeterDirectory | None = None,
    refresh_s: float = REFRESH_S,
) -> None:
    """Run `start(key)` for every meter's readings stream, each under `supervise` (restarted
    after an error), starting new ones as meters appear in the directory; forever. Cancelled,
    it stops them all."""
    directory = directory if directory is not None else MeterDirectory(redis)
    tasks: dict[str, asyncio.Task[None]] = {}
    backoff = Backoff()

    def launch(key: str) -> None:
        tasks[key] = asyncio.create_task(
            supervise(f"stream {key}", lambda: start(key)), name=f"stream {key}"
        )

    launch(classic)
    try:
        while True:
            try:
                records = await directory.records()
            except REDIS_DOWN as error:
                await wait_for_redis(error, backoff)
                continue
            backoff.reset()
            for record in records:
                if record.readings not in tasks:
                    log.info("meter %s: following its stream %s", record.name, record.readings)
                    launch(record.readings)
            await asyncio.sleep(refresh_s)
    finally:
        for task in tasks.values():
            await stop(task)
