"""Crash safety: `python -m services.mqtt` is SIGKILLed while the broker holds its PUBACKs (so
entries are read but unacknowledged); restarted, it publishes them and nothing is missing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import msgspec

from tests.licensing_helpers import grant
from tests.servers import MosquittoServer, RedisServer

from .support import (
    SERIAL,
    Subscriber,
    eventually,
    no_pending,
    pending_count,
    reading,
    writer,
)

DATA = f"hanport/{SERIAL}/data"
AVAILABILITY = f"hanport/{SERIAL}/availability"
ROOT = Path(__file__).resolve().parents[2]


def start_bridge(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.mqtt"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def numbers(sub: Subscriber) -> list[int]:
    """Reading numbers in order of first arrival (a message whose PUBACK died with the bridge
    may come twice: at least once)."""
    seen: list[int] = []
    for message in sub.on(DATA):
        n = int(msgspec.json.decode(message.payload)["ic"]) - 1000
        if n not in seen:
            seen.append(n)
    return seen


async def test_sigkill_with_unacknowledged_entries_loses_nothing(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, tmp_path: Path
) -> None:
    env = await grant(redis_server.url, tmp_path, SERIAL, ["mqtt"])
    env |= {
        "HANPORT_MQTT_URL": mosquitto_server.url,
        "HANPORT_MQTT_CONSUMER": "crashy",
        "HANPORT_METRICS_PORT": "0",
        "HANPORT_LOG_FORMAT": "text",
        "HANPORT_LOG_LEVEL": "DEBUG",
        "HANPORT_MQTT_DISCOVERY": "false",
        "HANPORT_MQTT_KEEPALIVE": "5",
    }
    log = tmp_path / "bridge.log"
    stream = await writer(redis_server)
    async with Subscriber(mosquitto_server, [DATA, AVAILABILITY], client_id="crash-sub") as sub:
        bridge = start_bridge(env, log)
        try:
            for n in range(5):
                await stream.add(reading(n))
            await sub.wait_count(DATA, 5)
            assert mosquitto_server.proc is not None
            mosquitto_server.proc.send_signal(signal.SIGSTOP)  # the broker stops answering
            try:
                for n in range(5, 15):
                    await stream.add(reading(n))
                await eventually(lambda: pending_count(stream.redis))  # read, not confirmed
                bridge.kill()
                bridge.wait(10)
            finally:
                mosquitto_server.proc.send_signal(signal.SIGCONT)
            unconfirmed = await pending_count(stream.redis)
            assert unconfirmed > 0
            await sub.wait_for(lambda _m: sub.on(AVAILABILITY)[-1].payload == b"offline")  # will

            bridge = start_bridge(env, log)
            for n in range(15, 20):
                await stream.add(reading(n))
            await sub.wait_for(lambda _m: len(numbers(sub)) >= 20)
            await eventually(lambda: no_pending(stream.redis))
            assert numbers(sub) == list(range(20))
            assert sub.on(AVAILABILITY)[-1].payload == b"online"
        finally:
            bridge.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(bridge.wait, 20)
        await sub.wait_for(lambda _m: sub.on(AVAILABILITY)[-1].payload == b"offline")
    assert code == 0, log.read_text()
