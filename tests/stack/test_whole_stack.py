"""The whole stack, started from compose.yaml as local processes against a real redis-server and
mosquitto: one simulated reading reaches REST `/meter`, the SSE stream, an MQTT subscriber and a
Modbus read with the same values; then each service is SIGKILLed in turn and started again: the
others keep serving, the restarted one catches up, and neither the MQTT subscriber nor the SSE
client misses a reading.

The license (MQTT and Modbus need one) is a real signed activation, installed through the
licensing service's own HTTP API with the admin token, as a user would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from pymodbus.client import AsyncModbusTcpClient
from redis.asyncio import Redis

from shared.reading import Reading, cozify_message
from shared.stream import ReadingStream
from tests.licensing_helpers import issue, make_keys
from tests.servers import MosquittoServer, RedisServer
from tests.stack import polling
from tests.stack.compose import resolved_config, service_specs
from tests.stack.processes import READY_PORT, Stack

pytestmark = pytest.mark.slow

SERIAL = "HPSTACK0001"
ADMIN_TOKEN = "stack-test-admin-token"
TOPIC = f"hanport/{SERIAL}/data"
NATIVE_BASE, NATIVE_COUNT = 1000, 70
WAIT = 20.0  # seconds any one expected event may take on a busy 2-core machine


async def until(
    check: Callable[[], Awaitable[Any]], what: str, stack: Stack, within: float = WAIT
) -> Any:
    """Poll `check` (truthy when done) until it succeeds or `within` seconds pass."""
    return await polling.until(check, what, stack.logs, within, every=0.1)


@dataclass
class MqttCollector:
    """A persistent-session QoS 1 subscriber, as Home Assistant would be."""

    url: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    async def run(self) -> None:
        host, port = self.url.removeprefix("mqtt://").split(":")
        while True:
            try:
                async with aiomqtt.Client(
                    host, int(port), identifier="stack-test-subscriber", clean_session=False
                ) as client:
                    await client.subscribe(TOPIC, qos=1)
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        self.messages.append(json.loads(message.payload))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)


@dataclass
class SseCollector:
    """An EventSource-like client: reconnects and resumes with Last-Event-ID."""

    url: str
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    connects: int = 0

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=None)) as client:
            while True:
                headers = {"Last-Event-ID": self.events[-1][0]} if self.events else {}
                try:
                    async with client.stream("GET", self.url, headers=headers) as response:
                        if response.status_code != 200:
                            await asyncio.sleep(0.2)
                            continue
                        self.connects += 1
                        await self._read(response.aiter_lines())
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)

    async def _read(self, lines: AsyncIterator[str]) -> None:
        event_id, kind, data = "", "", ""
        async for line in lines:
            if line == "":
                if kind == "HAN_METER_MESSAGE" and event_id:
                    self.events.append((event_id, json.loads(data)))
                event_id, kind, data = "", "", ""
            elif line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()


def native_values(registers: Sequence[int]) -> dict[str, Any]:
    """The native Modbus map (docs/modbus.md) as a Cozify-like dict."""
    raw = struct.pack(f">{len(registers)}H", *registers)
    (ts,) = struct.unpack_from(">Q", raw, 8)
    ic, ec, ric, rec = struct.unpack_from(">4d", raw, 16)
    floats = struct.unpack_from(">23f", raw, 48)

    def opt(value: float) -> float | None:
        return None if math.isnan(value) else value

    return {
        "ts": ts,
        "ic": opt(ic), "ec": opt(ec), "ric": opt(ric), "rec": opt(rec),
        "p": [opt(v) for v in floats[0:4]], "pi": [opt(v) for v in floats[4:8]],
        "pe": [opt(v) for v in floats[8:12]], "r": [opt(v) for v in floats[12:16]],
        "u": [opt(v) for v in floats[16:19]], "i": [opt(v) for v in floats[19:22]],
    }  # fmt: skip


def as_float32(message: dict[str, Any]) -> dict[str, Any]:
    """A Cozify message with the per-phase values rounded as Modbus float32 registers carry them."""

    def f32(value: float | None) -> float | None:
        return None if value is None else struct.unpack(">f", struct.pack(">f", value))[0]

    out = {k: message[k] for k in ("ts", "ic", "ec", "ric", "rec")}
    for key in ("p", "pi", "pe", "r", "u", "i"):
        out[key] = [f32(v) for v in message[key]]
    return out


@dataclass
class Probe:
    """Clients of every interface of one running stack."""

    stack: Stack
    redis: Redis
    stream: ReadingStream
    http: httpx.AsyncClient
    mqtt: MqttCollector
    sse: SseCollector
    healthchecks: dict[str, list[str]]

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.stack['rest'].port('HANPORT_REST_PORT')}"

    async def meter(self) -> dict[str, Any]:
        response = await self.http.get(f"{self.rest_url}/meter")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def modbus(self) -> dict[str, Any]:
        port = self.stack["modbus"].port("HANPORT_MODBUS_PORT")
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
        try:
            assert await client.connect(), "Modbus port refused the connection"
            result = await client.read_holding_registers(
                NATIVE_BASE, count=NATIVE_COUNT, device_id=1
            )
            assert not result.isError(), f"Modbus read failed: {result}"
            return native_values(result.registers)
        finally:
            client.close()

    async def newest(self) -> tuple[str, Reading]:
        latest = await self.stream.latest()
        assert latest is not None, "the stream is empty"
        return latest

    async def by_ts(self, ts: int) -> tuple[str, Reading]:
        for entry_id, reading in reversed(await self.stream.range(count=None)):
            if reading.ts == ts:
                return entry_id, reading
        raise AssertionError(f"no reading with ts {ts} in the stream")


@pytest.fixture
async def probe(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, tmp_path: Path
) -> AsyncIterator[Probe]:
    private, public = make_keys(tmp_path)
    env_file = (
        f"HANPORT_SERIAL={SERIAL}",
        f"HANPORT_MQTT_URL={mosquitto_server.url}",
        f"HANPORT_ADMIN_TOKEN={ADMIN_TOKEN}",
        f"HANPORT_LICENSE_PUBLIC_KEYS={public}",
    )
    config = resolved_config(tmp_path, env_file)
    specs = service_specs(config)
    healthchecks = {name: config["services"][name]["healthcheck"]["test"] for name in specs}
    stack = Stack.from_specs(specs, redis_server.url, tmp_path / "stack")
    redis = Redis.from_url(redis_server.url)
    mqtt = MqttCollector(mosquitto_server.url)
    tasks = [asyncio.create_task(mqtt.run())]
    try:
        stack.start_all()
        async with httpx.AsyncClient(timeout=5.0) as http:
            license = issue(private, serial=SERIAL, features=["rest", "mqtt", "modbus"])
            port = stack["licensing"].port("HANPORT_LICENSING_PORT")
            response = await http.put(
                f"http://127.0.0.1:{port}/license",
                content=license,
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            assert response.status_code == 201, response.text
            rest = f"http://127.0.0.1:{stack['rest'].port('HANPORT_REST_PORT')}"
            sse = SseCollector(f"{rest}/events")
            tasks.append(asyncio.create_task(sse.run()))
            stream = ReadingStream(redis, "hanport:readings")
            yield Probe(stack, redis, stream, http, mqtt, sse, healthchecks)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        stack.stop_all()
        await redis.aclose()


async def test_one_reading_reaches_every_interface_then_each_service_survives_sigkill(
    probe: Probe,
) -> None:
    stack = probe.stack
    # 0. each service's compose healthcheck command succeeds against it (its port made local)
    for name, service in stack.services.items():
        test = probe.healthchecks[name]
        assert test[:2] == ["CMD", "python"], test
        url = re.sub(r":\d+/", f":{service.port(READY_PORT[name])}/", test[-1])
        check = await asyncio.create_subprocess_exec(
            sys.executable, *test[2:-1], url, stderr=asyncio.subprocess.PIPE
        )
        _, stderr = await asyncio.wait_for(check.communicate(), WAIT)
        assert check.returncode == 0, f"{name} healthcheck failed: {stderr.decode()}"

    # 1. the same reading on REST /meter, SSE, MQTT and Modbus
    seen_rest: dict[int, dict[str, Any]] = {}
    seen_modbus: dict[int, dict[str, Any]] = {}

    async def common_reading() -> int | None:
        rest = await probe.meter()
        seen_rest[rest["ts"]] = rest
        with contextlib.suppress(AssertionError, OSError):
            modbus = await probe.modbus()
            seen_modbus[modbus["ts"]] = modbus
        common = (
            set(seen_rest)
            & set(seen_modbus)
            & {m["ts"] for m in probe.mqtt.messages}
            & {e["ts"] for _, e in probe.sse.events}
        )
        return min(common) if common else None

    ts = await until(common_reading, "one reading seen on REST, SSE, MQTT and Modbus", stack)
    entry_id, reading = await probe.by_ts(ts)
    expected = cozify_message(reading)
    assert seen_rest[ts] == expected
    assert dict(probe.sse.events)[entry_id] == expected
    assert expected in [m for m in probe.mqtt.messages if m["ts"] == ts]
    assert seen_modbus[ts] == as_float32(expected)
    assert expected["p"][0] is not None and expected["u"][0] is not None  # real values
    # the meter's values reach Prometheus (the Grafana dashboard's meter panels)
    port = stack["ingest"].port("HANPORT_METRICS_PORT")
    scraped = (await probe.http.get(f"http://127.0.0.1:{port}/metrics")).text
    # (each series carries the meter's name too: `meter` comes first)
    assert re.search(r'hanport_meter_voltage_volts\{[^}]*phase="l1"', scraped)
    assert re.search(r'hanport_meter_energy_kilowatt_hours\{[^}]*direction="import"', scraped)

    # 1b. the accounting service's state of the simulated meter, served by REST
    async def accounted() -> tuple[dict[str, Any], dict[str, Any]] | None:
        tariff = await probe.http.get(f"{probe.rest_url}/meter/tariff")
        energy = await probe.http.get(f"{probe.rest_url}/meter/energy?resolution=1d")
        if tariff.status_code != 200 or not energy.json().get("intervals"):
            return None  # a second reading makes the first interval
        return tariff.json(), energy.json()

    tariff, energy = await until(accounted, "the accounting state on REST", stack)
    assert tariff["rule"] == "no-elvia" and tariff["window"] == 60
    assert energy["intervals"][-1]["import"] > 0

    # 2. SIGKILL each service in turn; the others keep serving; it restarts and catches up
    for name in ("ingest", "rest", "mqtt", "modbus", "licensing", "accounting"):
        service = stack[name]
        before_id, _ = await probe.newest()
        before_mqtt = len(probe.mqtt.messages)
        service.kill()

        if name != "rest":
            assert (await probe.meter())["type"] == "HAN_METER_MESSAGE", f"REST with {name} down"
        if name != "modbus":
            assert (await probe.modbus())["ts"] > 0, f"Modbus with {name} down"
        if name != "ingest":

            async def stream_moves(after: str = before_id) -> bool:
                return (await probe.newest())[0] != after

            await until(stream_moves, f"new readings while {name} is down", stack)
        if name not in ("ingest", "mqtt"):

            async def mqtt_moves(count: int = before_mqtt) -> bool:
                return len(probe.mqtt.messages) > count

            await until(mqtt_moves, f"MQTT messages while {name} is down", stack)

        service.start()
        service.wait_ready()
        restarted_at, _ = await probe.newest()

        async def caught_up(after: str = restarted_at, name: str = name) -> bool:
            newest_id, newest = await probe.newest()
            if newest_id == after:
                return False  # wait for a reading published after the restart
            checks = [
                (await probe.meter())["ts"] >= newest.ts,
                (await probe.modbus())["ts"] >= newest.ts,
                any(m["ts"] == newest.ts for m in probe.mqtt.messages),
                any(i == newest_id for i, _ in probe.sse.events),
            ]
            return all(checks)

        await until(caught_up, f"every interface current after restarting {name}", stack)

    # the license survived the licensing service's restart (kept in its folder)
    port = stack["licensing"].port("HANPORT_LICENSING_PORT")
    status = (await probe.http.get(f"http://127.0.0.1:{port}/license")).json()
    assert SERIAL in json.dumps(status)

    # 3. no gap: from the first reading each client got, every stream entry, in order
    entries = await probe.stream.range(count=None)
    stream_ids = [i for i, _ in entries]
    stream_ts = [r.ts for _, r in entries]

    # MQTT: the subscriber's messages, matched in order against the stream; a message equal to
    # one already matched is a QoS 1 resend (a restarted bridge republishes what it had not
    # had confirmed). Two readings may share a meter second, so whole messages are compared.
    stream_messages = [cozify_message(r) for _, r in entries]
    received = probe.mqtt.messages
    first = stream_messages.index(received[0])
    matched = first
    for message in received:
        if matched < len(stream_messages) and message == stream_messages[matched]:
            matched += 1
        else:
            assert message in stream_messages[first:matched], (
                f"the MQTT subscriber has a gap or a reordering at stream entry {matched}:\n"
                f" received {[m['ts'] for m in received]}\n stream   {stream_ts}"
            )
    assert matched >= len(stream_messages) - 2  # all but at most the newest still in flight

    sse_ids = [i for i, _ in probe.sse.events]
    first = stream_ids.index(sse_ids[0])
    assert sse_ids == stream_ids[first : first + len(sse_ids)], (
        f"the SSE client has a gap:\n received {sse_ids}\n stream   {stream_ids}"
    )
    assert probe.sse.connects >= 2  # it did reconnect across the REST restart
    for name, service in stack.services.items():
        assert service.alive(), f"{name} died:\n{service.log_tail()}"
