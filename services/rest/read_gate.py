"""The gate in front of heavy reads (`/meter/history`, the replay of `/events`): at most a few
of them decode and encode readings at once, a bounded number wait their turn, and past that a
request is refused at once (503 with Retry-After) instead of queueing without bound.

What the gate holds is what bounds a replica's memory and how long one `/meter` waits for the
event loop: each heavy read works one page of readings at a time, so at most `concurrent`
pages are in memory and in the loop's queue at once, whatever the number of readers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from shared.stream import REDIS_DOWN

from .metrics import HEAVY_READS, HEAVY_READS_BUSY, HEAVY_READS_WAITING

# Readings one heavy read takes from Redis (XRANGE COUNT) and encodes before it sends them and
# reads the next page: what it holds in memory at a time, and the longest the event loop works
# on it without a pause.
PAGE = 500


class Busy(Exception):
    """Every slot is taken and the waiting line is full: refuse, the client retries later."""


@dataclass
class ReadGate:
    concurrent: int  # heavy reads running at once
    queued: int  # more that may wait for a slot
    _slots: asyncio.Semaphore = field(init=False)
    _waiting: int = 0

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrent)

    @contextlib.asynccontextmanager
    async def slot(self, what: str) -> AsyncIterator[None]:
        """Hold one slot for the body; raises `Busy` when none is free and the line is full.
        `what` labels the metrics (`history`, `replay`)."""
        if self._slots.locked() and self._waiting >= self.queued:
            HEAVY_READS_BUSY.labels(what).inc()
            raise Busy
        self._waiting += 1
        HEAVY_READS_WAITING.inc()
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
            HEAVY_READS_WAITING.dec()
        HEAVY_READS.inc()
        try:
            yield
        finally:
            HEAVY_READS.dec()
            self._slots.release()

    @property
    def waiting(self) -> int:
        return self._waiting


log = logging.getLogger(__name__)

# Seconds a client may take to accept one piece of a heavy answer; a client that takes none for
# that long (a stalled or hostile reader) loses its answer, so it cannot keep a turn forever.
SEND_WAIT = 10.0


class GatedAnswer(Response):
    """A JSON answer read from Redis and sent piece by piece while holding a slot of the gate.

    Before anything is sent: `busy` when the gate refuses, `unavailable` when Redis does not
    give the first piece. After the first piece, a Redis failure, or a client that accepts no
    piece for SEND_WAIT s, cuts the answer short (the connection closes without the end of the
    chunked body, so the client sees an incomplete answer, never a shorter valid one)."""

    headers_sent = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]

    def __init__(
        self,
        gate: ReadGate,
        kind: str,
        chunks: AsyncIterator[bytes],
        busy: Response,
        unavailable: Response,
    ) -> None:
        self.gate = gate
        self.kind = kind
        self.chunks = chunks
        self.busy = busy
        self.unavailable = unavailable
        self.status_code = 200
        self.background = None
        self.raw_headers = list(self.headers_sent)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with self.gate.slot(self.kind):
                await self.stream(scope, receive, send)
        except Busy:
            await self.busy(scope, receive, send)
        finally:
            await self.chunks.aclose()  # type: ignore[attr-defined]

    async def stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            first = await anext(self.chunks)
        except REDIS_DOWN:
            await self.unavailable(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        chunk: bytes | None = first
        while chunk is not None:
            try:
                async with asyncio.timeout(SEND_WAIT):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except TimeoutError:
                log.warning(
                    "%s answer cut: the client took nothing for %.0f s", self.kind, SEND_WAIT
                )
                return
            except OSError:
                return  # the client went away
            try:
                chunk = await anext(self.chunks)
            except StopAsyncIteration:
                chunk = None
            except REDIS_DOWN as error:
                log.warning("%s answer cut short: Redis stopped answering (%r)", self.kind, error)
                return
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
