"""The SMA Energy Meter's Speedwire datagram, built from a reading (pure: no I/O).

Consumes a `Reading` (shared/reading.py: W, var, kWh, kvarh, V, A, Hz); produces the UDP
payload an SMA Energy Meter 2.0 (SUSy id 349) multicasts every second, as SMA's "EMETER
protocol" technical information describes it and SMA inverters, Sunny Island, evcc,
pysma-plus and Home Assistant read it:

    offset  bytes  what
    0       4      "SMA\\0"
    4       8      tag 0x02A0 (length 4): group 1
    12      4      tag 0x0010, length of what follows up to the end tag
    16      2      protocol id 0x6069 (energy meter)
    18      2      SUSy id (349: Energy Meter 2.0)
    20      4      serial number
    24      4      ticker, ms (wraps at 2**32)
    28      ...    channels: 0, index, type, tariff 0, then a value of `type` bytes (big-endian,
                   unsigned): type 4 a present value, type 8 a counter; channel 144.0.0.0 the
                   software version (4 bytes: major, minor, build, release letter)
    ...     4      end tag (length 0, tag 0)

`CHANNELS` is the table from the reading to the channels, in the device's own order (totals,
then L1, L2, L3: index 1-14, 21-33, 41-53, 61-73), walked by `channels()`. The meter sends
import and export separately and never a negative value: active, reactive and apparent power
(0.1 W, 0.1 var, 0.1 VA) and energy (Ws, vars, VAs) per direction, current (mA, unsigned),
voltage (mV), power factor (0.001, unsigned) and frequency (0.001 Hz).

A value the reading does not have (a meter without per-phase values, the apparent energy no
meter here sends, per-phase energies) leaves its channel out: clients look channels up by
their OBIS index, and a channel that is not there reads as "no value" instead of a made-up 0.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

from shared.reading import Reading

SUSY_ID = 349  # SMA Energy Meter 2.0 (270: Energy Meter 1.0, 372: Sunny Home Manager 2.0)
PROTOCOL_ID = 0x6069  # energy meter datagrams
SOFTWARE_VERSION = (2, 3, 4, "R")  # 2.3.4.R: a firmware that sends the frequency (channel 14)
MULTICAST_GROUP = "239.12.255.254"
PORT = 9522

PRESENT = 4  # channel type: a present value, 4 bytes
COUNTER = 8  # channel type: a counter, 8 bytes
_LIMIT = {PRESENT: 2**32 - 1, COUNTER: 2**64 - 1}

_HEAD = b"SMA\x00" + struct.pack(">HHI", 4, 0x02A0, 1)
_DATA = struct.Struct(">HHHHII")  # length, tag 0x0010, protocol, SUSy id, serial, ticker
_VERSION = bytes((144, 0, 0, 0, *SOFTWARE_VERSION[:3], ord(SOFTWARE_VERSION[3])))
_END = b"\x00\x00\x00\x00"

Quantity = Callable[[Reading, int], float | None]  # (reading, 0 total / 1-3 phase) -> value


# ---------------------------------------------------------------- the reading's quantities


def _net(reading: Reading, k: int) -> float | None:
    """Net active power (import - export), W: `p`, else `pi - pe`."""
    p = reading.p[k]
    if p is not None:
        return p
    pi, pe = reading.pi[k], reading.pe[k]
    return None if pi is None or pe is None else pi - pe


def _import_power(reading: Reading, k: int) -> float | None:
    pi = reading.pi[k]
    if pi is not None:
        return pi
    p = reading.p[k]
    return None if p is None else max(p, 0.0)


def _export_power(reading: Reading, k: int) -> float | None:
    pe = reading.pe[k]
    if pe is not None:
        return pe
    p = reading.p[k]
    return None if p is None else max(-p, 0.0)


def _reactive_import(reading: Reading, k: int) -> float | None:
    r = reading.r[k]
    return None if r is None else max(r, 0.0)


def _reactive_export(reading: Reading, k: int) -> float | None:
    r = reading.r[k]
    return None if r is None else max(-r, 0.0)


def _apparent(reading: Reading, k: int) -> tuple[float, float] | None:
    """(net active power, apparent power sqrt(P^2 + Q^2)), or None without both P and Q."""
    p, q = _net(reading, k), reading.r[k]
    return None if p is None or q is None else (p, math.hypot(p, q))


def _apparent_import(reading: Reading, k: int) -> float | None:
    """Apparent power while importing active power (the device books it by P's direction)."""
    ps = _apparent(reading, k)
    return None if ps is None else (ps[1] if ps[0] >= 0 else 0.0)


def _apparent_export(reading: Reading, k: int) -> float | None:
    ps = _apparent(reading, k)
    return None if ps is None else (ps[1] if ps[0] < 0 else 0.0)


def _power_factor(reading: Reading, k: int) -> float | None:
    """|P| / S, unsigned as the device sends it; 0 while nothing flows (S = 0)."""
    ps = _apparent(reading, k)
    if ps is None:
        return None
    p, s = ps
    return abs(p) / s if s > 0 else 0.0


def _total(key: str) -> Quantity:
    """A register the meter has only as a total (`ic`, `ec`, `ric`, `rec`, `frequency`)."""

    def quantity(reading: Reading, k: int) -> float | None:
        return getattr(reading, key) if k == 0 else None

    return quantity


def _none(reading: Reading, k: int) -> float | None:
    """A value no meter here sends (apparent energy, per-phase energies)."""
    return None


def _current(reading: Reading, k: int) -> float | None:
    i = reading.i[k - 1]
    return None if i is None else abs(i)


def _voltage(reading: Reading, k: int) -> float | None:
    return reading.u[k - 1]


# ---------------------------------------------------------------- the table

W = 10  # W, var, VA -> 0.1 units
KWH = 3_600_000  # kWh, kvarh -> Ws, vars
MILLI = 1000  # A -> mA, V -> mV, Hz -> mHz, factor -> 0.001


@dataclass(frozen=True)
class Row:
    """One channel of a block: index within the block, type, quantity, scale, name."""

    offset: int
    kind: int
    quantity: Quantity
    scale: int
    name: str


# every block (total, L1, L2, L3) starts with these, index = 20 * phase + offset
DIRECTIONS: tuple[Row, ...] = (
    Row(1, PRESENT, _import_power, W, "active power import"),
    Row(1, COUNTER, _total("ic"), KWH, "active energy import"),
    Row(2, PRESENT, _export_power, W, "active power export"),
    Row(2, COUNTER, _total("ec"), KWH, "active energy export"),
    Row(3, PRESENT, _reactive_import, W, "reactive power import"),
    Row(3, COUNTER, _total("ric"), KWH, "reactive energy import"),
    Row(4, PRESENT, _reactive_export, W, "reactive power export"),
    Row(4, COUNTER, _total("rec"), KWH, "reactive energy export"),
    Row(9, PRESENT, _apparent_import, W, "apparent power import"),
    Row(9, COUNTER, _none, KWH, "apparent energy import"),
    Row(10, PRESENT, _apparent_export, W, "apparent power export"),
    Row(10, COUNTER, _none, KWH, "apparent energy export"),
)
TOTAL_ONLY: tuple[Row, ...] = (
    Row(13, PRESENT, _power_factor, MILLI, "power factor"),
    Row(14, PRESENT, _total("frequency"), MILLI, "frequency"),
)
PHASE_ONLY: tuple[Row, ...] = (
    Row(11, PRESENT, _current, MILLI, "current"),
    Row(12, PRESENT, _voltage, MILLI, "voltage"),
    Row(13, PRESENT, _power_factor, MILLI, "power factor"),
)


@dataclass(frozen=True)
class Channel:
    """One OBIS channel of the datagram and where its value comes from."""

    index: int  # 1-14 totals, 21-33 L1, 41-53 L2, 61-73 L3
    kind: int  # PRESENT or COUNTER
    position: int  # 0 total, 1-3 phase (the reading's array position)
    quantity: Quantity
    scale: int
    name: str
    head: bytes = b""  # channel 0, index, type, tariff 0: the 4 bytes before the value
    limit: int = 0  # the largest value the type holds

    def __post_init__(self) -> None:
        object.__setattr__(self, "head", bytes((0, self.index, self.kind, 0)))
        object.__setattr__(self, "limit", _LIMIT[self.kind])

    @property
    def obis(self) -> str:
        """`1:4:0`: index, type, tariff (how pysma-plus and others key it)."""
        return f"{self.index}:{self.kind}:0"


def _blocks() -> tuple[Channel, ...]:
    out = []
    for position, phase in enumerate(("total", "L1", "L2", "L3")):
        rows = DIRECTIONS + (TOTAL_ONLY if position == 0 else PHASE_ONLY)
        for row in rows:
            name = row.name if position == 0 else f"{row.name} {phase}"
            index = 20 * position + row.offset
            out.append(Channel(index, row.kind, position, row.quantity, row.scale, name))
    return tuple(out)


CHANNELS: tuple[Channel, ...] = _blocks()


# ---------------------------------------------------------------- the walk


def channels(reading: Reading) -> list[tuple[Channel, int]]:
    """Each channel the reading has a value for, with its value in the channel's units (rounded,
    never negative, at most the type's largest number); a missing or not-a-number value leaves
    its channel out."""
    out = []
    for channel in CHANNELS:
        value = channel.quantity(reading, channel.position)
        if value is None or not math.isfinite(value):
            continue
        out.append((channel, min(max(round(value * channel.scale), 0), channel.limit)))
    return out


def encode(reading: Reading, serial: int, ticker_ms: int) -> bytes:
    """The datagram for `reading` from the meter with this serial (1..2**32-1) at this ticker."""
    body = b"".join(
        channel.head + value.to_bytes(channel.kind, "big") for channel, value in channels(reading)
    )
    length = 12 + len(body) + len(_VERSION)  # protocol id .. software version
    data = _DATA.pack(length, 0x0010, PROTOCOL_ID, SUSY_ID, serial, ticker_ms & 0xFFFFFFFF)
    return _HEAD + data + body + _VERSION + _END
