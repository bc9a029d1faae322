"""The HTTP side of the devices: one aiohttp server per port, serving the routes of every
device configured on it (a Shelly and a HomeWizard may share port 80: their paths differ).

A device's routes answer only while it is active (licensed); the port is open while any of its
devices is. Request bodies over the limit get 413, request heads over it 400; both are counted
(`hanport_emulate_refused_total`) and the server keeps answering.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from .metrics import REFUSED

log = logging.getLogger(__name__)


class _NotParseErrors(logging.Filter):
    """aiohttp logs every request it cannot parse with a traceback; those are counted
    instead (anyone on the LAN could fill the log with them). Other errors are logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, HttpProcessingError)


server_log = logging.getLogger("services.emulate.http")
server_log.addFilter(_NotParseErrors())

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ACTIVE = web.AppKey("active", set)


class _Counting(AbstractAccessLogger):
    """Counts the requests the server refused before any handler ran (head too large,
    unparsable), and bodies refused as too large, under the port's devices' name."""

    personality = "http"  # replaced per port

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if response.status == 413:
            REFUSED.labels(self.personality, "too_large").inc()
        elif response.status in (400, 431):
            REFUSED.labels(self.personality, "bad_request").inc()

    @property
    def enabled(self) -> bool:
        return True


class Port:
    """One HTTP port and the devices that serve on it."""

    def __init__(self, host: str, port: int, max_bytes: int) -> None:
        self.host = host
        self.port = port
        self.max_bytes = max_bytes
        self.routes: list[tuple[str, str, str, Handler]] = []  # personality, method, path, handler
        self.active: set[str] = set()
        self._runner: web.AppRunner | None = None
        self._lock = asyncio.Lock()

    def add(self, personality: str, method: str, path: str, handler: Handler) -> None:
        self.routes.append((personality, method, path, handler))

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_bytes)
        for personality, method, path, handler in self.routes:
            app.router.add_route(method, path, self._only_while_active(personality, handler))
        return app

    def _only_while_active(self, personality: str, handler: Handler) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            if personality not in self.active:
                raise web.HTTPNotFound()
            return await handler(request)

        return handle

    @asynccontextmanager
    async def serving(self, personality: str) -> Any:
        """The port open with `personality`'s routes answering, for the body's duration."""
        async with self._lock:
            if self._runner is None:
                self._runner = await self._start()
            self.active.add(personality)
        try:
            yield self
        finally:
            async with self._lock:
                self.active.discard(personality)
                if not self.active and self._runner is not None:
                    runner, self._runner = self._runner, None
                    await runner.cleanup()

    async def _start(self) -> web.AppRunner:
        name = "+".join(sorted({personality for personality, *_ in self.routes})) or "http"
        counting = type("Counting", (_Counting,), {"personality": name})
        runner = web.AppRunner(
            self._app(),
            access_log_class=counting,
            logger=server_log,
            handle_signals=False,
            max_line_size=self.max_bytes,
            max_field_size=self.max_bytes,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        return runner


def remote(request: web.Request) -> str | None:
    return request.remote
