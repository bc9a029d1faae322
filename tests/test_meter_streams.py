"""shared/meter_streams.py: every meter's stream followed as one (the classic stream and those the
directory lists, including a meter that appears later), and a task per stream for consumer-group
readers; on a real redis-server."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from shared.cancellation import stop
from shared.follow import Follower, Pacing
from shared.meter_streams import MeterStreams, each_meter_stream
from shared.meters import MeterDirectory, MeterKeys, MeterRecord, meter_of
from shared.reading import Reading
from shared.stream import Entry, ReadingStream, connect
from tests.servers import RedisServer

TIMEOUT = 15
CLASSIC = "hanport:readings"


def reading(meter: str | None, n: int) -> Reading:
    return Reading(
        ts=1_764_152_400_000 + n, received=1_764_152_400_000 + n, ic=float(n), meter=meter
    )


async def register(redis: Redis, name: str) -> ReadingStream:
    keys = MeterKeys.named(name)
    await MeterDirectory(redis).put(
        MeterRecord(name=name, readings=keys.readings, raw=keys.raw, status=keys.status)
    )
    return ReadingStream(redis, keys.readings)


class PerMeter:
    def __init__(self) -> None:
        self.seen: dict[str, list[int]] = defaultdict(list)
        self.changed = asyncio.Event()

    def handle(self, batch: list[Entry]) -> None:
        assert len({meter_of(r) for _i, r in batch}) == 1, "a batch holds one meter's readings"
        for _id, r in batch:
            self.seen[meter_of(r)].append(int(r.ic or 0))
        self.changed.set()

    async def until(self, meter: str, count: int) -> list[int]:
        async with asyncio.timeout(TIMEOUT):
            while len(self.seen[meter]) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.seen[meter]


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = await connect(redis_server.url)
    yield client
    await client.aclose()


async def test_follower_hands_over_every_meter_and_finds_one_that_appears_later(
    redis: Redis,
) -> None:
    classic = ReadingStream(redis, CLASSIC)
    await classic.add(reading(None, 1))
    heatpump = await register(redis, "heatpump")
    await heatpump.add(reading("heatpump", 10))
    got = PerMeter()
    follower = Follower(MeterStreams(redis, CLASSIC), got.handle, Pacing(count=100, min_interval=0))
    task = asyncio.create_task(follower.run())
    try:
        assert await got.until("meter", 1) == [1]  # the classic stream's newest, unnamed
        assert await got.until("heatpump", 1) == [10]
        for n in (2, 3):
            await classic.add(reading(None, n))
            await heatpump.add(reading("heatpump", 10 + n))
        assert await got.until("meter", 3) == [1, 2, 3]
        assert await got.until("heatpump", 3) == [10, 12, 13]
        # a meter whose ingest starts now: followed from its newest reading on
        ev = await register(redis, "ev")
        await ev.add(reading("ev", 100))
        assert await got.until("ev", 1) == [100]
        await ev.add(reading("ev", 101))
        assert await got.until("ev", 2) == [100, 101]
    finally:
        await stop(task)


async def test_each_meter_stream_starts_one_task_per_stream_including_later_ones(
    redis: Redis,
) -> None:
    await register(redis, "main")
    started: list[str] = []
    changed = asyncio.Event()

    async def start(key: str) -> None:
        started.append(key)
        changed.set()
        await asyncio.Event().wait()  # a reader runs until stopped

    async def until(count: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while len(started) < count:
                changed.clear()
                await changed.wait()

    task = asyncio.create_task(each_meter_stream(redis, CLASSIC, start, refresh_s=0.1))
    try:
        await until(2)
        assert sorted(started) == sorted([CLASSIC, MeterKeys.named("main").readings])
        await register(redis, "pv")
        await until(3)
        assert started[-1] == "hanport:{pv}:readings"
    finally:
        await stop(task)
    assert len(started) == 3  # none started twice


async def test_a_blocking_reader_per_stream_for_120_meters_on_one_client(
    redis_server: RedisServer,
) -> None:
    """One blocking connection per meter's stream: more than redis-py's default pool of 100."""
    redis = await connect(redis_server.url)
    names = [f"m{n:03d}" for n in range(120)]
    for name in names:
        await register(redis, name)
    blocked: set[str] = set()
    all_blocked = asyncio.Event()

    async def start(key: str) -> None:
        blocked.add(key)
        if len(blocked) == len(names) + 1:
            all_blocked.set()
        await redis.xread({key: "$"}, block=0)  # holds its connection until cancelled

    task = asyncio.create_task(each_meter_stream(redis, CLASSIC, start, refresh_s=0.1))
    try:
        async with asyncio.timeout(TIMEOUT):
            await all_blocked.wait()
            clients = len(names) + 1  # only observable by looking:
            while int((await redis.info("clients"))["blocked_clients"]) < clients:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        await stop(task)
        await redis.aclose()


class UnixSocketRedis(RedisServer):
    """redis-server also listening on a unix socket, as compose's `redis` does for `emulate`."""

    def command(self) -> list[str]:
        socket = str(self.workdir / "redis.sock")
        return [*super().command(), "--unixsocket", socket, "--unixsocketperm", "770"]


async def test_every_meter_followed_over_redis_unix_socket(tmp_path: Path) -> None:
    """The host-networked `emulate` reaches Redis at `unix:///run/redis/redis.sock?db=0`."""
    server = UnixSocketRedis(tmp_path / "redis")
    server.start()
    try:
        redis = await connect(f"unix://{tmp_path / 'redis' / 'redis.sock'}?db=0")
        ev = await register(redis, "ev")
        await ev.add(reading("ev", 7))
        got = PerMeter()
        follower = Follower(MeterStreams(redis, CLASSIC), got.handle, Pacing(min_interval=0))
        task = asyncio.create_task(follower.run())
        try:
            assert await got.until("ev", 1) == [7]
        finally:
            await stop(task)
            await redis.aclose()
    finally:
        server.stop()
