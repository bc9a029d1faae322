"""The REST service under test: started in-process with uvicorn (uvloop, httptools, the same
config as `hanport rest`) on a free port against the test's real redis-server, plus readings to
feed it.

`rest_factory(**settings)` starts one and returns a `RestUnderTest`; `rest` is one with defaults.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from redis.asyncio import Redis

from services.rest.app import create_app
from services.rest.fastpath import FastPath
from services.rest.guard import Guard
from services.rest.settings import RestSettings
from services.rest.state import Snapshot, State
from shared.reading import Reading
from shared.stream import ReadingStream
from tests.rest.readings import sample_readings
from tests.servers import RedisServer, free_port

TIMEOUT = 10.0


@dataclass
class RestUnderTest:
    url: str
    settings: RestSettings
    state: State
    redis: Redis
    stream: ReadingStream
    client: httpx.AsyncClient
    guard: Guard | None = None
    server: uvicorn.Server | None = None
    task: asyncio.Task[None] | None = None
    readings: list[Reading] = field(default_factory=list)

    async def stop(self) -> None:
        """Shut the service down (open streams are cut after uvicorn's graceful timeout)."""
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            await asyncio.wait_for(asyncio.shield(self.task), TIMEOUT)

    async def add(self, reading: Reading | None = None, *, age_s: float = 0.0) -> str:
        """XADD a reading (the next sample when None), received `age_s` seconds ago, and wait
        until this replica holds it. Returns its stream id."""
        queue = self.state.subscribe()
        try:
            if reading is None:
                reading = self.next_reading()
            now = int((time.time() - age_s) * 1000)
            reading = msgspec.structs.replace(reading, received=now, ts=now)
            entry_id = await self.stream.add(reading)
            await self.wait_for(queue, entry_id)
            return entry_id
        finally:
            self.state.unsubscribe(queue)

    def next_reading(self) -> Reading:
        if not self.readings:
            self.readings = sample_readings(50)
        return self.readings.pop(0)

    @staticmethod
    async def wait_for(queue: asyncio.Queue[Any], entry_id: str) -> Snapshot:
        async with asyncio.timeout(TIMEOUT):
            while True:
                item = await queue.get()
                if isinstance(item, Snapshot) and item.entry_id == entry_id:
                    return item


RestFactory = Callable[..., Awaitable[RestUnderTest]]


@pytest.fixture
async def rest_factory(redis_server: RedisServer) -> AsyncIterator[RestFactory]:
    servers: list[uvicorn.Server] = []
    tasks: list[asyncio.Task[None]] = []
    clients: list[httpx.AsyncClient] = []
    redises: list[Redis] = []

    async def start(**overrides: Any) -> RestUnderTest:
        port = free_port()
        values: dict[str, Any] = {
            "redis_url": redis_server.url,
            "rest_port": port,
            "rest_host": "127.0.0.1",
            "rest_keepalive": 5.0,
            **overrides,
        }
        settings = RestSettings(**values)
        app = create_app(settings)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            loop="none",
            http="httptools",
            ws="websockets-sansio",
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        servers.append(server)
        started = asyncio.Event()
        startup = server.startup

        async def startup_then_signal(sockets: Any = None) -> None:
            await startup(sockets=sockets)
            started.set()

        server.startup = startup_then_signal  # type: ignore[method-assign]
        task = asyncio.create_task(server.serve())
        tasks.append(task)
        async with asyncio.timeout(TIMEOUT):
            await started.wait()
        state = _state_of(app)
        redis = Redis.from_url(redis_server.url)
        redises.append(redis)
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT)
        clients.append(client)
        return RestUnderTest(
            f"http://127.0.0.1:{port}",
            settings,
            state,
            redis,
            ReadingStream(redis, settings.stream),
            client,
            _guard_of(app),
            server,
            task,
        )

    yield start
    for client in clients:
        await client.aclose()
    for server in servers:
        server.should_exit = True
    if tasks:
        await asyncio.wait(tasks, timeout=TIMEOUT)
    for redis in redises:
        await redis.aclose()


@pytest.fixture
async def rest(rest_factory: RestFactory) -> RestUnderTest:
    return await rest_factory()


def _guard_of(app: Any) -> Guard:
    while not isinstance(app, FastPath):
        app = app.app
    return app.guard


def _state_of(app: Any) -> State:
    """The replica's `State` (the fast path holds it; CORS may wrap the fast path)."""
    while not hasattr(app, "state") or not isinstance(app.state, State):
        app = app.app
    state: State = app.state
    return state
