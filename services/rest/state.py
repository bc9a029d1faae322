"""What a replica holds in memory: the newest reading (pre-encoded for every way it is served),
Redis reachability, and the fan-out of new readings to connected SSE/WebSocket clients.

Consumes (entry id, `Reading`) pairs from the follower; produces the bytes the fast path, the
event stream and the WebSocket send, so each reading is encoded once however many clients read.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import msgspec

from shared.reading import MESSAGE_TYPE, Reading, cozify_message, encode_cozify
from shared.stale import age_s, stale_reason
from shared.stream_id import StreamId

from .metrics import SLOW_CLIENTS

_status_encoder = msgspec.json.Encoder()


def sse_event(entry_id: str, body: bytes) -> bytes:
    return (
        b"id: "
        + entry_id.encode()
        + b"\nevent: "
        + MESSAGE_TYPE.encode()
        + b"\ndata: "
        + body
        + b"\n\n"
    )


# --- last known slow values ---------------------------------------------------------------
# Nordic meters send their energy registers once an hour and alternate lists (Aidon, Kaifa,
# Kamstrup list 1/2/3): between two such lists a reading has `ic`, `ec`, `ric`, `rec` null.
# /meter serves the last known value of these counters instead, for up to SLOW_HOLD_S after the
# reading that carried it (one missed hourly list is bridged), with that reading's `ts` under
# `held_ts`. Fast quantities (power, current, voltage) are never carried over.
SLOW_KEYS = ("ic", "ec", "ric", "rec")
SLOW_HOLD_S = 2 * 3600.0
HELD_KEY = "held_ts"


@dataclass(frozen=True)
class Held:
    """A slow value as last sent: the value, the `ts` (ms) and the meter of its reading."""

    value: float
    ts: int
    meter_id: str | None


def remember_slow(held: dict[str, Held], reading: Reading) -> None:
    """Keep the slow values `reading` carries (readings come in stream order: the last wins)."""
    for key in SLOW_KEYS:
        value = getattr(reading, key)
        if value is not None:
            held[key] = Held(value, reading.ts, reading.meter_id)


def same_meter(a: str | None, b: str | None) -> bool:
    """Whether two readings may be one meter's (a list without the meter id may be)."""
    return a is None or b is None or a == b


def meter_body(reading: Reading, held: dict[str, Held], hold_s: float = SLOW_HOLD_S) -> bytes:
    """The `/meter` body: the Cozify message of `reading`, its missing slow values filled from
    `held` (same meter, not older than `hold_s`) and listed with their `ts` under `held_ts`.
    Byte for byte `encode_cozify(reading)` when nothing is filled in."""
    message = cozify_message(reading)
    carried: dict[str, int] = {}
    for key in SLOW_KEYS:
        known = held.get(key)
        if (
            message[key] is None
            and known is not None
            and 0 <= reading.ts - known.ts <= hold_s * 1000
            and same_meter(known.meter_id, reading.meter_id)
        ):
            message[key] = known.value
            carried[key] = known.ts
    if not carried:
        return encode_cozify(reading)
    message[HELD_KEY] = carried
    return _status_encoder.encode(message)


@dataclass(frozen=True)
class Snapshot:
    """One reading, encoded once for every consumer."""

    entry_id: str
    reading: Reading
    body: bytes  # /meter: the Cozify HAN meter message, JSON, with held slow values
    event: bytes  # one SSE event with the stream id as its id: the message as the meter sent it

    @classmethod
    def of(cls, entry_id: str, reading: Reading, held: dict[str, Held] | None = None) -> Snapshot:
        plain = encode_cozify(reading)
        body = plain if held is None else meter_body(reading, held)
        return cls(entry_id, reading, body, sse_event(entry_id, plain))


class Closing:
    """The replica is stopping: end the stream now (clients reconnect, to this replica once it
    is back or to another one; SSE clients resume with Last-Event-ID)."""


CLOSING = Closing()

# What a client queue carries: a reading, a status message (bytes), None ("you fell behind")
# or CLOSING.
Item = Snapshot | bytes | Closing | None


@dataclass
class State:
    stale_after: float
    queue_size: int = 1000
    latest: Snapshot | None = None
    redis_ok: bool = False
    serial: str | None = None
    started: float = field(default_factory=time.time)
    loaded: asyncio.Event = field(default_factory=asyncio.Event)  # newest reading looked up
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # stopping: streams end
    held: dict[str, Held] = field(default_factory=dict)  # last known slow values
    _clients: set[asyncio.Queue[Item]] = field(default_factory=set)

    # --- the newest reading -------------------------------------------------------------
    def age(self, now: float | None = None) -> float | None:
        """Seconds since the newest reading was received by ingest (None: no reading yet)."""
        return age_s(self.latest.reading if self.latest else None, now or None)

    def stale_reason(self, now: float | None = None) -> tuple[str, float | None] | None:
        """None when the newest reading is fresh, else (why, age in seconds)."""
        return stale_reason(
            self.latest.reading if self.latest else None, self.stale_after, now or None
        )

    def status(self) -> bytes:
        """The `HAN_STATUS` message: what the live page needs to say whether data is trustworthy."""
        age = self.age()
        return _status_encoder.encode(
            {
                "type": "HAN_STATUS",
                "redis": self.redis_ok,
                "stale": self.stale_reason() is not None,
                "age": None if age is None else round(age, 3),
                "stale_after": self.stale_after,
                "id": self.latest.entry_id if self.latest else None,
            }
        )

    def publish(self, entry_id: str, reading: Reading) -> Snapshot:
        """Make this the newest reading and hand it to every connected client."""
        remember_slow(self.held, reading)
        snapshot = Snapshot.of(entry_id, reading, self.held)
        if self.latest is None or StreamId.parse(entry_id) > StreamId.parse(self.latest.entry_id):
            self.latest = snapshot
        self._fan_out(snapshot)
        return snapshot

    def publish_batch(self, entries: list[tuple[str, Reading]]) -> None:
        """`publish` each of `entries` (oldest first), encoding only what is served: with no
        SSE/WebSocket client connected, only the newest of them (for /meter); the others are
        superseded before anyone could ask for them (SSE resumes read the stream itself)."""
        if not self._clients:
            for _entry_id, reading in entries[:-1]:
                remember_slow(self.held, reading)
            entries = entries[-1:]
        for entry_id, reading in entries:
            self.publish(entry_id, reading)

    def _fan_out(self, snapshot: Snapshot) -> None:
        for queue in list(self._clients):
            try:
                queue.put_nowait(snapshot)
            except asyncio.QueueFull:
                # Too far behind: end that client (SSE resumes with Last-Event-ID, no gap).
                self._clients.discard(queue)
                queue.get_nowait()
                queue.put_nowait(None)
                SLOW_CLIENTS.inc()

    # --- subscribers --------------------------------------------------------------------
    def broadcast_status(self) -> None:
        """Tell every SSE client the current status (Redis up/down, fresh/stale)."""
        message = self.status()
        for queue in list(self._clients):
            if not queue.full():
                queue.put_nowait(message)

    def subscribe(self) -> asyncio.Queue[Item]:
        """A queue receiving every new reading; `None` in it means "you fell behind: stop",
        CLOSING "the replica is stopping: stop"."""
        queue: asyncio.Queue[Item] = asyncio.Queue(self.queue_size)
        if self.closing.is_set():
            queue.put_nowait(CLOSING)
        else:
            self._clients.add(queue)
        return queue

    def close_streams(self) -> None:
        """The process is stopping: end every SSE/WebSocket client's stream at once. What was
        still queued for a client is dropped whole (never a part of it: no gap), so an SSE
        client resumes after the last reading it did get."""
        self.closing.set()
        for queue in list(self._clients):
            self._clients.discard(queue)
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(CLOSING)

    def unsubscribe(self, queue: asyncio.Queue[Item]) -> None:
        self._clients.discard(queue)

    @property
    def clients(self) -> int:
        return len(self._clients)
