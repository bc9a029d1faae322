"""shared/follow.py: the newest reading, then every later one, in order, paced, resuming where it
stopped; on a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shared.cancellation import stop
from shared.follow import Follower, Pacing
from shared.reading import Reading, encode_reading
from shared.stream import READING_FIELD, Entry, ReadingStream, connect
from tests.servers import RedisServer

TIMEOUT = 10


def reading(n: int) -> Reading:
    return Reading(ts=1_764_152_400_000 + n, received=1_764_152_400_000 + n, ic=float(n))


class Batches:
    """What a follower handed over, with an event per batch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.changed = asyncio.Event()

    def handle(self, batch: list[Entry]) -> None:
        self.batches.append([int(r.ic or 0) for _i, r in batch])
        self.changed.set()

    async def until(self, n_readings: int) -> list[list[int]]:
        async with asyncio.timeout(TIMEOUT):
            while sum(map(len, self.batches)) < n_readings:
                self.changed.clear()
                await self.changed.wait()
        return self.batches


async def add_at_once(stream: ReadingStream, numbers: range) -> None:
    """XADD these readings in one transaction: a blocked XREAD sees them all at once."""
    async with stream.redis.pipeline(transaction=True) as pipe:
        for n in numbers:
            pipe.xadd(stream.key, {READING_FIELD: encode_reading(reading(n))})
        await pipe.execute()


@pytest.fixture
async def stream(redis_server: RedisServer) -> AsyncIterator[ReadingStream]:
    redis = await connect(redis_server.url)
    yield ReadingStream(redis, "hanport:readings")
    await redis.aclose()


async def test_newest_first_then_every_later_one_in_full_batches(stream: ReadingStream) -> None:
    for n in range(3):
        await stream.add(reading(n))
    got = Batches()
    follower = Follower(stream, got.handle, Pacing(count=2, min_interval=5.0))
    task = asyncio.create_task(follower.run())
    try:
        await asyncio.wait_for(follower.loaded.wait(), TIMEOUT)
        assert got.batches == [[2]]  # only the newest of what was there
        await add_at_once(stream, range(3, 8))  # full batches: read on at once (no 5 s wait)
        assert await got.until(6) == [[2], [3, 4], [5, 6], [7]]
    finally:
        await stop(task)


async def test_a_batch_that_was_not_full_paces_the_next_read(stream: ReadingStream) -> None:
    got = Batches()
    follower = Follower(stream, got.handle, Pacing(count=100, min_interval=1.0))
    task = asyncio.create_task(follower.run())
    try:
        await asyncio.wait_for(follower.loaded.wait(), TIMEOUT)
        assert got.batches == []  # an empty stream: nothing yet
        await stream.add(reading(0))
        await got.until(1)
        await stream.add(reading(1))  # the follower was idle: handed over at once, then a pause
        await got.until(2)
        for n in range(2, 5):  # arrive within the 1 s pause: handed over together
            await stream.add(reading(n))
        assert await got.until(5) == [[0], [1], [2, 3, 4]]
    finally:
        await stop(task)


async def test_run_again_resumes_after_the_last_reading_handed_over(stream: ReadingStream) -> None:
    await stream.add(reading(0))
    got = Batches()
    follower = Follower(stream, got.handle, Pacing(count=100, min_interval=0.0))
    task = asyncio.create_task(follower.run())
    await got.until(1)
    await stop(task)  # as the supervisor does after an error, then runs it again
    for n in range(1, 4):
        await stream.add(reading(n))
    task = asyncio.create_task(follower.run())
    try:
        batches = await got.until(4)
        assert [n for batch in batches for n in batch] == [0, 1, 2, 3]  # none skipped or repeated
    finally:
        await stop(task)
