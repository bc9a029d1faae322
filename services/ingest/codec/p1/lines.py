"""What one P1 data line does to a reading, decided from its code, its unit and how many `(...)`
groups it has: never from its values. Both ways of reading a telegram use this one decision:
the line-by-line path (`parser.P1Parser`) applies it to each line, and a compiled layout
(`layout.compile_layout`) turns it into straight-line code once per telegram shape.
"""

from __future__ import annotations

import re
from enum import Enum
from functools import lru_cache
from typing import Any, NamedTuple

from ..obis import Kind, describe, normalise_text_code
from ..reading_builder import numeric_slot

# A valid OBIS code as P1 writes it; other "lines" are noise the CRC did not catch.
CODE = re.compile(r"\d{1,3}-\d{1,3}:\d{1,3}\.\d{1,3}\.\d{1,3}")

# M-Bus sub-meter registers (0-n:...): which `SubMeter` field each one fills.
_MBUS_FIELDS = {"24.1.0": "device_type", "96.1.0": "id", "96.1.1": "id"}
_MBUS_READINGS = ("24.2.1", "24.2.3", "24.2.2")  # (timestamp)(value*unit)


class Does(Enum):
    """The kinds of line."""

    ARRAY = "array"  # a phase or total of pi/pe/qi/qe/u/i: arrays[key][position]
    TARIFF = "tariff"  # a tariff register: tariffs[key]
    COUNT = "count"  # a counter: scalars[key] = int(value)
    SCALAR = "scalar"  # a number: scalars[key]
    METER_TIME = "meter_time"  # 0-0:1.0.0: the meter clock
    SECONDARY_ID = "secondary_id"  # 0-0:96.1.1: the meter id unless 0-0:96.1.0 gives one
    MBUS_TYPE = "mbus_type"  # 0-n:24.1.0: device type of M-Bus device n
    MBUS_ID = "mbus_id"  # 0-n:96.1.0 / 96.1.1: its id
    MBUS_READING = "mbus_reading"  # 0-n:24.2.x(timestamp)(value*unit): its reading
    TEXT = "text"  # a text register: scalars[key] = value as sent
    EXTRA = "extra"  # anything else with one group: extras[key] = value (and unit)
    GROUPS = "groups"  # anything else with several groups: extras[key] = [groups as sent]
    NOT_DATA = "not_data"  # not an OBIS line: skipped


class Line(NamedTuple):
    does: Does
    key: str = ""  # the field, tariff or extras key
    position: int = 0  # index into the array (ARRAY); M-Bus channel (MBUS_*)
    factor: float = 1.0  # multiply the number as sent by this for the reading's unit


_SLOT_KINDS = {"arrays": Does.ARRAY, "tariffs": Does.TARIFF, "counts": Does.COUNT}
_NOT_DATA = Line(Does.NOT_DATA)


@lru_cache(maxsize=4096)
def decide(code: str, unit: str, groups: int) -> Line:
    """What a line with `code`, first-group `unit` (as sent, "" when none) and `groups` groups
    does. Pure, so memoised: a meter repeats the same few lines."""
    if groups > 1:
        if CODE.fullmatch(code) is None:
            return _NOT_DATA
        channel, _, register = code[2:].partition(":")
        if code[0] == "0" and register in _MBUS_READINGS and groups == 2:
            return Line(Does.MBUS_READING, position=int(channel))
        return Line(Does.GROUPS, code)
    slot = numeric_slot(code, unit or None)
    if slot is not None:
        return Line(_SLOT_KINDS.get(slot.target, Does.SCALAR), slot.key, slot.position, slot.factor)
    if CODE.fullmatch(code) is None:
        return _NOT_DATA
    if code.startswith("0-0:"):
        if code == "0-0:1.0.0":
            return Line(Does.METER_TIME, "meter_time")
        if code == "0-0:96.1.1":  # equipment id; 96.1.0 wins when a meter sends both
            return Line(Does.SECONDARY_ID, code)
    elif code[0] == "0":
        channel, _, register = code[2:].partition(":")
        field = _MBUS_FIELDS.get(register)
        if field is not None and int(channel) != 0:
            kind = Does.MBUS_TYPE if field == "device_type" else Does.MBUS_ID
            return Line(kind, field, int(channel))
    else:
        code = normalise_text_code(code)
    known = describe(code)
    if known is not None and known.kind in (Kind.TEXT, Kind.TIME):
        return Line(Does.TEXT, known.field)
    return Line(Does.EXTRA, code)  # unknown, or a known number with a unit that does not fit


def number(text: str) -> float | None:
    """The number a value spells, or None."""
    try:
        return float(text)
    except ValueError:
        return None


def device_type(text: str) -> int | None:
    """An M-Bus device type as sent (`003`), or None when it is no number."""
    value = number(text)
    return int(value) if value is not None else None


def extra(text: str, unit: str | None) -> Any:
    """An extra register as kept in `Reading.extras`: the text as sent, or value and unit."""
    if unit is None:
        return text
    value = number(text)
    return {"value": text if value is None else value, "unit": unit}


def split_group(group: str) -> tuple[str, str | None]:
    """`12.3*m3` -> ("12.3", "m3"); `12.3` -> ("12.3", None)."""
    value, star, unit = group.partition("*")
    return value, (unit if star else None)
