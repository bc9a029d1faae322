"""What a replica holds in memory: per meter the newest reading (pre-encoded for every way it is
served) and its held slow values, which meter is the default one, Redis reachability, and the
fan-out of new readings to connected SSE/WebSocket clients.

Consumes (entry id, `Reading`) pairs from the follower, keyed by `shared.meters.meter_of`;
produces the bytes the fast path, the event stream and the WebSocket send, so each reading is
encoded once however many clients read.

Several meters (docs/rest.md, "Several meters"): `/meter` and everything that served "the"
reading serve the default meter's (`State.latest`): `HANPORT_DEFAULT_METER` when set, else the
meter on the classic stream (`HANPORT_STREAM`), else the first by name
(`shared.meters.default_meter`). A reading whose meter the directory does not know is kept
like any other, never dropped.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import msgspec

from shared.meters import MeterRecord, default_meter, meter_of
from shared.reading import MESSAGE_TYPE, Reading, cozify_message, encode_cozify
from shared.stale import age_s, stale_reason
from shared.stream_id import StreamId
from shared.submeters import submeter_object

from .metrics import METERS_FORGOTTEN, METERS_HELD, SLOW_CLIENTS

_status_encoder = msgspec.json.Encoder()


# A subscription to every meter's readings (`State.subscribe(ALL)`, `?meter=*`).
ALL = "*"
# Meters held at most: past this, the one longest silent among those the directory does not list
# is forgotten (readings with ever new names must not grow memory without bound).
MAX_METERS = 1000


def sse_event(entry_id: str, body: bytes, meter: str | None = None) -> bytes:
    """One `HAN_METER_MESSAGE` event; `meter: <name>` says which meter it is from (a field an
    EventSource and other SSE parsers ignore unless they look for it)."""
    return (
        b"id: "
        + entry_id.encode()
        + b"\nevent: "
        + MESSAGE_TYPE.encode()
        + (b"" if meter is None else b"\nmeter: " + meter.encode())
        + b"\ndata: "
        + body
        + b"\n\n"
    )


def tagged_body(body: bytes, meter: str, reading: Reading) -> bytes:
    """`/meters/{id}`: the `/meter` body plus `meter` (its name) and, when the meter has M-Bus
    sub-meters, `submeters` (by channel, each with its own `ts`); the Cozify keys unchanged."""
    extra = b',"meter":' + _status_encoder.encode(meter)
    if reading.submeters:
        extra += b',"submeters":' + _status_encoder.encode(submeter_object(reading.submeters))
    return body[:-1] + extra + b"}"


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
    meter: str = ""  # the meter's name (`meter_of`)
    tagged: bytes = b""  # /meters/{id} and tagged WebSocket frames: `body` + meter, submeters

    @classmethod
    def of(cls, entry_id: str, reading: Reading, held: dict[str, Held] | None = None) -> Snapshot:
        plain = encode_cozify(reading)
        body = plain if held is None else meter_body(reading, held)
        name = meter_of(reading)
        return cls(
            entry_id,
            reading,
            body,
            sse_event(entry_id, plain, name),
            name,
            tagged_body(body, name, reading),
        )


@dataclass
class MeterState:
    """What a replica holds of one meter."""

    name: str
    latest: Snapshot | None = None
    held: dict[str, Held] = field(default_factory=dict)  # last known slow values

    def age(self, now: float | None = None) -> float | None:
        """Seconds since its newest reading was received by ingest (None: no reading yet)."""
        return age_s(self.latest.reading if self.latest else None, now or None)

    def stale_reason(
        self, limit: float, now: float | None = None
    ) -> tuple[str, float | None] | None:
        """None when its newest reading is fresh, else (why, age in seconds)."""
        return stale_reason(self.latest.reading if self.latest else None, limit, now or None)


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
    default_setting: str | None = None  # HANPORT_DEFAULT_METER
    max_meters: int = MAX_METERS
    classic_stream: str = "hanport:readings"  # HANPORT_STREAM
    redis_ok: bool = False
    serial: str | None = None
    started: float = field(default_factory=time.time)
    loaded: asyncio.Event = field(default_factory=asyncio.Event)  # newest reading looked up
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # stopping: streams end
    meters: dict[str, MeterState] = field(default_factory=dict)  # by name, every meter seen
    records: dict[str, MeterRecord] = field(default_factory=dict)  # the directory, by name
    classic: str | None = None  # the meter of the newest reading on the classic stream
    _classic_id: StreamId | None = None
    _default: str | None = None
    _default_stale: bool = True  # the meters, the directory or `classic` changed
    # each client's queue and which readings it wants: None the default meter's, ALL every
    # meter's, else one meter's
    _clients: dict[asyncio.Queue[Item], str | None] = field(default_factory=dict)

    # --- which meters, which is the default ---------------------------------------------
    def named(self, name: str) -> bool:
        """Whether `name` is a meter with a stream of its own (in the directory, not on the
        classic stream)."""
        record = self.records.get(name)
        return record is not None and record.readings != self.classic_stream

    @property
    def default(self) -> str | None:
        """The default meter's name (None: no meter known yet). Worked out again only when the
        meters, the directory or the classic stream's meter changed (`/meter` asks per request)."""
        if self._default_stale:
            self._default = self._work_out_default()
            self._default_stale = False
        return self._default

    def _work_out_default(self) -> str | None:
        if self.default_setting:
            return self.default_setting
        on_classic = [r for r in self.records.values() if r.readings == self.classic_stream]
        # the newest record: a meter replaced on the classic stream leaves its old one behind
        classic = max(on_classic, key=lambda r: r.updated).name if on_classic else self.classic
        return default_meter(self.names(), self.default_setting, classic)

    def names(self) -> list[str]:
        """Every meter known: those readings came from and those in the directory, by name."""
        return sorted(self.meters.keys() | self.records.keys())

    def meter(self, name: str | None) -> MeterState | None:
        return None if name is None else self.meters.get(name)

    def set_records(self, records: list[MeterRecord]) -> None:
        """The directory as last read; a meter now known to have its own stream no longer
        counts as the classic stream's."""
        self.records = {r.name: r for r in records}
        self._default_stale = True
        if self.classic is not None and self.named(self.classic):
            self.classic, self._classic_id = None, None
            for meter in self.meters.values():
                if meter.latest is not None and not self.named(meter.name):
                    self._note_classic(meter.name, StreamId.parse(meter.latest.entry_id))

    def _note_classic(self, name: str, key: StreamId) -> None:
        if self._classic_id is None or key > self._classic_id:
            if name != self.classic:
                self._default_stale = True
            self.classic, self._classic_id = name, key

    # --- the default meter's newest reading (what /meter, /han, /readyz serve) -----------
    @property
    def latest(self) -> Snapshot | None:
        meter = self.meter(self.default)
        return meter.latest if meter else None

    @property
    def held(self) -> dict[str, Held]:
        meter = self.meter(self.default)
        return meter.held if meter else {}

    def age(self, now: float | None = None, name: str | None = None) -> float | None:
        """Seconds since the newest reading (of meter `name`, default: the default meter's) was
        received by ingest (None: no reading yet)."""
        return age_s(self._reading(name), now or None)

    def stale_reason(
        self, now: float | None = None, name: str | None = None
    ) -> tuple[str, float | None] | None:
        """None when the newest reading (of meter `name`, default: the default meter's) is
        fresh, else (why, age in seconds)."""
        return stale_reason(self._reading(name), self.stale_after, now or None)

    def _reading(self, name: str | None) -> Reading | None:
        meter = self.meter(self.default if name is None else name)
        return meter.latest.reading if meter and meter.latest else None

    def status(self, name: str | None = None) -> bytes:
        """The `HAN_STATUS` message: what the live page needs to say whether data is
        trustworthy; of the default meter, or of meter `name` (then it says `meter`)."""
        age = self.age(name=name)
        meter = self.meter(self.default if name is None else name)
        message: dict[str, object] = {
            "type": "HAN_STATUS",
            "redis": self.redis_ok,
            "stale": self.stale_reason(name=name) is not None,
            "age": None if age is None else round(age, 3),
            "stale_after": self.stale_after,
            "id": meter.latest.entry_id if meter and meter.latest else None,
        }
        if name is not None:
            message["meter"] = name
        return _status_encoder.encode(message)

    def stale_flags(self) -> tuple[bool, ...]:
        """Whether each known meter's data is stale, by name (the watcher tells clients when
        any of these changes)."""
        return tuple(self.stale_reason(name=name) is not None for name in self.names())

    # --- new readings --------------------------------------------------------------------
    def _meter_state(self, name: str) -> MeterState:
        meter = self.meters.get(name)
        if meter is None:
            if len(self.meters) >= self.max_meters:
                self._forget_one()
            meter = self.meters[name] = MeterState(name)
            self._default_stale = True
            METERS_HELD.set(len(self.meters))
        return meter

    def _forget_one(self) -> None:
        """Forget the meter longest silent among those the directory does not list (never the
        default one); when every one is listed, none (the directory bounds them)."""
        default = self.default
        unlisted = [
            m for m in self.meters.values() if m.name not in self.records and m.name != default
        ]
        if not unlisted:
            return
        oldest = min(unlisted, key=lambda m: m.latest.reading.received if m.latest else 0)
        del self.meters[oldest.name]
        self._default_stale = True
        METERS_FORGOTTEN.inc()

    def publish(self, entry_id: str, reading: Reading) -> Snapshot:
        """Make this its meter's newest reading and hand it to every client that wants it."""
        name = meter_of(reading)
        meter = self._meter_state(name)
        remember_slow(meter.held, reading)
        snapshot = Snapshot.of(entry_id, reading, meter.held)
        key = StreamId.parse(entry_id)
        if meter.latest is None or key > StreamId.parse(meter.latest.entry_id):
            meter.latest = snapshot
        if not self.named(name):
            self._note_classic(name, key)
        self._fan_out(snapshot)
        return snapshot

    def publish_batch(self, entries: list[tuple[str, Reading]]) -> None:
        """`publish` each of `entries` (oldest first), encoding only what is served: with no
        SSE/WebSocket client connected, only each meter's newest of them (for /meter); the
        others are superseded before anyone could ask for them (SSE resumes read the stream)."""
        if not self._clients:
            names = [meter_of(reading) for _entry_id, reading in entries]
            last = {name: index for index, name in enumerate(names)}
            kept = []
            for index, (entry, name) in enumerate(zip(entries, names, strict=True)):
                if last[name] == index:
                    kept.append(entry)
                else:
                    remember_slow(self._meter_state(name).held, entry[1])
            entries = kept
        for entry_id, reading in entries:
            self.publish(entry_id, reading)

    def _fan_out(self, snapshot: Snapshot) -> None:
        default = self.default
        for queue, wants in list(self._clients.items()):
            if wants != ALL and snapshot.meter != (default if wants is None else wants):
                continue
            try:
                queue.put_nowait(snapshot)
            except asyncio.QueueFull:
                # Too far behind: end that client (SSE resumes with Last-Event-ID, no gap).
                self._clients.pop(queue, None)
                queue.get_nowait()
                queue.put_nowait(None)
                SLOW_CLIENTS.inc()

    # --- subscribers --------------------------------------------------------------------
    def broadcast_status(self) -> None:
        """Tell every SSE client the current status (Redis up/down, fresh/stale) of the meter it
        follows (the default meter's when it follows every meter)."""
        messages: dict[str | None, bytes] = {}
        for queue, wants in list(self._clients.items()):
            name = None if wants == ALL else wants
            if name not in messages:
                messages[name] = self.status(name)
            if not queue.full():
                queue.put_nowait(messages[name])

    def subscribe(self, meter: str | None = None) -> asyncio.Queue[Item]:
        """A queue receiving every new reading of the default meter (`meter` None), of every
        meter (ALL) or of one meter; `None` in it means "you fell behind: stop", CLOSING "the
        replica is stopping: stop"."""
        queue: asyncio.Queue[Item] = asyncio.Queue(self.queue_size)
        if self.closing.is_set():
            queue.put_nowait(CLOSING)
        else:
            self._clients[queue] = meter
        return queue

    def close_streams(self) -> None:
        """The process is stopping: end every SSE/WebSocket client's stream at once. What was
        still queued for a client is dropped whole (never a part of it: no gap), so an SSE
        client resumes after the last reading it did get."""
        self.closing.set()
        for queue in list(self._clients):
            self._clients.pop(queue, None)
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(CLOSING)

    def unsubscribe(self, queue: asyncio.Queue[Item]) -> None:
        self._clients.pop(queue, None)

    @property
    def clients(self) -> int:
        return len(self._clients)
