"""uvicorn's HTTP/1.1 protocol (httptools) with limits on how a request arrives, for the
services that serve HTTP (`shared.service.serve_http(..., http=GuardedHttpProtocol.limited(...))`).

uvicorn waits for ever for a request that never completes: a client that opens a connection and
sends nothing, or trickles its headers a byte at a time (slowloris), keeps a socket and a file
descriptor as long as it likes, and the parser keeps every byte of a head that never ends. Here
each request must arrive whole (request line, headers and body) within `request_timeout` seconds
of its first byte (or of the connection opening), and its head within `max_head_bytes`;
otherwise the connection is closed (a head too large is answered 431 first). Both are counted in
`hanport_http_connections_dropped_total{reason}` and logged at most once a minute. WebSocket and
SSE streams are not affected: the deadline ends when their request has arrived.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .metrics import HTTP_DROPPED

log = logging.getLogger(__name__)

LOG_EVERY_S = 60.0
HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 24\r\nconnection: close\r\n\r\n"
    b"Request head too large.\n"
)


class Warnings:
    """One warning per reason at most once a minute, with the count since the last one."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.next_at: dict[str, float] = {}

    def __call__(self, reason: str, message: str) -> None:
        HTTP_DROPPED.labels(reason).inc()
        self.counts[reason] = self.counts.get(reason, 0) + 1
        now = time.monotonic()
        if now >= self.next_at.get(reason, 0.0):
            log.warning("closed %d HTTP connection(s): %s", self.counts[reason], message)
            self.counts[reason] = 0
            self.next_at[reason] = now + LOG_EVERY_S


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; `limited()` makes the class to pass as uvicorn's `http`."""

    request_timeout = 10.0
    max_head_bytes = 64 * 1024
    warnings = Warnings()

    @classmethod
    def limited(cls, request_timeout: float, max_head_bytes: int) -> type[GuardedHttpProtocol]:
        limits = {
            "request_timeout": request_timeout,
            "max_head_bytes": max_head_bytes,
            "warnings": Warnings(),
        }
        return type(cls.__name__, (cls,), limits)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_timer: asyncio.TimerHandle | None = None
        self.head_bytes: int | None = 0  # bytes since the head began; None while a body arrives

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.head_bytes is not None:  # a head is arriving (or the next one may begin)
            if self.request_timer is None:
                self._start_timer()
            self.head_bytes += len(data)
            if self.head_bytes > self.max_head_bytes:
                self._stop_timer()
                self.warnings("head_too_large", f"request head over {self.max_head_bytes} bytes")
                self.transport.write(HEAD_TOO_LARGE)
                self.transport.close()
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self.head_bytes = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._stop_timer()
        self.head_bytes = 0
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._stop_timer()
        self.head_bytes = None
        super().handle_websocket_upgrade()

    def _start_timer(self) -> None:
        self.request_timer = self.loop.call_later(self.request_timeout, self._too_slow)

    def _stop_timer(self) -> None:
        if self.request_timer is not None:
            self.request_timer.cancel()
            self.request_timer = None

    def _too_slow(self) -> None:
        self.request_timer = None
        if not self.transport.is_closing():
            self.warnings("request_timeout", f"no whole request within {self.request_timeout:g} s")
            self.transport.abort()
