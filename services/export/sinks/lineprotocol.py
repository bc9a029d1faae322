"""Readings as InfluxDB line protocol: pure, no I/O (the InfluxDB sink and the fleet hub's
workers share it).

One line per reading in the measurement `hanport`, tagged `box` (the reader's serial) and `meter`
(`shared.meters.meter_of`); one field per number the meter sent, named from the field catalogue
(shared/fields.py: the total of an array by its key, `p`, a phase by `Value.column`, `p_l1`);
a value the meter did not send is left out, never 0; the time is the reading's `ts` in ms
(write with precision `ms`). Each M-Bus sub-meter (gas, water, heat) is a line in the
measurement `hanport_submeter`, tagged also `channel`, `device` (its id) and `unit`.

    hanport,box=HP12,meter=main ic=1234.5,p=512.0,p_l1=200.0,u_l1=230.1 1733300000000
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from shared.fields import BY_KEY, ELECTRICAL, Value, values
from shared.meters import meter_of
from shared.reading import SubMeter

from .entries import AnyReading, Entries, NotANumber

MEASUREMENT = "hanport"
SUBMETER_MEASUREMENT = "hanport_submeter"
PRECISION = "ms"


def export_name(value: Value) -> str:
    """The field's name in every export: `ic`, `p` (an array's total), `p_l1`, `u_l1`."""
    return value.field.key if value.phase == "total" else value.column


# Every number of a reading an export carries: the Cozify values, then the grid frequency.
EXPORTED: tuple[Value, ...] = values((*ELECTRICAL, BY_KEY["frequency"]))
# The plan walked once per reading: (attribute of `Reading`, None for a scalar or the export name
# of each position of an array), built from `EXPORTED`.
_PLAN: tuple[tuple[str, tuple[str, ...] | None], ...] = tuple(
    (
        key,
        None
        if BY_KEY[key].positions == ()
        else tuple(export_name(v) for v in EXPORTED if v.field.key == key),
    )
    for key in dict.fromkeys(v.field.key for v in EXPORTED)
)


def escape_tag(text: str) -> str:
    """A tag key or value, or a measurement: `,`, `=`, space and backslash escaped."""
    if not any(c in text for c in ",= \\\n"):
        return text
    text = text.replace("\n", " ")
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _number(value: Any) -> str | None:
    """A float field value (`230.1`), or None for a value to leave out (absent, NaN, inf)."""
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return repr(number) if math.isfinite(number) else None


def series_prefix(box: str, meter: str, measurement: str = MEASUREMENT) -> str:
    """`hanport,box=...,meter=... `: the measurement and tags of a meter's lines."""
    return f"{escape_tag(measurement)},box={escape_tag(box)},meter={escape_tag(meter)}"


_KEYS = tuple(key for key, _names in _PLAN)
_SIZES = tuple(None if names is None else len(names) for _key, names in _PLAN)
_GET = operator.attrgetter(*_KEYS)


def _is_number(item: Any) -> bool:
    return item is None or (isinstance(item, int | float) and not isinstance(item, bool))


def _json_values(raw: msgspec.Raw, key: str, size: int | None) -> Any:
    """An `Exported` value (its JSON text) as `Reading` holds it: a number or None, or for an
    array (`size` items in the catalogue) a list of them or None; else `NotANumber`."""
    value = msgspec.json.decode(raw)
    if size is None:
        valid = _is_number(value)
    else:
        valid = value is None or (isinstance(value, list) and all(map(_is_number, value)))
    if not valid:
        text = bytes(raw)[:80].decode(errors="replace")
        raise NotANumber(f"{key} is not a number{'' if size is None else ' array'}: {text}")
    return value


def flat_values(reading: AnyReading) -> list[Any]:
    """Every exported value of the reading, in `EXPORTED` order (None where absent); raises
    `NotANumber` for a value of an `Exported` that is no number."""
    out: list[Any] = []
    for key, value, size in zip(_KEYS, _GET(reading), _SIZES, strict=True):
        if isinstance(value, msgspec.Raw):  # (an `Exported`'s JSON text)
            value = _json_values(value, key, size)
        if size is None:
            out.append(value)
        elif value is None:
            out += [None] * size
        elif len(value) == size:
            out += value
        else:  # an array of another length than the catalogue's: pad or cut
            out += (list(value) + [None] * size)[:size]
    return out


_NAMES: tuple[str, ...] = tuple(export_name(v) for v in EXPORTED)


def reading_fields(reading: AnyReading) -> str:
    """`ic=1234.5,p=512.0,...`: every number the reading has (absent, NaN and infinite ones
    left out); "" when it has none. The reference for `reading_lines`' fast path, and its
    fallback for a reading of another shape than `Reading`'s."""
    kept = [
        (name, _number(value)) for name, value in zip(_NAMES, flat_values(reading), strict=True)
    ]
    return ",".join(f"{name}={text}" for name, text in kept if text is not None)


def reading_line(reading: AnyReading, prefix: str) -> str | None:
    """The reading's line after `prefix` (`series_prefix`); None when it has no value at all
    (line protocol needs a field)."""
    fields = reading_fields(reading)
    if not fields:
        return None
    return f"{prefix} {fields} {reading.ts}"


# The fast path, 4.3 µs a reading (a batch's body) instead of 7.9 (docs/performance.md): the encoder
# writes every value of a reading, and its time, as number text in one C call, e.g.
# `[47522.278,null,59.0,...,[1231.0,376.0,824.0,30.0],...,1733300000000]` (NaN and infinity
# as `null`). With the digits taken out, `[,null,,...,[,,,],...,]`, that text is the reading's
# shape: which values are absent and how long each array is. A meter sends the same values in
# every telegram, so each meter has one or two shapes, each a `%b` template of the line.
_VALUES_AND_TIME = operator.attrgetter(*_KEYS, "ts")
VALUES = operator.attrgetter(*_KEYS)  # a reading's exported values (arrays whole)
ENCODE = msgspec.json.Encoder().encode
_DIGITS = b"0123456789.-+e"  # what a number's text is made of (with `-` and `e` of 1e-05)
_NULL = b"null"


def shape_of(text: bytes) -> bytes:
    """JSON text with the digits of its numbers taken out: `[,null,[,,,]]`."""
    return text.translate(None, _DIGITS)


def all_of_shape(text: bytes, one: bytes, count: int) -> bool:
    """Whether `text`, the JSON of a list of `count` items, has the shape `one` for each."""
    return shape_of(text) == b"[%b]" % b",".join([shape_of(one)] * count)


def _expected_shape(absent: tuple[bool, ...]) -> bytes:
    """The shape text of a reading of `Reading`'s array lengths with these values absent."""
    marks = iter(_NULL if gone else b"" for gone in absent)
    parts = [
        next(marks) if names is None else b"[" + b",".join(next(marks) for _ in names) + b"]"
        for _key, names in _PLAN
    ]
    return b"[" + b",".join(parts) + b",]"


@functools.lru_cache(maxsize=1024)
def _absent(shape: bytes) -> tuple[bool, ...] | None:
    """Which values a reading of this shape lacks; None for a shape of other array lengths or
    of other values than numbers (the slow paths handle those). Shapes are few: a meter sends
    the same values every time."""
    absent = tuple(mark == _NULL for mark in shape.translate(None, b"[]").split(b",")[:-1])
    if len(absent) != len(_NAMES) or _expected_shape(absent) != shape:
        return None
    return absent


@functools.lru_cache(maxsize=4096)
def _pieces(prefix: str, shape: bytes) -> tuple[bytes, ...] | None:
    """The text of a line of a reading of this shape around its values: `prefix ic=`, `,ec=`,
    ..., ` ` (before the time); None for a shape `_absent` refuses or one without a value."""
    absent = _absent(shape)
    if absent is None or all(absent):
        return None
    names = [name for name, gone in zip(_NAMES, absent, strict=True) if not gone]
    return (f"{prefix} {names[0]}=".encode(), *(f",{n}=".encode() for n in names[1:]), b" ")


@functools.lru_cache(maxsize=4096)
def _template(prefix: str, shape: bytes) -> bytes | None:
    """`_pieces` as a `%b` template of the line (its present values, then its time)."""
    pieces = _pieces(prefix, shape)
    if pieces is None:
        return None
    return b"%b".join(piece.replace(b"%", b"%%") for piece in pieces) + b"%b"


def value_texts(reading: AnyReading) -> bytes | None:
    """The reading's exported values, then its time, as the JSON encoder writes numbers:
    comma-separated, `null` where absent (NaN and infinity too), in `EXPORTED` order
    (`b"47522.278,null,...,1733300000000"`); None for a reading of another shape than
    `Reading`'s (the slow paths handle it). The SQL rows' fast path."""
    text = ENCODE(_VALUES_AND_TIME(reading))
    if _absent(shape_of(text)) is None:
        return None
    return text[1:-1].translate(None, b"[]")


def reading_line_bytes(reading: AnyReading, prefix: str) -> bytes | None:
    """`reading_line` as bytes, made by the fast path when the reading's shape allows."""
    text = ENCODE(_VALUES_AND_TIME(reading))
    template = _template(prefix, shape_of(text))
    if template is None:  # another shape, or nothing to write: the slow, general way
        line = reading_line(reading, prefix)
        return None if line is None else line.encode()
    flat = text[1:-1].translate(None, b"[]")
    if _NULL in flat:  # never the time (the last value): each null is followed by a comma
        flat = flat.replace(b"null,", b"")
    return template % tuple(flat.split(b","))


def submeter_line(submeter: SubMeter, reading: AnyReading, box: str, meter: str) -> str | None:
    """A sub-meter's line (its own time when it sent one), None when it has no value."""
    value = _number(submeter.value)
    if value is None:
        return None
    tags = [
        escape_tag(SUBMETER_MEASUREMENT),
        f"box={escape_tag(box)}",
        f"channel={submeter.channel}",
    ]
    if submeter.id:
        tags.append(f"device={escape_tag(submeter.id)}")
    tags.append(f"meter={escape_tag(meter)}")  # tags in key order: what InfluxDB sorts to
    if submeter.unit:
        tags.append(f"unit={escape_tag(submeter.unit)}")
    fields = f"value={value}"
    if submeter.device_type is not None:
        fields += f",device_type={int(submeter.device_type)}i"
    return f"{','.join(tags)} {fields} {submeter.ts or reading.ts}"


def same_shape_lines(readings: Sequence[AnyReading], prefix: str) -> bytes | None:
    """The lines of readings that all have the shape of the first (the same values present,
    `reading_line_bytes`' fast path), made at once: one encode of the whole run, its values
    put between the shape's `_pieces` by one join; None when they are not all of one shape (or
    have no value). 2.1 µs a reading where each line made apart took 5.4 (docs/performance.md,
    Export)."""
    one = ENCODE(_VALUES_AND_TIME(readings[0]))
    pieces = _pieces(prefix, shape_of(one))
    if pieces is None:
        return None
    text = ENCODE([_VALUES_AND_TIME(reading) for reading in readings])
    if not all_of_shape(text, one, len(readings)):
        return None
    return interleave(text, _between_lines(pieces))[1:]  # (the first line after no newline)


def interleave_python(values: bytes, pieces: tuple[bytes, ...]) -> bytes:
    """The numbers of the JSON text `values` (numbers in arrays, a run's: `[[v,null,[v,v],t],
    ...]`), `null`s left out, each after its piece of a line in turn:
    `interleave(b"[[1.5,null,7],[2.5,null,8]]", (b"\\nm a=", b" ")) == b"\\nm a=1.5 7\\nm a=2.5 8"`.
    Where the C version (sinks/_interleave.c) was built, `interleave` is that: in one pass,
    without a bytes object per number (docs/performance.md, Export)."""
    flat = values.translate(None, b"[]").replace(b"null,", b"")  # (the time, last, is no null)
    numbers = flat.split(b",")
    if b"" in numbers or numbers[-1] == _NULL:  # (empty arrays: not in a run of `Reading`s)
        numbers = [n for n in numbers if n and n != _NULL]
    if len(numbers) % len(pieces):
        raise ValueError(f"interleave: {len(numbers)} numbers are not whole lines of {len(pieces)}")
    out = [b""] * (2 * len(numbers))  # piece, number, piece, number, ...: line after line
    out[0::2] = pieces * (len(numbers) // len(pieces))
    out[1::2] = numbers
    return b"".join(out)


try:
    from ._interleave import interleave
except ImportError:  # not built (no C compiler where it was installed): the same, slower
    interleave = interleave_python
json_lines: Callable[..., bytes | None] | None
try:
    from ._stream_json import lines as json_lines  # (`stream_body`)
except ImportError:  # not built: `body` of the decoded readings
    json_lines = None
COMPILED = interleave is not interleave_python and json_lines is not None  # (logged at start)


@functools.lru_cache(maxsize=64)
def _between_lines(pieces: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """A line's pieces, the first after a newline: what goes before each value of a run."""
    return (b"\n" + pieces[0], *pieces[1:])


_METER = operator.attrgetter("meter")
_SUBMETERS = operator.attrgetter("submeters")


def lines(readings: Sequence[AnyReading], box: str) -> list[bytes]:
    """Every line of `readings` and of their sub-meters: the readings of one meter all of one
    shape (a meter's usual run) made at once, their sub-meters' lines after them; other
    readings each with its sub-meters after it. (The order of lines in a write is the store's
    no concern: a point is its series and time.)"""
    if not readings:
        return []
    meters = set(map(_METER, readings))  # (a reading without `meter`: `meter_of` names it)
    if len(meters) == 1 and (meter := meters.pop()):
        run = same_shape_lines(readings, series_prefix(box, meter))
        if run is not None:
            if not any(map(_SUBMETERS, readings)):
                return [run]
            return [run, *(sub for r in readings for sub in _submeter_lines(r, box, meter))]
    out: list[bytes] = []
    prefixes: dict[str, str] = {}
    for reading in readings:
        meter = meter_of(reading)
        prefix = prefixes.get(meter)
        if prefix is None:
            prefix = prefixes[meter] = series_prefix(box, meter)
        line = reading_line_bytes(reading, prefix)
        if line is not None:
            out.append(line)
        out += _submeter_lines(reading, box, meter)
    return out


def _submeter_lines(reading: AnyReading, box: str, meter: str) -> list[bytes]:
    if not reading.submeters:
        return []
    made = (submeter_line(submeter, reading, box, meter) for submeter in reading.submeters)
    return [line.encode() for line in made if line is not None]


def body(readings: Sequence[AnyReading], box: str) -> bytes:
    """The request body of one write: the lines, newline-separated."""
    return b"\n".join(lines(readings, box))


# `_PLAN` as `json_lines` (sinks/_stream_json.c) takes it
_JSON_PLAN = tuple(
    (key.encode(), None if names is None else tuple(name.encode() for name in names))
    for key, names in _PLAN
)


class _Meter(msgspec.Struct):
    meter: str | None = None


_meter_of_json = msgspec.json.Decoder(_Meter).decode


def stream_body(entries: Entries, box: str) -> bytes:
    """`body` of entries read from the stream. When their JSON is canonical (entries.py), of one
    meter and every value a number, made of the JSON itself in one pass in C, without decoding
    it: 0.38 µs a reading (0.9 with the check of `Entries.decode`), where decoding and `body`
    took 1.85 (docs/performance.md, Export); else `body` of their readings."""
    payloads = entries.payloads
    if json_lines is not None and entries.canonical and payloads:
        meter = _meter_of_json(payloads[0]).meter
        if meter:
            head = series_prefix(box, meter).encode()
            made = json_lines(payloads, head, _JSON_PLAN, b"ts", b"meter", ENCODE(meter))
            if made is not None:
                return made
    return body(entries.readings, box)
