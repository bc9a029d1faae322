"""Fixtures for the emulation tests: the service running in-process on free loopback ports,
against the real Redis fixture and real signed licenses (tests/licensing_helpers.py); readings
XADDed with `ReadingStream` as ingest writes them."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis

from services.emulate.latest import Latest
from services.emulate.service import Serving, run_service
from services.emulate.settings import EmulateSettings
from shared.license import FeatureName
from shared.meters import meter_of
from shared.reading import Reading
from shared.stream import ReadingStream, connect
from tests.licensing_helpers import grant, issue, make_keys, publish_license
from tests.readings import simulated_readings
from tests.servers import RedisServer, free_port

SERIAL = "HPTEST0021"
TIMEOUT = 10.0


def now_ms() -> int:
    return int(time.time() * 1000)


def fresh(reading: Reading | None = None, **changes: Any) -> Reading:
    """A simulated reading (real P1 decoder) received now."""
    base = reading or simulated_readings(1)[0]
    return msgspec.structs.replace(base, **{"received": now_ms(), "ts": now_ms(), **changes})


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Running:
    settings: EmulateSettings
    latest: Latest
    serving: Serving
    stream: ReadingStream
    task: asyncio.Task[None]

    @property
    def shelly(self) -> str:
        return f"http://127.0.0.1:{self.settings.shelly_http_port}"

    @property
    def homewizard(self) -> str:
        return f"http://127.0.0.1:{self.settings.homewizard_port}"

    @property
    def udp(self) -> tuple[str, int]:
        return ("127.0.0.1", self.settings.udp_ports[0])

    async def publish(self, reading: Reading) -> None:
        """XADD the reading and wait (no polling) until the service holds it."""
        await self.stream.add(reading)
        await self.seen(reading)

    async def seen(self, reading: Reading) -> None:
        """Wait (no polling) until the service holds `reading` (XADDed by anyone)."""
        name = meter_of(reading)
        await asyncio.wait_for(self.latest.until(lambda: self.latest.get(name) == reading), TIMEOUT)


StartEmulate = Callable[..., Coroutine[Any, Any, Running]]


@pytest.fixture
async def start_emulate(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[StartEmulate]:
    """`await start_emulate(licensed=("shelly", "homewizard"), **settings)`: the service, its
    licensed devices answering."""
    redis = Redis.from_url(redis_server.url)
    running: list[Running] = []
    clients: list[Redis] = []

    async def start(
        *,
        licensed: tuple[FeatureName, ...] = ("shelly", "homewizard"),
        meters: list[str] | None = None,
        **overrides: Any,
    ) -> Running:
        private, public = make_keys(tmp_path)
        if licensed and meters is not None:  # a license that names the meters it serves
            text = issue(private, serial=SERIAL, features=licensed, meters=meters)
            await publish_license(redis_server.url, text, public)
        elif licensed:
            await grant(redis_server.url, tmp_path, SERIAL, licensed)
        fields: dict[str, Any] = {
            "redis_url": redis_server.url,
            "serial": SERIAL,
            "license_public_keys": str(public),
            "emulate_host": "127.0.0.1",
            "shelly_http_port": free_port(),
            "homewizard_port": free_port(),
            "shelly_udp_ports": f"{free_udp_port()},{free_udp_port()}",
            "emulate_mdns": False,
            "metrics_port": 0,
        }
        settings = EmulateSettings.model_validate({**fields, **overrides})
        latest = Latest(settings.emulate_stale_after)
        serving = Serving()
        own = await connect(redis_server.url)
        clients.append(own)
        task = asyncio.create_task(run_service(settings, own, latest=latest, serving=serving))
        service = Running(settings, latest, serving, ReadingStream(redis, settings.stream), task)
        running.append(service)
        for name in licensed:
            if name in settings.personalities:
                await asyncio.wait_for(serving.wait(name), TIMEOUT)
        return service

    yield start
    for service in running:
        service.task.cancel()
        with suppress(asyncio.CancelledError):
            await service.task
    for own in clients:
        await own.aclose()
    await redis.aclose()


class UdpClient(asyncio.DatagramProtocol):
    """A UDP socket as a Marstek battery uses one: send a request, read the answers."""

    def __init__(self) -> None:
        self.answers: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.answers.put_nowait(data)

    def send(self, data: bytes, to: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, to)

    async def answer(self) -> dict[str, Any]:
        data = await asyncio.wait_for(self.answers.get(), TIMEOUT)
        return msgspec.json.decode(data)


@pytest.fixture
async def udp_client() -> AsyncIterator[UdpClient]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        UdpClient, local_addr=("127.0.0.1", 0)
    )
    yield protocol
    transport.close()
