"""Push streams: `/events` (server-sent events, resumable with Last-Event-ID) and `/ws`
(WebSocket: a snapshot, then every reading).

Consumes `State` subscriptions (each reading encoded once) and, to resume, the readings stream;
produces the bytes sent to each client. A client follows the default meter (as before several
meters), one meter (`?meter=<id>`, `/meters/{id}/events`) or every meter (`?meter=*`: live
only, no replay, since each meter's stream has its own ids); every `HAN_METER_MESSAGE` event
says its meter (`meter:`). A client too slow to keep up is disconnected rather than
buffered without bound; an SSE client then resumes with Last-Event-ID and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from shared.cancellation import raise_if_cancelling
from shared.meters import meter_of
from shared.stream import REDIS_DOWN, ReadingStream, parse_entries
from shared.stream_id import BEFORE_ALL, StreamId, entry_id_text, id_after

from .metrics import SSE_CLIENTS, WS_CLIENTS
from .read_gate import PAGE, Busy
from .state import ALL, Closing, Item, Snapshot, State

RETRY = b"retry: 2000\n\n"


def status_event(body: bytes) -> bytes:
    return b"event: HAN_STATUS\ndata: " + body + b"\n\n"


@dataclass(frozen=True)
class Backlog:
    """One page of readings to send before the live ones, already as SSE events."""

    events: bytes
    last_id: str | None  # the page's last stream id; None: an empty page
    full: bool  # a whole page: more may follow
    meters: tuple[tuple[str, str], ...] = ()  # every meter's page: (meter, its newest id sent)

    @classmethod
    def newest(cls, snapshot: Snapshot | None) -> Backlog:
        """A new client's first event: the newest reading, if any."""
        if snapshot is None:
            return cls(b"", None, False)
        return cls(snapshot.event, snapshot.entry_id, False)

    @classmethod
    def every_newest(
        cls, state: State, serves: Callable[[Snapshot], bool] = lambda _snapshot: True
    ) -> Backlog:
        """A new client of every meter: each meter's newest reading (those `serves` allows), by
        meter name."""
        newest = [
            m.latest
            for m in (state.meter(n) for n in state.names())
            if m and m.latest and serves(m.latest)
        ]
        return cls(
            b"".join(s.event for s in newest),
            None,
            False,
            tuple((s.meter, s.entry_id) for s in newest),
        )


async def backlog_page(
    stream: ReadingStream, after: str, redis_wait: float, meter: str | None = None
) -> Backlog:
    """Up to PAGE readings after stream id `after` (only meter `meter`'s when given: a stream
    several meters share), oldest first, encoded as one chunk (raises REDIS_DOWN errors,
    TimeoutError after `redis_wait` s). An entry that does not decode, or is another meter's,
    is skipped but still counts, so the replay goes on past it."""
    async with asyncio.timeout(redis_wait):
        raw = (await stream.redis.xrange(stream.key, id_after(after), "+", count=PAGE)) or []
    events = b"".join(
        Snapshot.of(i, r).event
        for i, r in parse_entries(raw)
        if meter is None or meter_of(r) == meter
    )
    return Backlog(events, entry_id_text(raw[-1][0]) if raw else None, len(raw) == PAGE)


# The page after a stream id (`backlog_page` under the read gate: raises Busy or REDIS_DOWN).
Replay = Callable[[str], Awaitable[Backlog]]


async def sse_chunks(
    state: State,
    queue: asyncio.Queue[Item],
    first: Backlog,
    resume_after: str | None,
    replay: Replay,
    keepalive: float,
    meter: str | None = None,
    serves: Callable[[Snapshot], bool] = lambda _snapshot: True,
) -> AsyncIterator[bytes]:
    """The event stream: `first` (the backlog's first page, or the newest reading when not
    resuming), the rest of the backlog page by page through `replay`, then live readings.
    `meter`: which readings the queue gets (None the default meter's, ALL every meter's: each
    meter's stream ids are its own, so those are compared per meter, and only those `serves`
    allows go out: a license may name the meters it serves)."""
    last = StreamId.parse(resume_after) if resume_after else BEFORE_ALL
    per_meter = {name: StreamId.parse(entry_id) for name, entry_id in first.meters}
    yield RETRY
    page = first
    while True:
        if page.events:
            yield page.events
        if page.last_id is not None:
            last = max(last, StreamId.parse(page.last_id))
        if resume_after is None or not page.full or page.last_id is None or state.closing.is_set():
            break
        try:
            page = await replay(page.last_id)
        except (Busy, *REDIS_DOWN):
            return  # the client reconnects with Last-Event-ID and resumes from there
    # after the backlog: says how old the newest reading is
    yield status_event(state.status(None if meter == ALL else meter))
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
            if item is None or isinstance(item, Closing):
                # Fell too far behind, or the replica stops: end; the client resumes with
                # Last-Event-ID.
                if chunk:
                    yield b"".join(chunk)
                return
            if isinstance(item, bytes):
                chunk.append(status_event(item))
            elif meter == ALL:
                key = StreamId.parse(item.entry_id)
                if key > per_meter.get(item.meter, BEFORE_ALL) and serves(item):
                    per_meter[item.meter] = key
                    chunk.append(item.event)
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


# Seconds a stopping replica tries to end a stream properly (the last, empty chunk) when the
# client does not read: then the connection is simply closed.
END_WAIT = 0.5


class EventStream(Response):
    """A `text/event-stream` ASGI response that stops as soon as the client goes away (not only
    at the next write) or the replica stops (`closing`, even while a write waits for a client
    that does not read), then calls `on_close`."""

    media_type = "text/event-stream"
    stream_headers = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-store"),
        (b"x-accel-buffering", b"no"),
    ]

    def __init__(
        self, chunks: AsyncIterator[bytes], on_close: Callable[[], None], closing: asyncio.Event
    ) -> None:
        self.chunks = chunks
        self.on_close = on_close
        self.closing = closing
        self.status_code = 200
        self.background = None
        self.raw_headers = list(self.stream_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        SSE_CLIENTS.inc()
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

            ended = False

            async def pump() -> None:
                nonlocal ended
                async for chunk in self.chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

            async def disconnected() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass

            tasks: list[asyncio.Future[object]] = [
                asyncio.ensure_future(pump()),
                asyncio.ensure_future(disconnected()),
                asyncio.ensure_future(self.closing.wait()),
            ]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, OSError, Exception):
                        await task
            if self.closing.is_set() and not ended:
                with contextlib.suppress(TimeoutError, OSError):
                    async with asyncio.timeout(END_WAIT):
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            SSE_CLIENTS.dec()
            self.on_close()


async def websocket_feed(
    websocket: WebSocket,
    state: State,
    meter: str | None = None,
    tagged: bool = False,
    serves: Callable[[Snapshot], bool] = lambda _snapshot: True,
) -> None:
    """Accepted socket: the newest reading as a snapshot, then every reading, as text frames;
    of the default meter (`meter` None), one meter, or every meter (ALL: each meter's newest
    first). `tagged`: frames say their meter (and sub-meters), as `/meters/{id}` does."""
    queue = state.subscribe(meter)
    WS_CLIENTS.inc()
    seen: dict[str, StreamId] = {}  # per meter, the newest stream id sent

    def frame(snapshot: Snapshot) -> str | None:
        if meter == ALL and not serves(snapshot):
            return None
        key = StreamId.parse(snapshot.entry_id)
        slot = snapshot.meter if meter == ALL else ""
        if key <= seen.get(slot, BEFORE_ALL):
            return None
        seen[slot] = key
        return (snapshot.tagged if tagged else snapshot.body).decode()

    try:
        await websocket.accept()
        if meter == ALL:
            firsts = [state.meter(n) for n in state.names()]
            newest = [m.latest for m in firsts if m is not None and m.latest is not None]
        else:
            one = state.latest if meter is None else state.meter(meter)
            snapshot = one if isinstance(one, Snapshot) or one is None else one.latest
            newest = [snapshot] if snapshot is not None else []
        for snapshot in newest:
            text = frame(snapshot)
            if text is not None:
                await websocket.send_text(text)

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
                if isinstance(item, Closing):
                    await websocket.close(code=1001, reason="server stopping: reconnect")
                    break
                if isinstance(item, Snapshot):
                    text = frame(item)
                    if text is not None:
                        await websocket.send_text(text)
        finally:
            watcher.cancel()
    except (WebSocketDisconnect, OSError):
        pass
    finally:
        WS_CLIENTS.dec()
        state.unsubscribe(queue)
