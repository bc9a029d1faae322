"""The license gate with real signed licenses: held off without consuming until a license
arrives, publishing within seconds of it, stopped (offline) within 5 s of losing it."""

from __future__ import annotations

from pathlib import Path

from services.mqtt import metrics
from shared.reading import encode_cozify
from tests.licensing_helpers import grant, make_keys, revoke
from tests.servers import MosquittoServer, RedisServer

from .support import (
    SERIAL,
    STREAM,
    Subscriber,
    eventually,
    reading,
    running_bridge,
    settings,
    writer,
)

DATA = f"hanport/{SERIAL}/data"
AVAILABILITY = f"hanport/{SERIAL}/availability"


async def lag(stream_redis: object) -> int:
    groups = await stream_redis.xinfo_groups(STREAM)  # type: ignore[attr-defined]
    return int(groups[0]["lag"]) if groups else -1


async def lag_is(stream_redis: object, n: int) -> bool:
    return await lag(stream_redis) == n


async def test_held_off_until_licensed_then_stops_when_revoked(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, tmp_path: Path
) -> None:
    _private, public = make_keys(tmp_path)  # trusted key, but no license yet
    stream = await writer(redis_server)
    config = settings(redis_server, mosquitto_server, str(public))
    async with Subscriber(mosquitto_server, [DATA, AVAILABILITY]) as sub, running_bridge(config):
        for n in range(3):
            await stream.add(reading(n))
        await eventually(lambda: metrics.LICENSED._value.get() == 0)
        await eventually(lambda: lag_is(stream.redis, 3))  # the group exists, nothing consumed
        assert metrics.CONNECTED._value.get() == 0
        assert sub.on(DATA) == []

        await grant(redis_server.url, tmp_path, SERIAL, ["mqtt"])
        got = await sub.wait_count(DATA, 3, within=10)
        assert [m.payload for m in got] == [encode_cozify(reading(n)) for n in range(3)]
        assert metrics.LICENSED._value.get() == 1
        assert sub.on(AVAILABILITY)[-1].payload == b"online"

        await revoke(redis_server.url, ["mqtt"])
        await sub.wait_for(lambda _m: sub.on(AVAILABILITY)[-1].payload == b"offline", within=5)
        assert metrics.LICENSED._value.get() == 0
        await stream.add(reading(3))  # no longer consumed
        assert await lag(stream.redis) == 1
