"""The P1 (DSMR 2.2-5.0.2, e-MUCS, Luxembourg Smarty, Nordic SESKO/Swedish) telegram parser.

Consumes one telegram's bytes (`/` ... `!CRC`); produces a `Reading` (through `ReadingBuilder`)
or raises `DecodeError`. `parse_telegram` reads a whole telegram, `parse_frame` one already cut
out of a stream by `decoder.P1Decoder`.

Speed: one regex pass over the telegram's text and a per-(code, unit) slot cache; CRC-16/ARC in C
(`fastcrc`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from fastcrc import crc16 as _crc16

from shared.reading import CrcStatus, Reading

from ..decoded import DecodeError
from ..obis import Kind, describe, normalise_text_code
from ..reading_builder import ReadingBuilder, Slot, numeric_slot
from .clock import DEFAULT_TIMEZONE, parse_timestamp, timezone

# One data line: code, first value, its unit (after `*`), then the rest of the line: more
# "(...)" groups on M-Bus and log lines. Lines of other shapes are not matched.
_LINE = re.compile(r"\n(\d[^()\r\n]*)\(([^*()\r\n]*)\*?([^()\r\n]*)\)([^\r\n]*)")
_CODE = re.compile(r"\d{1,3}-\d{1,3}:\d{1,3}\.\d{1,3}\.\d{1,3}")
_GROUP = re.compile(r"\(([^()\r\n]*)\)")
# DSMR 2.2/3.0 gas: `0-1:24.3.0(ts)(08)(60)(1)(0-1:24.2.1)(m3)` with the value on the next line.
_OLD_GAS = re.compile(
    r"^0-(\d{1,2}):24\.3\.0\(([^()]*)\)(?:\([^()\r\n]*\))*?\(([^()\r\n]*)\)\r?\n\(([^()\r\n]*)\)",
    re.M,
)
_HEX = frozenset(b"0123456789ABCDEFabcdef")
_TRAILER = re.compile(rb"([0-9A-Fa-f]{0,4})[\r\n\t \x00]*\Z")

# M-Bus sub-meter registers (0-n:...): which `SubMeter` field each one fills.
_MBUS_FIELDS = {"24.1.0": "device_type", "96.1.0": "id", "96.1.1": "id"}
_MBUS_READINGS = ("24.2.1", "24.2.3", "24.2.2")  # (timestamp)(value*unit)


_SLOTS: dict[tuple[str, str], Slot | None] = {}
_UNKNOWN = Slot("", "", 0, 0.0)


def _slot(code: str, unit: str) -> Slot | None:
    """`numeric_slot` memoised in a plain dict (cheaper to probe than `lru_cache`), bounded."""
    if len(_SLOTS) > 4096:
        _SLOTS.clear()
    slot = _SLOTS[(code, unit)] = numeric_slot(code, unit or None)
    return slot


def crc16(data: bytes) -> int:
    """CRC-16/ARC (poly 0xA001 reflected, init 0) as P1 telegrams carry it."""
    return int(_crc16.arc(data))


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _value(text: str, unit: str | None) -> Any:
    """An extra register as kept in `Reading.extras`: the text as sent, or value and unit."""
    if unit is None:
        return text
    number = _number(text)
    return {"value": text if number is None else number, "unit": unit}


def _split_group(group: str) -> tuple[str, str | None]:
    value, star, unit = group.partition("*")
    return value, (unit if star else None)


def _check_crc(frame: bytes, sent: bytes, check: bool, offset: int | None) -> CrcStatus:
    if not sent:
        return "absent"
    if not check:
        return "unchecked"
    computed = crc16(frame)
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


def parse_frame(
    frame: bytes,
    crc: bytes,
    *,
    received_ms: int,
    tz: ZoneInfo,
    check_crc: bool = True,
    offset: int | None = None,
) -> Reading:
    """One telegram: `frame` from `/` through `!` (or to its end when a decrypted telegram has no
    `!` line), `crc` the hex digits sent after `!` (b"" when none). Raises `DecodeError`."""
    status = _check_crc(frame, crc, check_crc, offset)
    text = frame.decode("latin-1")
    header_end = text.find("\n")
    if not text.startswith("/") or header_end < 0:
        raise DecodeError(
            "parse_error", "no header line starting with '/'", offset=offset, raw=frame + crc
        )
    model = text[1:header_end].rstrip("\r")
    builder = ReadingBuilder(received=received_ms, protocol="p1")
    layout = _LAYOUTS.get(model, _UNLEARNT)
    meter_time: str | None = None
    done = False
    if layout is not None and layout is not _UNLEARNT:
        match = layout.pattern.fullmatch(text, header_end)
        if match is not None:
            try:
                meter_time = layout.fill(
                    match.groups(), builder.arrays, builder.tariffs, builder.scalars, builder.extras
                )
                done = True
            except ValueError:  # a value that is no number: let the general path judge it
                builder = ReadingBuilder(received=received_ms, protocol="p1")
    if not done:
        meter_time = _generic(builder, text, header_end, tz, offset, frame + crc)
        if layout is not None or _retry_due(model):  # new meter, or its telegrams changed
            _learn(model, text, header_end)
    ts = parse_timestamp(meter_time, tz) if meter_time is not None else None
    return builder.build(ts=ts, crc=status, meter_model=model)


def _generic(
    builder: ReadingBuilder,
    text: str,
    header_end: int,
    tz: ZoneInfo,
    offset: int | None,
    raw: bytes,
) -> str | None:
    """Every data line, one at a time, whatever its shape; returns the meter time as sent."""
    arrays, tariffs, scalars = builder.arrays, builder.tariffs, builder.scalars
    extras = builder.extras
    meter_time: str | None = None
    secondary_id: str | None = None
    registers = 0
    for code, value, unit, rest in _LINE.findall(text, header_end):
        registers += 1
        if rest:
            if _CODE.fullmatch(code) is None:
                registers -= 1
            else:
                _multi(builder, code, value, unit or None, rest, tz)
            continue
        slot = _SLOTS.get((code, unit), _UNKNOWN)
        if slot is _UNKNOWN:
            slot = _slot(code, unit)
        if slot is not None:
            target, key, position, factor = slot
            try:
                number = float(value)
            except ValueError:
                extras[code] = _value(value, unit or None)
                continue
            if factor != 1.0:
                number = round(number * factor, 6)
            if target == "arrays":
                arrays[key][position] = number
            elif target == "tariffs":
                tariffs[key] = number
            elif target == "counts":
                scalars[key] = int(number)
            else:
                scalars[key] = number
            continue
        if _CODE.fullmatch(code) is None:
            registers -= 1
            continue  # not an OBIS line: noise the CRC did not catch, or CRC checking is off
        if code.startswith("0-0:"):
            if code == "0-0:1.0.0":
                meter_time = value
                scalars["meter_time"] = value
                continue
            if code == "0-0:96.1.1":  # equipment id; 96.1.0 wins when a meter sends both
                secondary_id = value
                continue
        elif code[0] == "0":
            if _mbus(builder, code, value, unit):
                continue
        else:
            code = normalise_text_code(code)
        _fallback(builder, code, value, unit or None)
    if registers == 0:
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
    return meter_time


class _Layout(NamedTuple):
    """A meter's telegram shape, learnt from its first telegram: one regex capturing every value
    and a generated function storing them, so later telegrams skip the line-by-line path."""

    pattern: re.Pattern[str]
    fill: Callable[[tuple[str, ...], Any, Any, Any, Any], str | None]


_LAYOUTS: dict[str, _Layout | None] = {}  # None: this meter's telegrams need the general path
_UNLEARNT: Any = object()
# A line the layout path handles: code, value, optional unit; nothing else on the line.
_SIMPLE = re.compile(
    r"(\d{1,3}-\d{1,3}:\d{1,3}\.\d{1,3}\.\d{1,3})\(([^*()\r\n]*)(?:\*([A-Za-z0-9]+))?\)\r?"
)
_VALUE = r"([^*()\r\n]*)"
_KILO_3 = re.compile(r"\d+\.\d{3}")
_KILO_3_VALUE = r"(\d+\.\d{3})"


def _statement(
    code: str, unit: str | None, sample: str, index: int, phases: dict[str, set[int]]
) -> tuple[str, str] | None:
    """The generated line storing value `g[index]` of register `code` and the regex capturing
    it, or None when the register needs the general path (M-Bus, several ids, codes read as
    another code). Array values go to locals `<field>_<position>`, noted in `phases`, made into
    lists at the end. `sample` is the value as this telegram sent it."""
    statement = _store(code, unit, sample, index, phases)
    if statement is None:
        return None
    if _KILO_3.fullmatch(sample) and "replace" in statement:
        return statement, _KILO_3_VALUE
    return statement, _VALUE


def _store(
    code: str, unit: str | None, sample: str, index: int, phases: dict[str, set[int]]
) -> str | None:
    value = f"g[{index}]"
    slot = numeric_slot(code, unit)
    if slot is not None:
        number = f"float({value})"
        if slot.factor == 1000.0 and _KILO_3.fullmatch(sample):
            # kW with 3 decimals to W: move the point (exact; equal to round(x * 1000, 6))
            number = f"float({value}.replace('.', ''))"
        elif slot.factor != 1.0:
            number = f"round({number} * {slot.factor!r}, 6)"
        if slot.target == "arrays":
            phases.setdefault(slot.key, set()).add(slot.position)
            return f"{slot.key}_{slot.position} = {number}"
        if slot.target == "tariffs":
            return f"tariffs[{slot.key!r}] = {number}"
        if slot.target == "counts":
            return f"scalars[{slot.key!r}] = int({number})"
        return f"scalars[{slot.key!r}] = {number}"
    if code == "0-0:1.0.0":
        return f"meter_time = scalars['meter_time'] = {value}"
    if code == "0-0:96.1.1" or not code.startswith(("0-0:", "1-0:")):
        return None
    register = describe(code)
    if register is None:
        return f"extras[{code!r}] = _value({value}, {unit!r})"
    if register.kind in (Kind.TEXT, Kind.TIME):
        return f"scalars[{register.field!r}] = {value}"
    return None  # a numeric register with a unit that does not fit


_REFUSALS: dict[str, int] = {}


def _retry_due(model: str) -> bool:
    """For a meter whose telegram made no layout: try again every 256th telegram (an odd line,
    such as an occasional text message, should not cost the fast path for ever)."""
    count = _REFUSALS[model] = _REFUSALS.get(model, 0) + 1
    if len(_REFUSALS) > 64:
        _REFUSALS.clear()
    return count % 256 == 0


def _learn(model: str, text: str, header_end: int) -> None:
    """Make (or refuse: None) the layout for this header from a telegram that parsed."""
    if len(_LAYOUTS) > 64:
        _LAYOUTS.clear()
    _LAYOUTS[model] = None
    end = text.rfind("!")
    if end < 0:
        end = len(text)
    pattern = ["\n"]
    statements = ["meter_time = None"]
    phases: dict[str, set[int]] = {}
    lines = text[header_end + 1 : end].split("\n")
    last = lines.pop()  # what precedes '!' on its line: nothing in a well-formed telegram
    for line in lines:
        if line in ("", "\r"):
            pattern.append(re.escape(line) + "\n")
            continue
        match = _SIMPLE.fullmatch(line)
        if match is None:
            return
        code, sample, unit = match.groups()
        made = _statement(code, unit, sample, len(statements) - 1, phases)
        if made is None:
            return
        statement, capture = made
        statements.append(statement)
        head = line[: match.start(2)]
        tail = line[match.end(2) :]
        pattern.append(re.escape(head) + capture + re.escape(tail) + "\n")
    if len(statements) == 1:
        return
    pattern.append(re.escape(last + text[end:]))
    for field, positions in phases.items():
        size = len(ReadingBuilder(received=0, protocol="p1").arrays[field])
        items = ", ".join(f"{field}_{n}" if n in positions else "None" for n in range(size))
        statements.append(f"arrays[{field!r}] = [{items}]")
    source = "def fill(g, arrays, tariffs, scalars, extras):\n"
    source += "".join(f"    {line}\n" for line in statements) + "    return meter_time\n"
    namespace: dict[str, Any] = {"_value": _value}
    exec(compile(source, f"<p1 layout {model!r}>", "exec"), namespace)
    _LAYOUTS[model] = _Layout(re.compile("".join(pattern), re.S), namespace["fill"])


def _fallback(builder: ReadingBuilder, code: str, value: str, unit: str | None) -> None:
    """A line the slot cache could not place: text registers, unknown codes, odd units."""
    register = describe(code)
    if register is None:
        builder.extras[code] = _value(value, unit)
    elif register.kind in (Kind.TEXT, Kind.TIME):
        builder.scalars[register.field] = value
    else:  # a known numeric register with a unit that does not fit: keep it as sent
        builder.extras[code] = _value(value, unit)


def _mbus(builder: ReadingBuilder, code: str, value: str, unit: str | None) -> bool:
    """`0-n:24.1.0` device type and `0-n:96.1.0` id of M-Bus device n; True when handled."""
    channel_text, _, register = code[2:].partition(":")
    channel = int(channel_text)
    if channel == 0:
        return False
    field = _MBUS_FIELDS.get(register)
    if field is None:
        return False
    if field == "device_type":
        number = _number(value)
        builder.submeter(channel, device_type=int(number) if number is not None else None)
    else:
        builder.submeter(channel, id=value)
    return True


def _multi(
    builder: ReadingBuilder, code: str, value: str, unit: str | None, rest: str, tz: ZoneInfo
) -> None:
    """Lines with several groups: M-Bus readings `0-n:24.2.1(ts)(value*unit)`, else extras."""
    groups = [value + ("*" + unit if unit else ""), *_GROUP.findall(rest)]
    channel_text, _, register = code[2:].partition(":")
    if code[0] == "0" and register in _MBUS_READINGS and len(groups) == 2:
        reading, reading_unit = _split_group(groups[1])
        builder.submeter(
            int(channel_text),
            value=_number(reading),
            unit=reading_unit,
            ts=parse_timestamp(groups[0], tz),
        )
        return
    builder.extras[code] = groups


def _old_gas(builder: ReadingBuilder, text: str, tz: ZoneInfo) -> None:
    for channel, stamp, unit, value in _OLD_GAS.findall(text):
        builder.submeter(
            int(channel),
            value=_number(value),
            unit=unit or None,
            ts=parse_timestamp(stamp, tz),
        )
        builder.extras.pop(f"0-{channel}:24.3.0", None)


def parse_telegram(
    telegram: bytes,
    *,
    received_ms: int,
    tz: ZoneInfo | str = DEFAULT_TIMEZONE,
    check_crc: bool = True,
) -> Reading:
    """One complete telegram (`/` through `!CRC`, trailing line end optional) to a `Reading`.

    A telegram whose end is known by other means (decrypted from a DLMS frame) may lack the `!`
    line; it is accepted with `crc="absent"`. Raises `DecodeError`."""
    zone = timezone(tz) if isinstance(tz, str) else tz
    start = telegram.find(b"/")
    if start < 0:
        raise DecodeError("parse_error", "no '/' starting a telegram", offset=0, raw=telegram)
    end = telegram.rfind(b"!")
    if end < start:
        return parse_frame(
            telegram[start:], b"", received_ms=received_ms, tz=zone, check_crc=check_crc
        )
    trailer = _TRAILER.match(telegram, end + 1)
    if trailer is None:
        raise DecodeError(
            "parse_error",
            f"{telegram[end + 1 : end + 9]!r} after '!' is not a CRC and a line end",
            offset=end,
            raw=telegram,
        )
    crc = trailer.group(1)
    return parse_frame(
        telegram[start : end + 1],
        crc,
        received_ms=received_ms,
        tz=zone,
        check_crc=check_crc,
        offset=start,
    )
