"""Publishing in batches against a real mosquitto and redis-server: many messages in flight,
confirmations waited for under one timeout, acknowledgements gathered into few XACKs, and still
nothing acknowledged before the broker confirmed it."""

from __future__ import annotations

import asyncio
import signal

import aiomqtt
import msgspec
import pytest

from services.mqtt import metrics
from services.mqtt.confirm import Confirmations
from shared.reading import encode_reading
from shared.stream import READING_FIELD
from tests.servers import MosquittoServer, RedisServer

from .support import (
    SERIAL,
    STREAM,
    Subscriber,
    eventually,
    no_pending,
    pending_count,
    reading,
    running_bridge,
    settings,
    writer,
)

DATA = f"hanport/{SERIAL}/data"


def first_occurrences(sub: Subscriber) -> list[int]:
    seen: list[int] = []
    for message in sub.on(DATA):
        n = int(msgspec.json.decode(message.payload)["ic"]) - 1000
        if n not in seen:
            seen.append(n)
    return seen


def confirmed_readings() -> float:
    return metrics.PUBLISHED.labels("reading")._value.get()


@pytest.mark.parametrize("inflight", [1000, 3], ids=["default-window", "window-of-3"])
async def test_a_burst_goes_out_in_order_and_is_all_acknowledged(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str, inflight: int
) -> None:
    stream = await writer(redis_server)
    config = settings(
        redis_server, mosquitto_server, license_keys, mqtt_backlog_rate=1e6, mqtt_inflight=inflight
    )
    async with (
        Subscriber(mosquitto_server, [DATA]) as sub,
        running_bridge(config),
    ):
        async with stream.redis.pipeline(transaction=False) as pipe:
            for n in range(500):
                pipe.xadd(STREAM, {READING_FIELD: encode_reading(reading(n))})
            await pipe.execute()
        got = await sub.wait_count(DATA, 500)
        await eventually(lambda: no_pending(stream.redis))
    assert [int(msgspec.json.decode(m.payload)["ic"]) - 1000 for m in got] == list(range(500))


async def test_readings_arriving_one_by_one_are_acknowledged_together(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    stream = await writer(redis_server)
    async with (
        Subscriber(mosquitto_server, [DATA]) as sub,
        running_bridge(settings(redis_server, mosquitto_server, license_keys)),
    ):
        await eventually(lambda: metrics.CONNECTED._value.get() == 1)
        await stream.redis.config_resetstat()
        for n in range(20):
            await stream.add(reading(n))
        got = await sub.wait_count(DATA, 20)
        await eventually(lambda: no_pending(stream.redis))
        stats = await stream.redis.info("commandstats")
    assert [int(msgspec.json.decode(m.payload)["ic"]) - 1000 for m in got] == list(range(20))
    assert stats["cmdstat_xack"]["calls"] < 20  # not one XACK per reading


async def test_confirmed_readings_are_acknowledged_when_the_bridge_stops(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    stream = await writer(redis_server)
    before = confirmed_readings()
    async with running_bridge(settings(redis_server, mosquitto_server, license_keys)):
        for n in range(3):
            await stream.add(reading(n))
        await eventually(lambda: confirmed_readings() >= before + 3)
    assert await pending_count(stream.redis) == 0  # at once, not after the acknowledgement delay


async def test_a_broker_that_stops_confirming_times_out_and_nothing_is_lost(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    stream = await writer(redis_server)
    failed = metrics.FAILED.labels("reading")._value.get()
    config = settings(
        redis_server, mosquitto_server, license_keys, mqtt_publish_timeout=0.5, mqtt_keepalive=5
    )
    async with (
        Subscriber(mosquitto_server, [DATA], client_id="batching-sub") as sub,
        running_bridge(config),
    ):
        for n in range(5):
            await stream.add(reading(n))
        await sub.wait_count(DATA, 5)
        assert mosquitto_server.proc is not None
        mosquitto_server.proc.send_signal(signal.SIGSTOP)  # the broker stops answering
        try:
            for n in range(5, 10):
                await stream.add(reading(n))
            # no PUBACK within the publish timeout: counted as failed, the session starts again
            await eventually(lambda: metrics.FAILED.labels("reading")._value.get() > failed)
            # none of the five is acknowledged: each is pending or not yet delivered
            group = (await stream.redis.xinfo_groups(STREAM))[0]
            assert group["pending"] + group["lag"] >= 5
        finally:
            mosquitto_server.proc.send_signal(signal.SIGCONT)
        for n in range(10, 15):
            await stream.add(reading(n))
            await asyncio.sleep(0.01)
        await sub.wait_for(lambda _m: len(first_occurrences(sub)) >= 15)
        await eventually(lambda: no_pending(stream.redis))
    assert first_occurrences(sub) == list(range(15))


async def test_the_window_bounds_unconfirmed_messages(mosquitto_server: MosquittoServer) -> None:
    """Confirmations keeps at most `window` messages awaiting PUBACK (paho's window is off) and
    every message still arrives, in order."""
    topic = "hanport/window/test"
    async with (
        Subscriber(mosquitto_server, [topic]) as sub,
        aiomqtt.Client("127.0.0.1", mosquitto_server.port, max_inflight_messages=0) as client,
    ):
        out = Confirmations(client, window=5)
        peak, futures = 0, []
        for n in range(200):
            if out.full():
                await asyncio.wait_for(out.until_room(), 5)
            future = out.publish(topic, b"%d" % n, 1, False)
            assert future is not None  # QoS 1: confirmed later, by PUBACK
            futures.append(future)
            peak = max(peak, len(out.waiting))
        await asyncio.wait_for(asyncio.gather(*futures), 10)
        got = await sub.wait_count(topic, 200)
    assert peak == 5 and out.waiting == {}
    assert [int(m.payload) for m in got] == list(range(200))
