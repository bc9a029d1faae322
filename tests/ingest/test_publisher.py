"""The publisher's batches against a real Redis: a queue longer than one batch goes out in order,
once; from an entry Redis refuses on, a batch stays queued with its ids (nothing after it stored)
and is completed on retry without doubling what was stored."""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import REGISTRY
from redis.asyncio import Redis

from services.ingest.publisher import PIPELINE, Publisher
from shared.stream import ReadingStream
from tests.ingest.test_service import WAIT, until, xrange
from tests.readings import simulated_readings
from tests.servers import RedisServer


def published_total() -> float:
    return REGISTRY.get_sample_value("hanport_ingest_published_total") or 0.0


async def test_refused_batch_is_retried_without_doubles(redis_server: RedisServer) -> None:
    redis = Redis.from_url(redis_server.url)
    publisher = Publisher(redis_server.url, "p:readings", "p:raw")
    readings = simulated_readings(PIPELINE + 51)  # more than one round trip's worth
    publisher.put(readings[0], b"/raw 0", "ok", readings[0].received)
    task = asyncio.create_task(publisher.run())
    try:
        assert await publisher.drain(WAIT)  # connected
        await redis.delete("p:raw")
        await redis.set("p:raw", "not a stream")  # every raw XADD fails with WRONGTYPE
        before = published_total()
        for n, reading in enumerate(readings[1:], 1):
            publisher.put(reading, b"/raw %d" % n, "ok", reading.received)
            if n == 10:
                publisher.put(None, b"/bad", "crc_error", reading.received)

        async def refused() -> bool:  # reading 1 stored, then its raw telegram refused
            return int(await redis.xlen("p:readings")) >= 2

        await until(refused, "the first refusal")
        # Nothing counts as published while its raw telegram was refused, and nothing after
        # it is stored before it: it all stays queued, in order, with its ids.
        assert publisher.published == 1 and len(publisher.queue) == len(readings)
        assert int(await redis.xlen("p:readings")) == 2
        assert published_total() == before
        await redis.delete("p:raw")
        assert await publisher.drain(WAIT)
        stored = await ReadingStream(redis, "p:readings").range()
        assert [r for _id, r in stored] == readings  # every reading once, in order
        raw = await xrange(redis, "p:raw")
        assert [fields[b"raw"] for _id, fields in raw] == [
            *(b"/raw %d" % n for n in range(1, 11)),
            b"/bad",
            *(b"/raw %d" % n for n in range(11, len(readings))),
        ]
        ids = [i.decode() for i, _f in raw]
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
        assert {i for i, _r in stored[1:]} <= set(ids)  # a reading and its telegram: one id
        assert publisher.published == len(readings)
        assert published_total() == before + len(readings) - 1
        assert publisher.queued_bytes == 0 and publisher.dropped == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()
