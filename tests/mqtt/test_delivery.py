"""Delivery against a real mosquitto and redis-server: every reading as the `/meter` JSON, in
order, through broker outages, crashes and several replicas."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from services.mqtt import metrics
from services.mqtt.bridge import Bridge
from shared.reading import cozify_message, encode_cozify
from shared.stream import GroupReader, connect
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


def ic_of(payload: bytes) -> int:
    return int(msgspec.json.decode(payload)["ic"]) - 1000


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_every_reading_arrives_as_meter_json(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str, protocol: str
) -> None:
    stream = await writer(redis_server)
    async with (
        Subscriber(mosquitto_server, [DATA]) as sub,
        running_bridge(
            settings(redis_server, mosquitto_server, license_keys, mqtt_protocol=protocol)
        ),
    ):
        for n in range(20):
            await stream.add(reading(n))
        got = await sub.wait_count(DATA, 20)
        await eventually(lambda: no_pending(stream.redis))
    assert [m.payload for m in got] == [encode_cozify(reading(n)) for n in range(20)]
    first = msgspec.json.decode(got[0].payload)
    assert first == msgspec.json.decode(msgspec.json.encode(cozify_message(reading(0))))
    assert first["type"] == "HAN_METER_MESSAGE" and first["p"] == [1500.0, 500.0, 500.0, 500.0]
    assert first["u"] == [230.1, 231.2, 229.9] and first["ric"] is None
    assert all(m.qos == 1 and not m.retain for m in got)
    assert await pending_count(stream.redis) == 0


def first_occurrences(payloads: list[bytes]) -> list[int]:
    """Reading numbers in the order they first arrived (at-least-once may repeat a message
    whose PUBACK was lost with the connection)."""
    seen: list[int] = []
    for payload in payloads:
        n = ic_of(payload)
        if n not in seen:
            seen.append(n)
    return seen


async def test_broker_outage_loses_nothing_and_keeps_order(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    stream = await writer(redis_server)
    total = 90
    async with (
        Subscriber(mosquitto_server, [DATA], client_id="persistent-sub") as sub,
        running_bridge(settings(redis_server, mosquitto_server, license_keys)),
    ):
        for n in range(10):
            await stream.add(reading(n))
        await sub.wait_count(DATA, 10)
        reconnects = metrics.RECONNECTS._value.get()
        await asyncio.to_thread(mosquitto_server.stop)
        await eventually(lambda: metrics.CONNECTED._value.get() == 0)
        for n in range(10, 70):  # the broker is down for ~3 s: these wait in Redis
            await stream.add(reading(n))
            await asyncio.sleep(0.05)
        assert await pending_count(stream.redis) <= 10  # nothing acknowledged while down
        await eventually(lambda: metrics.BACKLOG._value.get() >= 60)  # pending + undelivered
        assert metrics.BACKLOG_AGE._value.get() > 0
        await asyncio.to_thread(mosquitto_server.start)
        for n in range(70, total):
            await stream.add(reading(n))
            await asyncio.sleep(0.02)
        await sub.wait_for(
            lambda _m: len(set(map(ic_of, (m.payload for m in sub.on(DATA))))) >= total
        )
        await eventually(lambda: no_pending(stream.redis))
    assert first_occurrences([m.payload for m in sub.on(DATA)]) == list(range(total))
    assert metrics.RECONNECTS._value.get() > reconnects


async def test_two_replicas_publish_each_reading_once(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    stream = await writer(redis_server)
    async with (
        Subscriber(mosquitto_server, [DATA]) as sub,
        running_bridge(settings(redis_server, mosquitto_server, license_keys, mqtt_consumer="a")),
        running_bridge(settings(redis_server, mosquitto_server, license_keys, mqtt_consumer="b")),
    ):
        for n in range(100):
            await stream.add(reading(n))
            if n % 10 == 0:
                await asyncio.sleep(0.01)  # let both replicas take turns
        got = await sub.wait_count(DATA, 100)
        await eventually(lambda: no_pending(stream.redis))
        consumers = {
            c["name"].decode(): c for c in await stream.redis.xinfo_consumers(STREAM, "mqtt")
        }
    assert sorted(ic_of(m.payload) for m in got) == list(range(100))
    assert set(consumers) == {"a", "b"}


async def test_dead_replicas_pending_readings_are_taken_over(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    stream = await writer(redis_server)
    for n in range(5):
        await stream.add(reading(n))
    redis = await connect(redis_server.url)
    await redis.xgroup_create(STREAM, "mqtt", "0")
    # a replica that read these and died before the broker confirmed them
    await redis.xreadgroup("mqtt", "dead", {STREAM: ">"}, count=5)
    assert await pending_count(redis) == 5
    async with (
        Subscriber(mosquitto_server, [DATA]) as sub,
        running_bridge(settings(redis_server, mosquitto_server, license_keys, mqtt_claim_idle=0.2)),
    ):
        got = await sub.wait_count(DATA, 5)
        await eventually(lambda: no_pending(redis))
    assert [ic_of(m.payload) for m in got] == [0, 1, 2, 3, 4]


async def test_undecodable_entry_is_skipped_and_counted(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    stream = await writer(redis_server)
    await stream.redis.xadd(STREAM, {b"reading": b"{not json"})
    await stream.add(reading(1))
    from shared.metrics import STREAM_BAD_ENTRIES

    bad = STREAM_BAD_ENTRIES._value.get()
    async with (
        Subscriber(mosquitto_server, [DATA]) as sub,
        running_bridge(settings(redis_server, mosquitto_server, license_keys)),
    ):
        got = await sub.wait_count(DATA, 1)
        await eventually(lambda: no_pending(stream.redis))
    assert [ic_of(m.payload) for m in got] == [1]
    assert STREAM_BAD_ENTRIES._value.get() == bad + 1


async def test_backlog_goes_out_in_order_at_a_bounded_rate_before_new_readings(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    stream = await writer(redis_server)
    for n in range(10):  # an outage's backlog: waiting before the bridge connects
        await stream.add(reading(n))
    config = settings(redis_server, mosquitto_server, license_keys, mqtt_backlog_rate=20)
    arrivals: list[float] = []
    async with (
        Subscriber(mosquitto_server, [DATA]) as sub,
        running_bridge(config),
    ):
        await sub.wait_count(DATA, 1)
        await stream.add(reading(10))  # a new reading while the backlog is going out
        got = await sub.wait_count(DATA, 11)
        arrivals = sub.times[:11]
    assert [ic_of(m.payload) for m in got] == list(range(11))  # backlog first, in order
    # paced: 10 backlog messages at 20/s are sent 9 intervals of 50 ms apart at least (unpaced
    # they arrive within milliseconds); 3 intervals of slack for arrival jitter
    assert arrivals[9] - arrivals[0] >= 6 / 20


async def test_redis_restart_while_publishing_loses_nothing(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    stream = await writer(redis_server)
    async with (
        Subscriber(mosquitto_server, [DATA]) as sub,
        running_bridge(settings(redis_server, mosquitto_server, license_keys)),
    ):
        for n in range(5):
            await stream.add(reading(n))
        await sub.wait_count(DATA, 5)
        await asyncio.to_thread(redis_server.restart)  # append-only file: the stream survives
        stream = await writer(redis_server)
        for n in range(5, 10):
            await stream.add(reading(n))
        await sub.wait_for(
            lambda _m: len(first_occurrences([m.payload for m in sub.on(DATA)])) >= 10
        )
        await eventually(lambda: no_pending(stream.redis))
    assert first_occurrences([m.payload for m in sub.on(DATA)]) == list(range(10))


def test_hanport_mqtt_command_help(capsys: pytest.CaptureFixture[str]) -> None:
    from services.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["mqtt", "--help"])
    assert stopped.value.code == 0
    assert "HANPORT_MQTT_" in capsys.readouterr().out


async def test_consumers_of_replicas_gone_for_good_are_forgotten(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, license_keys: str
) -> None:
    """Only consumers that hold nothing and have not tried to read for the idle bound go; one
    with a pending entry stays (deleting it would lose the entry), and so do live ones."""
    stream = await writer(redis_server)
    config = settings(redis_server, mosquitto_server, license_keys, mqtt_raw_topic="raw/t")
    bridge = Bridge(config, stream.redis)
    await bridge.group.ensure_group()
    for n in range(2):
        await stream.add(reading(n))
    gone_empty = GroupReader(stream, config.mqtt_group, "container-1f3a")
    gone_pending = GroupReader(stream, config.mqtt_group, "container-77c0")
    [(done, _)] = await gone_empty.new(count=1, block_ms=1)
    await gone_empty.ack(done)
    assert len(await gone_pending.new(count=1, block_ms=1)) == 1  # never acknowledged
    await asyncio.sleep(0.2)  # let both age past the bound below (the bound is time itself)
    for live in (bridge.group, GroupReader(stream, config.mqtt_group, "live-replica")):
        await stream.add(reading(9))
        [(entry_id, _)] = await live.new(count=1, block_ms=1)  # alive: just read one
        await live.ack(entry_id)
    before = metrics.CONSUMERS_FORGOTTEN._value.get()

    assert await bridge.forget_gone_replicas(min_idle_ms=100) == ["container-1f3a"]

    consumers = await stream.redis.xinfo_consumers(STREAM, "mqtt")
    left = {c["name"].decode(): c["pending"] for c in consumers}
    assert left == {"container-77c0": 1, "bridge-a": 0, "live-replica": 0}
    assert metrics.CONSUMERS_FORGOTTEN._value.get() == before + 1
    assert await bridge.forget_gone_replicas(min_idle_ms=3_600_000) == []
    await stream.redis.aclose()
