"""Heavy reads go through the read gate and Redis calls of a request time out: with Redis
frozen (SIGSTOP of the real redis-server), queued history requests hold up neither `/meter`
nor anything else, one past the waiting line is refused at once with 503 and Retry-After, and
history, telegram and replays answer 503 `redis_unavailable` within HANPORT_REST_REDIS_TIMEOUT
instead of for as long as Redis stays frozen."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client import REGISTRY

from services.rest import read_gate
from services.rest.read_gate import Busy, ReadGate
from shared.reading import encode_reading
from shared.stream import READING_FIELD
from tests.readings import simulated_readings
from tests.rest.conftest import TIMEOUT, RestFactory
from tests.servers import RedisServer


@contextlib.contextmanager
def frozen(redis_server: RedisServer) -> Iterator[None]:
    """redis-server stopped (SIGSTOP): connections open, nothing answers; thawed after."""
    assert redis_server.proc is not None
    redis_server.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)


def gauge(name: str) -> float:
    value = REGISTRY.get_sample_value(name)
    return 0.0 if value is None else value


async def until(check: Callable[[], bool], what: str) -> None:
    """Wait until `check()` holds: polled, as nothing signals a gauge's change; fails with
    `what` after TIMEOUT."""
    try:
        async with asyncio.timeout(TIMEOUT):
            while not check():  # noqa: ASYNC110 - no event to await
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not reached within {TIMEOUT} s: {what}") from None


async def test_queued_history_leaves_meter_answering_and_overflow_gets_503(
    rest_factory: RestFactory, redis_server: RedisServer
) -> None:
    rest = await rest_factory(
        rest_read_concurrency=1, rest_read_queue=2, rest_redis_timeout=TIMEOUT * 2
    )
    for _ in range(3):
        await rest.add()
    expected = (await rest.client.get("/meter/history")).content
    running, waiting = gauge("hanport_rest_heavy_reads"), gauge("hanport_rest_heavy_reads_waiting")
    with frozen(redis_server):
        queued = [asyncio.create_task(rest.client.get("/meter/history")) for _ in range(3)]
        await until(
            lambda: (
                gauge("hanport_rest_heavy_reads") == running + 1
                and gauge("hanport_rest_heavy_reads_waiting") == waiting + 2
            ),
            "one history read running, two waiting",
        )
        refused = await rest.client.get("/meter/history", timeout=TIMEOUT)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "2"
        assert refused.json()["error"] == "busy"
        assert "retry in 2 s" in refused.json()["message"]
        replay = await rest.client.get("/events", headers={"Last-Event-ID": "0-1"}, timeout=TIMEOUT)
        assert replay.status_code == 503 and replay.json()["error"] == "busy"
        # /meter is served from memory: 50 answers while three history reads are stuck.
        for _ in range(50):
            meter = await rest.client.get("/meter", timeout=TIMEOUT)
            assert meter.status_code == 200
        assert not any(task.done() for task in queued)
    answers = await asyncio.wait_for(asyncio.gather(*queued), TIMEOUT * 3)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(a.content == expected for a in answers)


async def test_history_telegram_and_replay_answer_503_while_redis_is_frozen(
    rest_factory: RestFactory, redis_server: RedisServer
) -> None:
    rest = await rest_factory(rest_redis_timeout=1.0)
    first = await rest.add()
    with frozen(redis_server):
        # Each within a few seconds (the client gives up after TIMEOUT), not for the freeze.
        fast = httpx.Timeout(TIMEOUT / 2)
        for path, headers in (
            ("/meter/history", {}),
            ("/meter/telegram", {}),
            ("/events", {"Last-Event-ID": first}),
        ):
            answer = await rest.client.get(path, headers=headers, timeout=fast)
            assert answer.status_code == 503, path
            body = answer.json()
            assert body["error"] == "redis_unavailable", path
            assert "retry shortly" in body["message"], path
        assert (await rest.client.get("/meter", timeout=fast)).status_code == 200
    answer = await rest.client.get("/meter/history")  # thawed: answers at once again
    assert answer.status_code == 200
    assert [r["id"] for r in answer.json()["readings"]] == [first]


async def test_a_client_that_reads_nothing_loses_its_turn(
    rest_factory: RestFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_gate, "SEND_WAIT", 0.5)
    rest = await rest_factory(rest_read_concurrency=1, rest_read_queue=1)
    pipe = rest.redis.pipeline(transaction=False)
    for reading in simulated_readings(10_000, start_ms=1_764_000_000_000):
        pipe.xadd(rest.settings.stream, {READING_FIELD: encode_reading(reading)})
    await pipe.execute()
    running = gauge("hanport_rest_heavy_reads")
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # fills at once
    port = int(rest.url.rsplit(":", 1)[1])
    stalled.connect(("127.0.0.1", port))
    try:
        stalled.sendall(b"GET /meter/history?limit=10000 HTTP/1.1\r\nHost: x\r\n\r\n")
        await until(lambda: gauge("hanport_rest_heavy_reads") == running + 1, "stalled read")
        # Waits for the only turn, which the stalled reader loses after SEND_WAIT.
        answer = await rest.client.get("/meter/history", params={"limit": 5})
        assert answer.status_code == 200 and len(answer.json()["readings"]) == 5
        stalled.setblocking(False)
        loop = asyncio.get_running_loop()
        received = b""
        async with asyncio.timeout(TIMEOUT):
            while chunk := await loop.sock_recv(stalled, 65536):
                received += chunk
        assert received.startswith(b"HTTP/1.1 200")
        assert not received.endswith(b"0\r\n\r\n")  # cut, not a shorter valid answer
    finally:
        stalled.close()


async def test_gate_refuses_past_the_line_and_frees_slots() -> None:
    gate = ReadGate(concurrent=1, queued=1)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.slot("history"):
            entered.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.wait_for(entered.wait(), TIMEOUT)
    waiter = asyncio.create_task(hold())
    await until(lambda: gate.waiting == 1, "one read waiting")
    try:
        async with gate.slot("history"):
            raise AssertionError("a third read got in")
    except Busy:
        pass
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, waiter), TIMEOUT)
    async with asyncio.timeout(TIMEOUT), gate.slot("history"):
        assert gate.waiting == 0
