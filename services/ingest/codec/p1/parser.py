"""The P1 (DSMR 2.2-5.0.2, e-MUCS, Luxembourg Smarty, Nordic SESKO/Swedish) telegram parser.

Consumes one telegram's bytes (`/` ... `!CRC`); produces a `Reading` or raises `DecodeError`.

`P1Parser` reads a meter's telegrams two ways, to the same reading:
- line by line (`_generic`): any telegram, each data line applied as `lines.decide` says;
- through a compiled layout (`layout.Layout`): one regex match and generated straight-line code.
A layout is compiled for a telegram shape (header, codes, units, groups per line) only when the
parser has seen that shape twice, so a one-off telegram costs no compilation. A parser keeps up
to `MAX_LAYOUTS` layouts (a meter may alternate shapes, e.g. a text message line coming and
going) and counts what it did in `compiled`, `fast` and `generic`. All of it belongs to the
parser instance: one per byte stream (`decoder.P1Decoder` holds one).

`parse_telegram` reads one telegram with a fresh parser (tests, tools).
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from fastcrc import crc16 as _crc16

from shared.reading import CrcStatus, Reading

from ..decoded import DecodeError
from ..reading_builder import ReadingBuilder
from .clock import DEFAULT_TIMEZONE, parse_timestamp, timezone
from .layout import Layout, Shape, compile_layout
from .lines import Does, decide, device_type, extra, number, split_group

# One data line: code, first value, its unit (after `*`), then the rest of the line: more
# "(...)" groups on M-Bus and log lines. Lines of other shapes are not matched.
_LINE = re.compile(r"\n(\d[^()\r\n]*)\(([^*()\r\n]*)\*?([^()\r\n]*)\)([^\r\n]*)")
_GROUP = re.compile(r"\(([^()\r\n]*)\)")
# DSMR 2.2/3.0 gas: `0-1:24.3.0(ts)(08)(60)(1)(0-1:24.2.1)(m3)` with the value on the next line.
_OLD_GAS = re.compile(
    r"^0-(\d{1,2}):24\.3\.0\(([^()]*)\)(?:\([^()\r\n]*\))*?\(([^()\r\n]*)\)\r?\n\(([^()\r\n]*)\)",
    re.M,
)
_TRAILER = re.compile(rb"([0-9A-Fa-f]{0,4})[\r\n\t \x00]*\Z")

MAX_LAYOUTS = 8  # compiled layouts per parser (a meter alternating shapes keeps each)
MAX_SHAPES = 256  # telegram shapes counted while waiting for a second sighting
RETRY_EVERY = 256  # a shape that made no layout is tried again every this many sightings


def crc16(data: bytes) -> int:
    """CRC-16/ARC (poly 0xA001 reflected, init 0) as P1 telegrams carry it."""
    return int(_crc16.arc(data))


def check_crc(frame: bytes, sent: bytes, check: bool, offset: int | None) -> CrcStatus:
    """The CRC status of a telegram; raises `DecodeError("crc_error")` when it does not match."""
    if not sent:
        return "absent"
    if not check:
        return "unchecked"
    computed = _crc16.arc(frame)
    if int(sent, 16) != computed:
        raise DecodeError(
            "crc_error",
            f"CRC mismatch: telegram says {sent.decode()}, bytes give {computed:04X}"
            " (line noise or an altered capture; switch CRC checking off only for a meter"
            " known to send wrong CRCs)",
            offset=offset,
            raw=frame + sent,
        )
    return "ok"


class P1Parser:
    """Parses the telegrams of one meter (one byte stream), learning its telegram layouts."""

    def __init__(self, *, tz: ZoneInfo | str = DEFAULT_TIMEZONE, check_crc: bool = True) -> None:
        self.tz = timezone(tz) if isinstance(tz, str) else tz
        self.check_crc = check_crc
        self.layouts: dict[str, list[Layout]] = {}  # by header, oldest first
        self._order: list[Layout] = []  # every layout kept, oldest first
        self.sightings: dict[Shape, int] = {}  # shapes read line by line, and how often
        self.compiled = 0  # layouts compiled
        self.fast = 0  # telegrams read through a layout
        self.generic = 0  # telegrams read line by line

    def parse_frame(
        self, frame: bytes, crc: bytes, received_ms: int, offset: int | None = None
    ) -> Reading:
        """One telegram: `frame` from `/` through `!` (or to its end when a decrypted telegram
        has no `!` line), `crc` the hex digits sent after `!` (b"" when none)."""
        status = check_crc(frame, crc, self.check_crc, offset)
        text = frame.decode("latin-1")
        header_end = text.find("\n")
        if header_end < 0 or text[:1] != "/":
            raise DecodeError(
                "parse_error", "no header line starting with '/'", offset=offset, raw=frame + crc
            )
        model = text[1:header_end].rstrip("\r")
        known = self.layouts.get(model)
        if known is not None:
            for layout in known:
                match = layout.pattern.fullmatch(text, header_end)
                if match is None:
                    continue
                try:
                    reading = layout.read(match.groups(), received_ms, self.tz, status, model)
                except (ValueError, OverflowError):  # a value that is no number: read by line
                    break
                self.fast += 1
                return reading
        builder = ReadingBuilder(received=received_ms, protocol="p1")
        meter_time, shape = _generic(builder, text, header_end, self.tz, offset, frame + crc)
        self.generic += 1
        self._sighted((model, *shape), text, header_end)
        ts = parse_timestamp(meter_time, self.tz) if meter_time is not None else None
        return builder.build(ts=ts, crc=status, meter_model=model)

    def parse_telegram(self, telegram: bytes, received_ms: int) -> Reading:
        """One complete telegram (`/` through `!CRC`, trailing line end optional).

        A telegram whose end is known by other means (decrypted from a DLMS frame) may lack the
        `!` line; it is accepted with `crc="absent"`. Raises `DecodeError`."""
        start = telegram.find(b"/")
        if start < 0:
            raise DecodeError("parse_error", "no '/' starting a telegram", offset=0, raw=telegram)
        end = telegram.rfind(b"!")
        if end < start:
            return self.parse_frame(telegram[start:], b"", received_ms)
        trailer = _TRAILER.match(telegram, end + 1)
        if trailer is None:
            raise DecodeError(
                "parse_error",
                f"{telegram[end + 1 : end + 9]!r} after '!' is not a CRC and a line end",
                offset=end,
                raw=telegram,
            )
        return self.parse_frame(telegram[start : end + 1], trailer.group(1), received_ms, start)

    def _sighted(self, shape: Shape, text: str, header_end: int) -> None:
        """Count a shape read line by line; compile its layout on the second sighting (and, if
        that made none, every `RETRY_EVERY`th: an odd line may have been passing)."""
        sightings = self.sightings
        count = sightings.get(shape, 0) + 1
        if len(sightings) >= MAX_SHAPES and count == 1:
            sightings.clear()  # many one-off shapes: forget them rather than grow
        sightings[shape] = count
        if count != 2 and count % RETRY_EVERY != 0:
            return
        layout = compile_layout(shape, text, header_end)
        if layout is None:
            return
        self.compiled += 1
        self._order = [k for k in self._order if k.shape != shape][-(MAX_LAYOUTS - 1) :]
        self._order.append(layout)
        self.layouts = {}
        for kept in self._order:
            self.layouts.setdefault(kept.shape[0], []).append(kept)


def parse_telegram(
    telegram: bytes,
    *,
    received_ms: int,
    tz: ZoneInfo | str = DEFAULT_TIMEZONE,
    check_crc: bool = True,
) -> Reading:
    """One complete telegram read by a fresh `P1Parser` (see `P1Parser.parse_telegram`)."""
    return P1Parser(tz=tz, check_crc=check_crc).parse_telegram(telegram, received_ms)


def _generic(
    builder: ReadingBuilder,
    text: str,
    header_end: int,
    tz: ZoneInfo,
    offset: int | None,
    raw: bytes,
) -> tuple[str | None, tuple[tuple[str, str, int], ...]]:
    """Every data line, one at a time, whatever its shape. Returns the meter time as sent and
    the telegram's shape: (code, unit, groups) of each line."""
    arrays, tariffs, scalars = builder.arrays, builder.tariffs, builder.scalars
    extras = builder.extras
    meter_time: str | None = None
    secondary_id: str | None = None
    shape: list[tuple[str, str, int]] = []
    for code, value, unit, rest in _LINE.findall(text, header_end):
        groups = [value + ("*" + unit if unit else ""), *_GROUP.findall(rest)] if rest else None
        count = len(groups) if groups is not None else 1
        line = decide(code, unit, count)
        does = line.does
        if does is Does.NOT_DATA:
            continue  # noise the CRC did not catch, or CRC checking is off
        shape.append((code, unit, count))
        if does is Does.ARRAY or does is Does.TARIFF or does is Does.COUNT or does is Does.SCALAR:
            try:
                figure = float(value)
            except ValueError:
                extras[code] = extra(value, unit or None)
                continue
            if line.factor != 1.0:
                figure = round(figure * line.factor, 6)
            if does is Does.ARRAY:
                arrays[line.key][line.position] = figure
            elif does is Does.TARIFF:
                tariffs[line.key] = figure
            elif does is Does.COUNT:
                scalars[line.key] = int(figure)
            else:
                scalars[line.key] = figure
        elif does is Does.METER_TIME:
            meter_time = scalars["meter_time"] = value
        elif does is Does.TEXT:
            scalars[line.key] = value
        elif does is Does.EXTRA:
            extras[line.key] = extra(value, unit or None)
        elif does is Does.SECONDARY_ID:
            secondary_id = value
        elif does is Does.MBUS_TYPE:
            builder.submeter(line.position, device_type=device_type(value))
        elif does is Does.MBUS_ID:
            builder.submeter(line.position, id=value)
        elif does is Does.MBUS_READING:
            assert groups is not None
            reading, reading_unit = split_group(groups[1])
            builder.submeter(
                line.position,
                value=number(reading),
                unit=reading_unit,
                ts=parse_timestamp(groups[0], tz),
            )
        else:  # Does.GROUPS
            extras[line.key] = groups
    if not shape:
        raise DecodeError(
            "parse_error", "telegram holds no OBIS data lines", offset=offset, raw=raw
        )
    if secondary_id is not None:
        if "meter_id" in scalars:
            extras["0-0:96.1.1"] = secondary_id
        else:
            scalars["meter_id"] = secondary_id
    if "0-1:24.3.0" in text or ":24.3.0(" in text:
        _old_gas(builder, text, tz)
    return meter_time, tuple(shape)


def _old_gas(builder: ReadingBuilder, text: str, tz: ZoneInfo) -> None:
    for channel, stamp, unit, value in _OLD_GAS.findall(text):
        builder.submeter(
            int(channel),
            value=number(value),
            unit=unit or None,
            ts=parse_timestamp(stamp, tz),
        )
        builder.extras.pop(f"0-{channel}:24.3.0", None)
