"""Ending the bridge process: `python -m services.mqtt` (a real process) exits 0 soon after
SIGTERM while it delivers, and a fatal error (a key it reads holds something other than a
stream) ends it with status 1 instead of leaving it hung with its background tasks."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.licensing_helpers import grant
from tests.servers import MosquittoServer, RedisServer

from .support import SERIAL, STREAM, Subscriber, reading, writer
from .test_crash import AVAILABILITY, DATA, start_bridge

STOPPED_WITHIN_S = 10  # Docker's stop grace period


async def bridge_env(
    redis: RedisServer, mosquitto: MosquittoServer, tmp_path: Path
) -> dict[str, str]:
    env = await grant(redis.url, tmp_path, SERIAL, ["mqtt"])
    return env | {
        "HANPORT_MQTT_URL": mosquitto.url,
        "HANPORT_METRICS_PORT": "0",
        "HANPORT_LOG_FORMAT": "text",
        "HANPORT_MQTT_DISCOVERY": "false",
    }


async def test_sigterm_stops_a_delivering_bridge(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, tmp_path: Path
) -> None:
    env = await bridge_env(redis_server, mosquitto_server, tmp_path)
    log = tmp_path / "bridge.log"
    stream = await writer(redis_server)
    async with Subscriber(mosquitto_server, [DATA, AVAILABILITY], client_id="stop-sub") as sub:
        bridge = start_bridge(env, log)
        try:
            await stream.add(reading(0))
            await sub.wait_count(DATA, 1)
        finally:
            bridge.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(bridge.wait, STOPPED_WITHIN_S)
        await sub.wait_for(lambda _m: sub.on(AVAILABILITY)[-1].payload == b"offline")
    await stream.redis.aclose()
    assert code == 0, log.read_text()


async def test_a_fatal_error_ends_the_process_with_status_1(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, tmp_path: Path
) -> None:
    env = await bridge_env(redis_server, mosquitto_server, tmp_path)
    log = tmp_path / "bridge.log"
    stream = await writer(redis_server)
    async with Subscriber(mosquitto_server, [DATA], client_id="fatal-sub") as sub:
        bridge = start_bridge(env, log)
        try:
            await stream.add(reading(0))
            await sub.wait_count(DATA, 1)  # delivering, with its background tasks running
            await stream.redis.delete(STREAM)
            await stream.redis.set(STREAM, "not a stream")  # e.g. a mistyped HANPORT_STREAM
            code = await asyncio.to_thread(bridge.wait, 30)
        finally:
            if bridge.poll() is None:
                bridge.kill()
                bridge.wait(10)
    await stream.redis.aclose()
    text = log.read_text()
    assert code == 1, text
    assert f"HANPORT_STREAM '{STREAM}'" in text and "holds another kind of value" in text
