"""Push streams: `/events` (server-sent events, resumable with Last-Event-ID) and `/ws`
(WebSocket: a snapshot, then every reading).

Consumes `State` subscriptions (each reading encoded once) and, to resume, the readings stream;
produces the bytes sent to each client. A client too slow to keep up is disconnected rather than
buffered without bound; an SSE client then resumes with Last-Event-ID and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from shared.cancellation import raise_if_cancelling
from shared.stream import REDIS_DOWN, ReadingStream
from shared.stream_id import BEFORE_ALL, StreamId, id_after

from .metrics import SSE_CLIENTS, WS_CLIENTS
from .state import Item, Snapshot, State

PAGE = 500
RETRY = b"retry: 2000\n\n"


def status_event(body: bytes) -> bytes:
    return b"event: HAN_STATUS\ndata: " + body + b"\n\n"


async def backlog_page(stream: ReadingStream, after: str) -> list[Snapshot]:
    """Up to PAGE readings after stream id `after`, oldest first (raises REDIS_DOWN errors)."""
    return [Snapshot.of(i, r) for i, r in await stream.range(id_after(after), "+", count=PAGE)]


async def sse_chunks(
    state: State,
    stream: ReadingStream,
    queue: asyncio.Queue[Item],
    first: list[Snapshot],
    resume_after: str | None,
    keepalive: float,
) -> AsyncIterator[bytes]:
    """The event stream: `first` (backlog or snapshot), the rest of the backlog, then live."""
    last = StreamId.parse(resume_after) if resume_after else BEFORE_ALL
    yield RETRY
    page = first
    while page:
        for snapshot in page:
            key = StreamId.parse(snapshot.entry_id)
            if key > last:
                last = key
                yield snapshot.event
        if resume_after is None or len(page) < PAGE:
            break
        try:
            page = await backlog_page(stream, page[-1].entry_id)
        except REDIS_DOWN:
            return  # the client reconnects with Last-Event-ID and resumes from there
    yield status_event(state.status())  # after the backlog: says how old the newest reading is
    while True:
        try:
            item = await asyncio.wait_for(queue.get(), keepalive)
        except TimeoutError:
            yield b": keepalive\n\n"
            continue
        raise_if_cancelling()  # wait_for (3.11) can drop a cancel that meets a reading
        # Whatever else is queued already (a batch of readings) goes out in the same write.
        chunk: list[bytes] = []
        while True:
            if item is None:  # fell too far behind: end; the client resumes with Last-Event-ID
                if chunk:
                    yield b"".join(chunk)
                return
            if isinstance(item, bytes):
                chunk.append(status_event(item))
            else:
                key = StreamId.parse(item.entry_id)
                if key > last:
                    last = key
                    chunk.append(item.event)
            if queue.empty():
                break
            item = queue.get_nowait()
        if chunk:
            yield b"".join(chunk)


class EventStream(Response):
    """A `text/event-stream` ASGI response that stops as soon as the client goes away (not only
    at the next write), then calls `on_close`."""

    media_type = "text/event-stream"
    stream_headers = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-store"),
        (b"x-accel-buffering", b"no"),
    ]

    def __init__(self, chunks: AsyncIterator[bytes], on_close: Callable[[], None]) -> None:
        self.chunks = chunks
        self.on_close = on_close
        self.status_code = 200
        self.background = None
        self.raw_headers = list(self.stream_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        SSE_CLIENTS.inc()
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

            async def pump() -> None:
                async for chunk in self.chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})

            async def disconnected() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass

            tasks = [asyncio.ensure_future(pump()), asyncio.ensure_future(disconnected())]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, OSError, Exception):
                        await task
        finally:
            SSE_CLIENTS.dec()
            self.on_close()


async def websocket_feed(websocket: WebSocket, state: State) -> None:
    """Accepted socket: the newest reading as a snapshot, then every reading, as text frames."""
    queue = state.subscribe()
    WS_CLIENTS.inc()
    try:
        await websocket.accept()
        if state.latest is not None:
            last = StreamId.parse(state.latest.entry_id)
            await websocket.send_text(state.latest.body.decode())
        else:
            last = BEFORE_ALL

        async def closed() -> None:
            with contextlib.suppress(WebSocketDisconnect):
                while (await websocket.receive())["type"] != "websocket.disconnect":
                    pass

        watcher = asyncio.ensure_future(closed())
        try:
            while not watcher.done():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait([getter, watcher], return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                item = getter.result()
                if item is None:
                    await websocket.close(code=1013, reason="too slow: reconnect")
                    break
                if isinstance(item, Snapshot) and StreamId.parse(item.entry_id) > last:
                    last = StreamId.parse(item.entry_id)
                    await websocket.send_text(item.body.decode())
        finally:
            watcher.cancel()
    except (WebSocketDisconnect, OSError):
        pass
    finally:
        WS_CLIENTS.dec()
        state.unsubscribe(queue)
