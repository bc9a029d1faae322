"""Push streams: `/events` (SSE, resumable with Last-Event-ID) and `/ws` (snapshot, then every
reading), and Redis outages (served from memory, then caught up)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import websockets

from shared.reading import cozify_message
from tests.rest.conftest import TIMEOUT, RestFactory, RestUnderTest
from tests.servers import RedisServer


@dataclass
class Event:
    event: str
    data: str
    id: str | None


async def sse(response: httpx.Response) -> AsyncIterator[Event]:
    """A minimal text/event-stream parser (what a browser's EventSource does)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield Event(fields.get("event", "message"), fields["data"], fields.get("id"))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value


async def readings(response: httpx.Response, n: int) -> list[Event]:
    out: list[Event] = []
    async with asyncio.timeout(TIMEOUT):
        async for event in sse(response):
            if event.event == "HAN_METER_MESSAGE":
                out.append(event)
                if len(out) == n:
                    return out
    raise AssertionError(f"stream ended after {len(out)} of {n} readings")


async def test_events_send_the_latest_then_every_reading_with_stream_ids(
    rest: RestUnderTest,
) -> None:
    first = await rest.add()
    async with rest.client.stream("GET", "/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        collected = asyncio.create_task(readings(response, 3))
        await asyncio.sleep(0)  # noqa: ASYNC110 - let the reader start; the snapshot is queued anyway
        ids = [first, await rest.add(), await rest.add()]
        events = await collected
    assert [e.id for e in events] == ids
    stored = {i: cozify_message(r) for i, r in await rest.stream.range()}
    for event in events:
        assert event.id is not None
        assert json.loads(event.data) == stored[event.id]


async def test_events_resume_with_last_event_id_gives_exactly_the_missed_ones(
    rest: RestUnderTest,
) -> None:
    await rest.add()
    async with rest.client.stream("GET", "/events") as response:
        seen = (await readings(response, 1))[0]
    # disconnected: these are missed
    missed = [await rest.add() for _ in range(4)]
    async with rest.client.stream(
        "GET", "/events", headers={"Last-Event-ID": seen.id or ""}
    ) as response:
        pending = asyncio.create_task(readings(response, 5))
        await asyncio.sleep(0)  # noqa: ASYNC110
        live = await rest.add()
        events = await pending
    assert [e.id for e in events] == [*missed, live]  # no gap, no repeat
    # the query parameter does the same (for clients that cannot set headers)
    async with rest.client.stream("GET", f"/events?last_event_id={missed[1]}") as response:
        events = await readings(response, 3)
    assert [e.id for e in events] == [missed[2], missed[3], live]


async def test_events_status_says_when_redis_is_down(
    rest: RestUnderTest, redis_server: RedisServer
) -> None:
    await rest.add()
    async with rest.client.stream("GET", "/events") as response:
        statuses: list[dict[str, object]] = []
        async with asyncio.timeout(TIMEOUT):
            async for event in sse(response):
                if event.event != "HAN_STATUS":
                    continue
                status = json.loads(event.data)
                statuses.append(status)
                if len(statuses) == 1:
                    assert status["redis"] is True and status["stale"] is False
                    redis_server.stop()
                elif status["redis"] is False:
                    break
    assert statuses[-1]["type"] == "HAN_STATUS"
    # served from memory while Redis is away
    response = await rest.client.get("/meter")
    assert response.status_code == 200
    assert (await rest.client.get("/readyz")).status_code == 503


async def test_redis_outage_serves_from_memory_and_catches_up(
    rest: RestUnderTest, redis_server
) -> None:
    before = await rest.add()
    body = (await rest.client.get("/meter")).json()
    redis_server.stop()
    assert (await rest.client.get("/meter")).json() == body
    assert (await rest.client.get("/meter/history")).status_code == 503
    assert (await rest.client.get("/meter/history")).json()["error"] == "redis_unavailable"
    redis_server.start()
    await rest.redis.connection_pool.disconnect()  # the test's own client: drop dead sockets
    after = await rest.add()  # waits until this replica has followed it
    assert after != before
    stored = {i: cozify_message(r) for i, r in await rest.stream.range()}
    assert (await rest.client.get("/meter")).json() == stored[after]
    assert (await rest.client.get("/readyz")).status_code == 200


async def test_websocket_snapshot_then_every_reading(rest: RestUnderTest) -> None:
    first = await rest.add()
    url = rest.url.replace("http://", "ws://") + "/ws"
    async with websockets.connect(url, open_timeout=TIMEOUT) as socket:
        snapshot = json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))
        ids = [await rest.add(), await rest.add()]
        frames = [json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT)) for _ in ids]
    stored = {i: cozify_message(r) for i, r in await rest.stream.range()}
    assert snapshot == stored[first]
    assert frames == [stored[i] for i in ids]


async def test_websocket_refused_without_license(rest_factory: RestFactory) -> None:
    rest = await rest_factory(use="commercial", rest_startup_wait=0.2)
    url = rest.url.replace("http://", "ws://") + "/ws"
    try:
        async with websockets.connect(url, open_timeout=TIMEOUT):
            raise AssertionError("connected without a license")
    except websockets.InvalidStatus as refused:
        assert refused.response.status_code == 403
        assert json.loads(refused.response.body or b"{}")["error"] == "unlicensed"


async def test_sse_client_gets_every_reading_added_around_an_outage(
    rest: RestUnderTest, redis_server: RedisServer
) -> None:
    await rest.add()
    async with rest.client.stream("GET", "/events") as response:
        events = sse(response)
        async with asyncio.timeout(TIMEOUT):
            async for event in events:
                if event.event == "HAN_METER_MESSAGE":
                    break  # the snapshot
            redis_server.stop()
            redis_server.start()
            await rest.redis.connection_pool.disconnect()
            # added while the replica is still reconnecting: it must catch up on all of them
            added = []
            for reading in [rest.next_reading() for _ in range(3)]:
                added.append(await rest.stream.add(reading))
            got: list[str] = []
            async for event in events:
                if event.event == "HAN_METER_MESSAGE" and event.id:
                    got.append(event.id)
                    if len(got) == len(added):
                        break
    assert got == added


async def test_replicas_give_the_same_answers(rest_factory: RestFactory) -> None:
    one, two, three = [await rest_factory() for _ in range(3)]
    entry_id = await one.add()
    for replica in (two, three):
        queue = replica.state.subscribe()
        if replica.state.latest is None or replica.state.latest.entry_id != entry_id:
            await replica.wait_for(queue, entry_id)
        replica.state.unsubscribe(queue)
    answers = {(await r.client.get("/meter")).content for r in (one, two, three)}
    assert len(answers) == 1
