"""The stream contract against a real redis-server: publish, follow across an outage, groups."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from shared.reading import Reading, cozify_message, decode_reading, encode_reading
from shared.stream import DuplicateEntry, GroupReader, ReadingStream, connect, field_value
from tests.servers import RedisServer


def reading(n: int) -> Reading:
    return Reading(ts=1_700_000_000_000 + n, received=1_700_000_000_000 + n, ic=float(n))


def test_reading_round_trip_and_cozify_keys() -> None:
    r = reading(5)
    assert decode_reading(encode_reading(r)) == r
    message = cozify_message(r)
    assert list(message) == ["type", "ts", "ic", "ec", "ric", "rec", "p", "pi", "pe", "r", "u", "i"]
    assert message["type"] == "HAN_METER_MESSAGE"
    assert message["p"] == [None, None, None, None] and message["u"] == [None, None, None]


async def test_duplicate_ids_are_refused(redis_server: RedisServer) -> None:
    stream = ReadingStream(await connect(redis_server.url), "t")
    assert await stream.add(reading(1), entry_id="100-0") == "100-0"
    with pytest.raises(DuplicateEntry):
        await stream.add(reading(1), entry_id="100-0")
    latest = await stream.latest()
    assert latest is not None and latest[0] == "100-0" and latest[1].ic == 1.0


async def test_follow_resumes_after_redis_restart(redis_server: RedisServer) -> None:
    stream = ReadingStream(await connect(redis_server.url), "t")
    await stream.add(reading(0))
    seen: list[float | None] = []

    async def consume() -> None:
        async for _id, r in stream.follow("0-0"):
            seen.append(r.ic)
            if len(seen) == 3:
                return

    task = asyncio.create_task(consume())
    await stream.add(reading(1))
    await asyncio.to_thread(redis_server.restart)
    writer = ReadingStream(await connect(redis_server.url), "t")
    await writer.add(reading(2))
    await asyncio.wait_for(task, 30)
    assert seen == [0.0, 1.0, 2.0]


async def test_group_pending_and_claim(redis_server: RedisServer) -> None:
    stream = ReadingStream(await connect(redis_server.url), "t")
    a = GroupReader(stream, "g", "a")
    b = GroupReader(stream, "g", "b")
    await a.ensure_group()
    for n in range(3):
        await stream.add(reading(n))
    got = await a.new(count=10, block_ms=100)
    assert [r.ic for _, r in got] == [0.0, 1.0, 2.0]
    await a.ack(got[0][0])
    assert [r.ic for _, r in await a.pending_mine()] == [1.0, 2.0]
    claimed = await b.claim_idle(min_idle_ms=0)
    assert [r.ic for _, r in claimed] == [1.0, 2.0]
    assert await b.new(block_ms=100) == []


async def test_cancelled_follower_stops(redis_server: RedisServer) -> None:
    stream = ReadingStream(await connect(redis_server.url), "t")

    async def consume() -> None:
        async for _ in stream.follow():
            pass

    task = asyncio.create_task(consume())
    for _ in range(3):  # let it enter the blocking XREAD
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


async def test_follow_batches_hands_over_what_one_read_returns(redis_server: RedisServer) -> None:
    stream = ReadingStream(await connect(redis_server.url), "t")
    for n in range(5):
        await stream.add(reading(n))
    batches = stream.follow_batches("0-0", count=3)
    first = await asyncio.wait_for(anext(batches), 5)
    second = await asyncio.wait_for(anext(batches), 5)
    assert [[r.ic for _, r in batch] for batch in (first, second)] == [[0, 1, 2], [3, 4]]
    await batches.aclose()


@pytest.mark.parametrize("protocol", [2, 3])
async def test_group_reads_raw_replies_of_either_protocol(
    redis_server: RedisServer, protocol: int
) -> None:
    """`ConsumerGroup` parses XREADGROUP's reply itself (RESP2 list or RESP3 map, each entry's
    fields a flat list): readings decode, an entry without a `reading` field or with bad JSON
    is acknowledged and skipped, an entry with more fields still decodes."""
    redis = Redis.from_url(redis_server.url, protocol=protocol)
    stream = ReadingStream(redis, f"raw{protocol}")
    group = GroupReader(stream, "g", "a")
    await group.ensure_group()
    await stream.add(reading(1))
    await redis.xadd(stream.key, {"other": "x"})  # no `reading`
    await redis.xadd(stream.key, {"reading": b"{not json"})
    await redis.xadd(stream.key, {"source": "test", "reading": encode_reading(reading(4))})
    got = await group.new(count=10, block_ms=100)
    assert [r.ic for _, r in got] == [1.0, 4.0]
    pending = await redis.xpending(stream.key, "g")
    assert pending["pending"] == 2  # only the readings: the bad entries were acknowledged
    assert await group.new(count=10, block_ms=10) == []
    await redis.aclose()


def test_field_value_of_each_reply_shape() -> None:
    assert field_value({b"reading": b"1"}, b"reading") == b"1"
    assert field_value([b"reading", b"1"], b"reading") == b"1"
    assert field_value([b"a", b"0", b"reading", b"1"], b"reading") == b"1"
    assert field_value([b"a", b"0"], b"reading") is None
    assert field_value(None, b"reading") is None  # an entry deleted while pending
