"""A data notification turned into a reading, compiled once per list shape and replayed.

Consumes a data-notification APDU (`cosem.Notification`) and produces a `Reading`. A meter sends
the same list every few seconds with only its numbers and clock changed, so the first frame of
a shape is decoded fully (A-XDR, list layout) and compiled into a `Plan`: where each changing
leaf sits in the APDU and what it feeds (a reading slot with its scale, the clock, extras).
Later frames whose bytes outside those leaves are identical (`Plan.matches`) are read straight
from their offsets. Both paths run the same `Plan.run`, so they give the same reading.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from shared.reading import CrcStatus, Reading

from ..obis import UnitError
from ..reading_builder import ReadingBuilder, Slot, numeric_slot
from . import axdr, cosem
from . import list_layouts as layouts

_CLOCKS = (layouts.CLOCK, "0-1:1.0.0")  # Kamstrup sends its clock on channel 1
_MODEL_CODES = ("0-0:96.1.7", "1-0:96.1.1")  # meter type (Aidon, Kaifa; Kamstrup)
_IDENTITY = {"1-0:0.0.5": "0-0:96.1.0"}  # Kamstrup's meter id
# Text registers kept in extras under these names: list version (Aidon sends it as a register),
# logical device name.
_EXTRAS = {"list_id": "list_id", "1-0:0.2.129": "list_id", "0-0:42.0.0": "0-0:42.0.0"}

# Operations, one per register (`Op.kind`).
CLOCK, MODEL, EXTRA, SLOT, ADD = range(5)


class Op(NamedTuple):
    kind: int
    leaf: int | None  # index into the plan's leaf values; None: `const` holds the value
    const: Any
    code: str
    target: str
    unit: str | None
    scaler: int
    slot: Slot | None


class _Int(int):
    leaf: int


class _Float(float):
    leaf: int


class _Bytes(bytes):
    leaf: int


_MARKERS: dict[type, type] = {int: _Int, float: _Float, bytes: _Bytes}
_POWERS = [10**n for n in range(129)]  # int8 scalers: -128..127


def text(value: Any) -> Any:
    """Octet strings that are printable text become `str`; other bytes become hex."""
    if isinstance(value, bytes):
        if all(32 <= b < 127 for b in value):
            return value.decode("ascii")
        return value.hex()
    return value


def _mark(value: Any, found: list[Any]) -> Any:
    """`value` with each changing leaf (number, 12-byte octet string) replaced by a marker of
    the same value that remembers its position in `found`."""
    kind = type(value)
    if kind is list:
        return [_mark(v, found) for v in value]
    marker = _MARKERS.get(kind)
    if marker is None or (kind is bytes and len(value) != 12):
        return value
    marked = marker(value)
    marked.leaf = len(found)
    found.append(value)
    return marked


def _gap_bytes(apdu: bytes, gaps: list[tuple[int, int]]) -> bytes:
    return b"".join([apdu[start:end] for start, end in gaps])


def _prepared(op: Op) -> Op:
    """A constant operation with its text and scaling applied once."""
    if op.kind in (MODEL, EXTRA):
        return op._replace(const=text(op.const))
    if op.kind == ADD:
        return op._replace(const=text(layouts.scaled(op.const, op.scaler)), scaler=0)
    return op


def _read(apdu: bytes, leaves: list[Any]) -> list[Any]:
    return [
        unpack(apdu, offset)[0] if unpack is not None else apdu[offset : offset + size]
        for offset, size, unpack in leaves
    ]


class Plan:
    """How one list shape becomes a reading; `run` executes it on an APDU of that shape."""

    def __init__(self, apdu: bytes, notification: cosem.Notification) -> None:
        spans: list[tuple[int, int, Any]] = []
        found: list[Any] = []
        if notification.datetime_at is not None:
            spans.append((notification.datetime_at, 12, None))
            found.append(notification.datetime)
        body = _mark(notification.body, found)
        axdr.leaves(apdu, notification.body_at, spans)
        layout, items = layouts.list_items(body)
        self.layout = layout
        ops = [self._compile(item) for item in items]
        if notification.datetime is not None:
            ops.insert(0, Op(CLOCK, 0, None, layouts.CLOCK, "", None, 0, None))
        # Replayable when the leaves found by walking the bytes are the marked ones, value for
        # value; otherwise every later frame is decoded afresh (still correct, just slower).
        self.replayable = len(spans) == len(found) and _read(apdu, spans) == found
        # Only leaves read as values change freely; the rest (scalers, units, anything the
        # layout decided by) stays in the skeleton, so a change there is a new shape.
        used = sorted({op.leaf for op in ops if op.leaf is not None})
        renumber = {old: new for new, old in enumerate(used)}
        self.leaves = [spans[i] for i in used] if self.replayable else []
        self.ops = [op if op.leaf is None else op._replace(leaf=renumber[op.leaf]) for op in ops]
        if not self.replayable:  # run once on this frame's own values
            self.ops = [
                op if op.leaf is None else op._replace(leaf=None, const=found[op.leaf])
                for op in ops
            ]
        # Constant text and scaling done once here, not on every frame.
        self.ops = [op if op.leaf is not None else _prepared(op) for op in self.ops]
        self.length = len(apdu)
        # The bytes outside the invoke id and the leaves, as (start, end) gaps and their content.
        holes = sorted([(1, 5)] + [(offset, offset + size) for offset, size, _ in self.leaves])
        self.gaps: list[tuple[int, int]] = []
        at = 0
        for start, end in holes:
            if start > at:
                self.gaps.append((at, start))
            at = max(at, end)
        self.gaps.append((at, len(apdu)))
        self.skeleton = _gap_bytes(apdu, self.gaps)

    @staticmethod
    def _compile(item: layouts.Item) -> Op:
        code, value, unit, scaler = item
        leaf = getattr(value, "leaf", None) if type(value) in (_Int, _Float, _Bytes) else None
        const = None if leaf is not None else value
        target = _IDENTITY.get(code) or _EXTRAS.get(code) or code
        if code in _CLOCKS and isinstance(value, bytes) and len(value) == 12:
            return Op(CLOCK, leaf, const, code, target, unit, scaler, None)
        if code in _MODEL_CODES:
            return Op(MODEL, leaf, const, code, target, unit, scaler, None)
        if code in _EXTRAS:
            return Op(EXTRA, leaf, const, code, target, unit, scaler, None)
        if isinstance(value, int | float) and not isinstance(value, bool):
            slot = numeric_slot(target, unit)
            if slot is not None:
                return Op(SLOT, leaf, const, code, target, unit, scaler, slot)
        return Op(ADD, leaf, const, code, target, unit, scaler, None)

    def matches(self, apdu: bytes) -> bool:
        """True when `apdu` has this shape: same bytes everywhere but in the leaves."""
        if len(apdu) != self.length or not self.replayable:
            return False
        return _gap_bytes(apdu, self.gaps) == self.skeleton

    def values(self, apdu: bytes) -> list[Any]:
        return _read(apdu, self.leaves)

    def run(
        self,
        apdu: bytes,
        *,
        received_ms: int,
        crc: CrcStatus,
        protocol: str,
        zone: ZoneInfo | None,
    ) -> Reading:
        values = self.values(apdu) if self.leaves else []
        builder = ReadingBuilder(received=received_ms, protocol=protocol)
        ts: int | None = None
        model: str | None = None
        arrays, scalars = builder.arrays, builder.scalars
        for op in self.ops:
            value = op.const if op.leaf is None else values[op.leaf]
            kind = op.kind
            if kind == SLOT:
                slot = op.slot
                assert slot is not None
                scaler = op.scaler
                if scaler < 0:
                    value = value / _POWERS[-scaler]
                elif scaler > 0:
                    value = value * _POWERS[scaler]
                factor = slot.factor
                number = float(value) if factor == 1.0 else round(value * factor, 6)
                if slot.target == "arrays":
                    arrays[slot.key][slot.position] = number
                elif slot.target == "scalars":
                    scalars[slot.key] = number
                elif slot.target == "tariffs":
                    builder.tariffs[slot.key] = number
                else:
                    scalars[slot.key] = int(number)
            elif kind == CLOCK:
                clock_ts, clock_text = cosem.to_epoch_ms(value, zone)
                if clock_text is not None:
                    builder.add(layouts.CLOCK, clock_text)
                if ts is None:
                    ts = clock_ts
            elif kind == MODEL:
                model = str(value if op.leaf is None else text(value))
            elif kind == EXTRA:
                builder.extras[op.target] = value if op.leaf is None else text(value)
            else:
                if op.leaf is not None:
                    value = text(layouts.scaled(value, op.scaler))
                try:
                    builder.add(op.target, value, op.unit)
                except UnitError:
                    builder.extras[op.code] = {"value": value, "unit": op.unit}
        builder.extras["layout"] = self.layout
        return builder.build(ts=ts, crc=crc, meter_model=model)
