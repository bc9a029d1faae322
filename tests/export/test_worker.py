"""The worker's hand-over from its reader to its writer: a batch made ready is written at once,
before the reader makes more (pure asyncio, no server: the worker is never started)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from services.export.sinks.entries import Entries
from services.export.sinks.influx import InfluxSink
from services.export.worker import Batch, DeadLetters, SinkWorker

from .support import BOX


async def test_a_batch_made_ready_is_written_without_a_turn_of_the_event_loop() -> None:
    """The store waits for the next batch: a turn of the loop first would let the reader make a
    chunk of the batch after it (about 1 ms) before the write starts."""
    redis = Redis()  # (never connected: nothing here talks to Redis)
    sink = InfluxSink("http://127.0.0.1:9", BOX)
    worker = SinkWorker(redis, "hanport:readings", sink, "host", DeadLetters(redis))
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
