"""Fixtures for the Modbus tests: hand-made readings and the Modbus service running in-process
on a free port, against the real Redis fixture and a real signed license
(tests/licensing_helpers.py). Simulated readings decoded by the real P1 decoder come from
tests/readings.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from services.modbus.service import PortState, make_store, run_service
from services.modbus.settings import ModbusSettings
from services.modbus.store import RegisterStore
from shared.reading import Reading
from shared.stream import ReadingStream, connect
from tests.licensing_helpers import grant, make_keys
from tests.servers import RedisServer, free_port

SERIAL = "HPTEST0001"


def now_ms() -> int:
    return int(time.time() * 1000)


def import_reading(**changes: Any) -> Reading:
    """The values of the corpus capture p1/lgf5e360_se.txt (Landis+Gyr E360, Sweden; origin
    UtilitechAS/amsreader-firmware test/payloads/landis-gyr/gh382-1.txt): importing 4190 W.
    Reactive power and the meter id are made up (that telegram has none)."""
    fields: dict[str, Any] = dict(
        ts=now_ms(),
        received=now_ms(),
        ic=2721.126,
        ec=0.0,
        ric=1384.336,
        rec=0.09,
        p=[4190.0, 1980.0, 354.0, 1855.0],
        pi=[4190.0, 1980.0, 354.0, 1855.0],
        pe=[0.0, 0.0, 0.0, 0.0],
        r=[120.0, 40.0, None, 80.0],
        u=[230.7, 230.1, 231.0],
        i=[9.7, 1.9, 9.2],
        meter_id="7350000000000001",
        meter_model="LGF5E360",
        frequency=None,
    )
    fields.update(changes)
    return Reading(**fields)


def export_reading(**changes: Any) -> Reading:
    """A reading while exporting (solar): negative power, frequency known."""
    fields: dict[str, Any] = dict(
        ic=2722.5,
        ec=151.25,
        p=[-2500.0, -800.0, -900.0, -800.0],
        pi=[0.0, 0.0, 0.0, 0.0],
        pe=[2500.0, 800.0, 900.0, 800.0],
        r=[-300.0, -100.0, -100.0, -100.0],
        u=[236.1, 235.9, 237.2],
        i=[3.6, 4.0, 3.5],
        frequency=50.02,
    )
    fields.update(changes)
    return import_reading(**fields)


@dataclass
class Running:
    settings: ModbusSettings
    store: RegisterStore
    state: PortState
    stream: ReadingStream
    task: asyncio.Task[None]

    @property
    def port(self) -> int:
        return self.settings.modbus_port

    async def publish(self, reading: Reading) -> None:
        """XADD the reading and wait (no polling) until the server answers with it."""
        try:
            await self.stream.add(reading)
        except RedisConnectionError:  # the test restarted Redis: this client reconnects once
            await self.stream.add(reading)
        await asyncio.wait_for(self.store.until(lambda: self.store.reading == reading), 10)


StartModbus = Callable[..., Coroutine[Any, Any, Running]]


@pytest.fixture
async def start_modbus(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[StartModbus]:
    """`await start_modbus(licensed=True, **settings)`: the service, its port open when licensed."""
    redis = Redis.from_url(redis_server.url)
    running: list[Running] = []
    clients: list[Redis] = []

    async def start(*, licensed: bool = True, **overrides: Any) -> Running:
        _private, public = make_keys(tmp_path)  # trusted keys exist before the service starts
        if licensed:
            await grant(redis_server.url, tmp_path, SERIAL, ["modbus"])
        fields: dict[str, Any] = {
            "redis_url": redis_server.url,
            "serial": SERIAL,
            "license_public_keys": str(public),
            "modbus_host": "127.0.0.1",
            "modbus_port": free_port(),
            "metrics_port": 0,
        }
        settings = ModbusSettings.model_validate({**fields, **overrides})
        store = make_store(settings, SERIAL)
        state = PortState()
        own = await connect(redis_server.url)  # the service's own client, as in production
        clients.append(own)
        task = asyncio.create_task(run_service(settings, own, store=store, state=state))
        service = Running(settings, store, state, ReadingStream(redis, settings.stream), task)
        running.append(service)
        if licensed:
            await asyncio.wait_for(state.opened.wait(), 10)
        return service

    yield start
    for service in running:
        service.task.cancel()
        with suppress(asyncio.CancelledError):
            await service.task
    for own in clients:
        await own.aclose()
    await redis.aclose()
