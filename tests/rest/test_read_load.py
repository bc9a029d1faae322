"""Heavy reads bounded in the real REST process: 20 concurrent `/meter/history?limit=10000`
and 20 `/events` clients resuming from the start of a 10,000-reading stream. Every answer is
complete and exact, `/meter` keeps answering throughout, and the process's peak memory
(VmHWM in /proc/<pid>/status) grows by less than MEMORY_BOUND_MB.

Measured on this tree's parent (whole answers in the event loop, no gate): history +139 MB
(72 -> 211 MB), replays +71 MB (72 -> 143 MB); with the gate and pages, +8 and +12 MB."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from tests.rest.process import STREAM, RestProcess, fill_stream, rest_process
from tests.rest.test_history_stream import one_answer
from tests.servers import RedisServer

READINGS = 10_000
CLIENTS = 20
MEMORY_BOUND_MB = 30
TIMEOUT = 60.0
METER_TIMEOUT = 5.0


async def meter_answers_while(rest: RestProcess, busy: asyncio.Future[Any]) -> int:
    """GET /meter (each within METER_TIMEOUT) until `busy` is done: how many answered 200."""
    answered = 0
    async with httpx.AsyncClient(base_url=rest.url, timeout=METER_TIMEOUT) as client:
        while not busy.done():
            answer = await client.get("/meter")
            assert answer.status_code == 200
            answered += 1
    return answered


def growth_mb(rest: RestProcess, before_kb: int) -> float:
    return (rest.status_kb("VmHWM") - before_kb) / 1024


async def test_concurrent_large_histories_stay_within_memory(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    fill_stream(redis_server, READINGS)
    redis = Redis.from_url(redis_server.url)
    expected = await one_answer(redis, STREAM, "-", "+", READINGS)
    await redis.aclose()
    with rest_process(redis_server, tmp_path / "rest.log") as rest:
        limits = httpx.Limits(max_connections=CLIENTS)
        async with httpx.AsyncClient(base_url=rest.url, timeout=TIMEOUT, limits=limits) as c:
            assert (await c.get("/meter")).status_code == 200
            before = rest.status_kb("VmRSS")
            histories = asyncio.gather(
                *(c.get("/meter/history", params={"limit": READINGS}) for _ in range(CLIENTS))
            )
            meter = await meter_answers_while(rest, histories)
            answers = await histories
        assert [a.status_code for a in answers] == [200] * CLIENTS
        assert all(a.content == expected for a in answers)
        assert meter >= CLIENTS  # /meter answered on and on while the histories were read
        assert growth_mb(rest, before) < MEMORY_BOUND_MB


async def replay(rest: RestProcess, last_id: str) -> list[str]:
    """An /events client resuming from the start: the ids it gets up to `last_id`."""
    ids: list[str] = []
    async with (
        httpx.AsyncClient(base_url=rest.url, timeout=TIMEOUT) as client,
        client.stream("GET", "/events", headers={"Last-Event-ID": "0-1"}) as events,
    ):
        assert events.status_code == 200
        async for line in events.aiter_lines():
            if line.startswith("id: "):
                ids.append(line[4:])
                if ids[-1] == last_id:
                    return ids
    return ids


async def test_concurrent_replays_stay_within_memory(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    ids = fill_stream(redis_server, READINGS)
    with rest_process(redis_server, tmp_path / "rest.log") as rest:
        async with httpx.AsyncClient(base_url=rest.url, timeout=TIMEOUT) as client:
            assert (await client.get("/meter")).status_code == 200
        before = rest.status_kb("VmRSS")
        replays = asyncio.gather(*(replay(rest, ids[-1]) for _ in range(CLIENTS)))
        meter = await meter_answers_while(rest, replays)
        received = await asyncio.wait_for(replays, TIMEOUT)
        assert all(got == ids for got in received)  # every reading, once, in order
        assert meter >= CLIENTS
        assert growth_mb(rest, before) < MEMORY_BOUND_MB
