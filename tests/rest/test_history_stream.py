"""`/meter/history` streamed page by page answers byte for byte what the whole answer encoded in
one go did, across page boundaries, limits, windows and an entry that does not decode."""

from __future__ import annotations

import msgspec
import pytest
from redis.asyncio import Redis

from services.rest.history import bounds, history_chunks
from services.rest.read_gate import PAGE
from shared.reading import cozify_message, encode_reading
from shared.stream import READING_FIELD, ReadingStream, parse_entries
from tests.readings import simulated_readings
from tests.rest.conftest import RestUnderTest

COUNT = 2 * PAGE + 234
START_MS = 1_764_000_000_000


async def one_answer(redis: Redis, key: str, low: str, high: str, limit: int) -> bytes:
    """The answer as it was made before streaming: read `limit` + 1 entries at once, encode
    the whole document."""
    entries = parse_entries(await redis.xrange(key, low, high, count=limit + 1))
    more = len(entries) > limit
    entries = entries[:limit]
    return msgspec.json.encode(
        {
            "type": "HAN_METER_HISTORY",
            "readings": [{"id": i, **cozify_message(r)} for i, r in entries],
            "next_since": entries[-1][0] if entries else None,
            "more": more,
        }
    )


async def fill(redis: Redis, key: str) -> list[str]:
    """COUNT readings, one second apart, with an entry that does not decode in the middle of
    the second page."""
    ids = []
    pipe = redis.pipeline(transaction=False)
    for number, reading in enumerate(simulated_readings(COUNT, start_ms=START_MS)):
        entry_id = f"{reading.received}-0"
        pipe.xadd(key, {READING_FIELD: encode_reading(reading)}, id=entry_id)
        ids.append(entry_id)
        if number == PAGE + 17:
            pipe.xadd(key, {READING_FIELD: b"not json"}, id=f"{reading.received}-1")
    await pipe.execute()
    return ids


@pytest.fixture
async def filled(rest: RestUnderTest) -> tuple[RestUnderTest, list[str]]:
    return rest, await fill(rest.redis, rest.settings.stream)


LIMITS = [1, PAGE - 1, PAGE, PAGE + 1, PAGE + 18, 2 * PAGE, COUNT - 1, COUNT, COUNT + 1, 10000]


@pytest.mark.parametrize("limit", LIMITS)
async def test_streamed_history_equals_the_whole_answer(
    filled: tuple[RestUnderTest, list[str]], limit: int
) -> None:
    rest, _ids = filled
    answer = await rest.client.get("/meter/history", params={"limit": limit})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    expected = await one_answer(rest.redis, rest.settings.stream, "-", "+", limit)
    assert answer.content == expected


async def test_windows_and_resumes_equal_the_whole_answer(
    filled: tuple[RestUnderTest, list[str]],
) -> None:
    rest, ids = filled
    ms = [int(i.split("-")[0]) for i in ids]
    cases: list[dict[str, str | int]] = [
        {"from": ms[PAGE - 3], "to": ms[PAGE + 40], "limit": 10000},
        {"since": ids[PAGE + 17], "limit": 600},  # starts at the entry that does not decode
        {"since": ids[-1]},  # nothing after the newest
        {"from": ms[10], "to": ms[5]},  # an empty window
        {"since": ids[3], "from": ms[700], "limit": 2 * PAGE},
    ]
    for params in cases:
        since = params.get("since")
        low, high = bounds(
            int(params["from"]) if "from" in params else None,
            int(params["to"]) if "to" in params else None,
            str(since) if since is not None else None,
        )
        limit = int(params.get("limit", 100))
        answer = await rest.client.get("/meter/history", params=params)
        assert answer.status_code == 200, params
        expected = await one_answer(rest.redis, rest.settings.stream, low, high, limit)
        assert answer.content == expected, params


@pytest.mark.parametrize("page", [1, 2, 3, 7, 64])
async def test_any_page_size_gives_the_same_bytes(
    filled: tuple[RestUnderTest, list[str]], page: int
) -> None:
    rest, _ids = filled
    stream = ReadingStream(rest.redis, rest.settings.stream)
    for limit in (1, 5, 64, 65, 130, PAGE + 30):
        chunks = [c async for c in history_chunks(stream, "-", "+", limit, 5.0, page=page)]
        assert all(c.count(b'"id":') <= page for c in chunks)  # at most a page per piece
        expected = await one_answer(rest.redis, rest.settings.stream, "-", "+", limit)
        assert b"".join(chunks) == expected, (page, limit)
