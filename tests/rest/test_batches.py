"""Readings arriving in bursts (many per XREAD): every one still reaches every SSE client, in
order, and /meter serves the newest; with no client connected only the newest is encoded."""

from __future__ import annotations

import asyncio
import json
import time

import msgspec

from services.rest.state import Snapshot, State
from shared.reading import Reading, cozify_message, encode_reading
from tests.rest.conftest import TIMEOUT, RestUnderTest
from tests.rest.readings import sample_readings
from tests.rest.test_push import sse

BURST = 300  # more than one XREAD's worth


def fresh(n: int) -> list[Reading]:
    now = int(time.time() * 1000)
    return [msgspec.structs.replace(r, received=now, ts=now) for r in sample_readings(n)]


async def burst(rest: RestUnderTest, readings: list[Reading]) -> list[str]:
    """XADD `readings` in one pipelined round trip; returns their ids."""
    base = int(time.time() * 1000)
    ids = [f"{base}-{n}" for n in range(len(readings))]
    pipe = rest.redis.pipeline(transaction=False)
    for entry_id, reading in zip(ids, readings, strict=True):
        pipe.xadd(rest.stream.key, {b"reading": encode_reading(reading)}, id=entry_id)
    await pipe.execute()
    return ids


async def test_a_burst_reaches_every_sse_client_in_order(rest: RestUnderTest) -> None:
    await rest.add()
    readings = [r for _ in range(BURST // 50) for r in fresh(50)]
    async with rest.client.stream("GET", "/events") as response:
        events = sse(response)
        got: list[tuple[str | None, object]] = []
        async with asyncio.timeout(TIMEOUT):
            async for event in events:
                if event.event == "HAN_METER_MESSAGE":
                    break  # the snapshot
            ids = await burst(rest, readings)
            async for event in events:
                if event.event == "HAN_METER_MESSAGE":
                    got.append((event.id, json.loads(event.data)))
                    if len(got) == len(ids):
                        break
    assert [i for i, _m in got] == ids
    assert [m for _i, m in got] == [cozify_message(r) for r in readings]


async def test_a_burst_without_clients_serves_the_newest(rest: RestUnderTest) -> None:
    await rest.add()
    readings = [r for _ in range(BURST // 50) for r in fresh(50)]
    ids = await burst(rest, readings)
    async with asyncio.timeout(TIMEOUT):
        while rest.state.latest is None or rest.state.latest.entry_id != ids[-1]:  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # no client is subscribed: only observable by looking
    answer = await rest.client.get("/meter")
    assert answer.status_code == 200
    assert answer.json() == cozify_message(readings[-1])


def test_publish_batch_encodes_for_clients_only() -> None:
    readings = fresh(3)
    entries = [(f"5-{n}", r) for n, r in enumerate(readings)]
    lonely = State(stale_after=30)
    lonely.publish_batch(entries)
    assert lonely.latest is not None and lonely.latest.entry_id == "5-2"
    assert lonely.latest.body == Snapshot.of("5-2", readings[2]).body
    watched = State(stale_after=30)
    queue = watched.subscribe()
    watched.publish_batch(entries)
    items = [queue.get_nowait() for _ in range(queue.qsize())]
    assert [i.entry_id for i in items if isinstance(i, Snapshot)] == ["5-0", "5-1", "5-2"]
    assert watched.latest is not None and watched.latest.entry_id == "5-2"
    watched.publish_batch([("4-0", readings[0])])  # an older id never replaces the newest
    assert watched.latest.entry_id == "5-2"
