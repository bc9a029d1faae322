"""The worker's hand-over from its reader to its writer: a batch made ready is written at once,
before the reader makes more (pure asyncio, no server: the worker is never started)."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from services.export.sinks.entries import Entries
from services.export.sinks.influx import InfluxSink
from services.export.worker import Batch, DeadLetters, SinkWorker

from .support import BOX


def unstarted_worker() -> tuple[SinkWorker, Redis]:
    """A worker and its Redis client, never started nor connected: nothing here talks to Redis
    or to the store."""
    redis = Redis()
    sink = InfluxSink("http://127.0.0.1:9", BOX)
    return SinkWorker(redis, "hanport:readings", sink, "host", DeadLetters(redis)), redis


async def test_a_batch_made_ready_is_written_without_a_turn_of_the_event_loop() -> None:
    """The store waits for the next batch: a turn of the loop first would let the reader make a
    chunk of the batch after it (about 1 ms) before the write starts."""
    worker, redis = unstarted_worker()
    queue: asyncio.Queue[Batch] = asyncio.Queue()
    reading = asyncio.create_task(asyncio.sleep(3600))  # the reader, busy reading
    turns: list[str] = []
    loop = asyncio.get_running_loop()

    ready = Batch(Entries(["1-0"]), None)
    queue.put_nowait(ready)
    loop.call_soon(turns.append, "the reader's next chunk")
    assert await worker._next(queue, reading) is ready
    assert turns == []  # taken before anything else ran

    later = Batch(Entries(["2-0"]), None)  # none ready: waits, and the reader runs meanwhile
    loop.call_soon(queue.put_nowait, later)
    assert await worker._next(queue, reading) is later
    assert turns == ["the reader's next chunk"]

    reading.cancel()
    await asyncio.gather(reading, return_exceptions=True)
    await redis.aclose()


async def test_a_failed_confirmation_is_raised_even_with_a_batch_ready() -> None:
    """The last batch's confirmation failed (Redis gone): the worker stops (its supervisor starts
    it again, which writes the unconfirmed batch again) instead of writing the next one."""
    worker, redis = unstarted_worker()

    async def confirm() -> None:
        raise RedisConnectionError("Redis went away")

    worker._settling = asyncio.create_task(confirm())
    await asyncio.wait({worker._settling})
    queue: asyncio.Queue[Batch] = asyncio.Queue()
    queue.put_nowait(Batch(Entries(["1-0"]), None))
    reading = asyncio.create_task(asyncio.sleep(3600))
    with pytest.raises(RedisConnectionError, match="went away"):
        await worker._next(queue, reading)
    assert worker._settling is None and queue.qsize() == 1  # nothing taken
    reading.cancel()
    await asyncio.gather(reading, return_exceptions=True)
    await redis.aclose()
