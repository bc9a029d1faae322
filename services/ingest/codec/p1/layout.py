"""A telegram layout compiled into a regex and straight-line code: the P1 fast path.

A meter sends the same lines every few seconds with only the values changed. `compile_layout`
takes one telegram of a shape (its header, and the code, unit and number of groups of each line)
and makes a `Layout`: a regex matching any telegram of that shape and capturing every value, and
a generated `read(values, received, tz, crc, model)` building the `Reading` directly, with each
line doing what `lines.decide` says and the derived values (totals, sums of phases, net power)
computed as `reading_builder.ReadingBuilder.build` computes them. Which lines exist is fixed by
the shape, so every decision that does not depend on a value is taken here, once.

A value the generated code cannot read as its line needs (a number that is not one) raises
`ValueError`, and the parser reads that telegram line by line instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from shared.reading import CrcStatus, Reading, SubMeter

from ..reading_builder import differences, sum_present
from .clock import parse_timestamp
from .lines import Does, decide, device_type, extra, number

Shape = tuple[Any, ...]  # (header, (code, unit, groups) per data line, ...)
Read = Callable[[tuple[str, ...], int, ZoneInfo, CrcStatus, str], Reading]

# A line a layout can hold: code, first group (value, `*`, unit), more groups, CR.
_FULL = re.compile(r"(\d[^()\r\n]*)\(([^*()\r\n]*)(\*?)([^()\r\n]*)\)((?:\([^()\r\n]*\))*)(\r?)")
_GROUP = re.compile(r"\(([^()\r\n]*)\)")
_KILO = re.compile(r"\d+\.(\d{1,3})")  # a kW value whose point can be moved exactly
_ANY = r"\(([^()\r\n]*)\)"
_ARRAYS = (("pi", 4), ("pe", 4), ("qi", 4), ("qe", 4), ("u", 3), ("i", 3))
_TOTALS = (("ic", "1.8."), ("ec", "2.8."), ("ric", "3.8."), ("rec", "4.8."))
_SCALARS = (
    *("meter_id", "meter_time", "tariff", "frequency"),
    *("power_failures", "long_power_failures"),
)
_NAMESPACE: dict[str, Any] = {
    "Reading": Reading,
    "SubMeter": SubMeter,
    "_sum": sum_present,
    "_differences": differences,
    "_timestamp": parse_timestamp,
    "_extra": extra,
    "_number": number,
    "_device_type": device_type,
}


class Layout(NamedTuple):
    shape: Shape
    pattern: re.Pattern[str]
    read: Read


def _value(unit: str, star: str) -> str:
    """The regex of a group's value: any text, then `*unit` as this telegram sent it."""
    return r"\(([^*()\r\n]*)" + _unit(unit, star)


def _unit(unit: str, star: str) -> str:
    return (r"\*" + re.escape(unit) if star else "") + r"\)"


class _Code:
    """The generated function's body, built line by line."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.arrays: dict[str, set[int]] = {}
        self.scalars: set[str] = set()
        self.submeters: dict[int, set[str]] = {}
        self.tariffs: list[str] = []  # tariff keys in the order the dict gets them
        self.meter_time = False
        self.secondary = False
        self.groups = 0  # capture groups used so far
        self.decimals: int | None = None  # of the line's value when it is `\d+\.\d{1,3}`

    def capture(self) -> str:
        self.groups += 1
        return f"g[{self.groups - 1}]"

    def line(self, does: Does, key: str, position: int, factor: float, value: str) -> None:
        """The statements of a one-group line (value expression `value`)."""
        emit = self.statements.append
        figure = f"float({value})" if factor == 1.0 else f"round(float({value}) * {factor!r}, 6)"
        if factor == 1000.0 and self.decimals is not None:
            # kW with up to 3 decimals to W: move the point (exact, and the same number as
            # round(x * 1000, 6), at a third of the cost); the regex holds the decimals
            figure = f"float({value}.replace('.', ''))"
            if self.decimals < 3:
                figure += f" * {10 ** (3 - self.decimals)}.0"
        if does is Does.ARRAY:
            self.arrays.setdefault(key, set()).add(position)
            emit(f"a_{key}_{position} = {figure}")
        elif does is Does.TARIFF:
            if key not in self.tariffs:
                self.tariffs.append(key)
            emit(f"tariffs[{key!r}] = {figure}")
        elif does is Does.COUNT:
            self.scalars.add(key)
            emit(f"s_{key} = int({figure})")
        elif does is Does.SCALAR:
            self.scalars.add(key)
            emit(f"s_{key} = {figure}")
        elif does is Does.METER_TIME:
            self.meter_time = True
            self.scalars.add("meter_time")
            emit(f"s_meter_time = {value}")
        elif does is Does.TEXT:
            self.scalars.add(key)
            emit(f"s_{key} = {value}")
        elif does is Does.SECONDARY_ID:
            self.secondary = True
            emit(f"secondary = {value}")
        elif does is Does.MBUS_TYPE:
            self.submeters.setdefault(position, set()).add("device_type")
            emit(f"m{position}_device_type = _device_type({value})")
        elif does is Does.MBUS_ID:
            self.submeters.setdefault(position, set()).add("id")
            emit(f"m{position}_id = {value}")

    def source(self) -> str:
        """The whole function."""
        body = ["extras = {}", "tariffs = {}", *self.statements]
        if self.secondary:
            if "meter_id" in self.scalars:
                body.append("extras['0-0:96.1.1'] = secondary")
            else:
                self.scalars.add("meter_id")
                body.append("s_meter_id = secondary")
        for field, size in _ARRAYS:
            positions = self.arrays.get(field, set())
            items = [f"a_{field}_{n}" if n in positions else "None" for n in range(size)]
            body.append(f"{field} = [{', '.join(items)}]")
            if size == 4 and positions and 0 not in positions:
                body.append(f"{field}[0] = _sum({field}[1:])")
        totals = {}
        for field, prefix in _TOTALS:
            if field in self.scalars:
                totals[field] = f"s_{field}"
            else:  # the sum of its tariffs, in the order `ReadingBuilder.build` adds them
                summed = [f"tariffs[{k!r}]" for k in self.tariffs if k.startswith(prefix)]
                totals[field] = f"round(sum([{', '.join(summed)}]), 6)" if summed else "None"
        if self.meter_time:
            body.append("ts = _timestamp(s_meter_time, tz)")
            body.append("if ts is None:\n        ts = received")
        else:
            body.append("ts = received")
        submeters = []
        for channel in sorted(self.submeters):
            known = "".join(f", {f}=m{channel}_{f}" for f in sorted(self.submeters[channel]))
            submeters.append(f"SubMeter(channel={channel}{known})")
        scalars = {f: (f"s_{f}" if f in self.scalars else "None") for f in _SCALARS}
        fields = [
            "ts=ts",
            "received=received",
            *(f"{field}={total}" for field, total in totals.items()),
            "p=_differences(pi, pe)",
            "pi=pi",
            "pe=pe",
            "r=_differences(qi, qe)",
            "u=u",
            "i=i",
            "meter_model=model",
            "tariffs=tariffs",
            *(f"{field}={value}" for field, value in scalars.items()),
            f"submeters=[{', '.join(submeters)}]",
            "crc=crc",
            "protocol='p1'",
            "extras=extras",
        ]
        body.append(f"return Reading({', '.join(fields)})")
        return "def read(g, received, tz, crc, model):\n" + "".join(f"    {s}\n" for s in body)


def compile_layout(shape: Shape, text: str, header_end: int) -> Layout | None:
    """The layout of `text` (a telegram of `shape` that parsed line by line; its header line
    ends at `header_end`), or None when a line is of no shape a layout holds."""
    end = text.rfind("!")
    if end < 0:
        end = len(text)
    if "0-1:24.3.0" in text or ":24.3.0(" in text:
        return None  # DSMR 2.2/3 gas: its value is on the next line
    lines = text[header_end + 1 : end].split("\n")
    # After the last line end: what precedes '!' on its line (nothing in a well-formed telegram),
    # or, in a telegram without a '!' line (decrypted ones), its last data line.
    last = lines.pop() if end < len(text) else ""
    pieces = []
    code = _Code()
    for line in lines:
        if line in ("", "\r"):
            pieces.append(re.escape(line))
            continue
        regex = _line(code, line)
        if regex is None:
            return None
        pieces.append(regex)
    if code.groups == 0:
        return None
    pattern = "\n" + "\n".join(pieces)
    if end < len(text):
        pattern += "\n" + re.escape(last + text[end:])
    namespace = dict(_NAMESPACE)
    exec(compile(code.source(), f"<p1 layout {shape[0]!r}>", "exec"), namespace)
    return Layout(shape, re.compile(pattern, re.S), namespace["read"])


def _line(code: _Code, line: str) -> str | None:
    """The regex of one data line, its statements added to `code`; None when a layout cannot
    hold the line."""
    match = _FULL.fullmatch(line)
    if match is None:
        return None
    obis, _sample, star, unit, rest, cr = match.groups()
    more = _GROUP.findall(rest)
    spec = decide(obis, unit, 1 + len(more))
    if spec.does is Does.NOT_DATA:
        return None
    regex = re.escape(obis) + _value(unit, star)
    value = code.capture()
    decimals = _KILO.fullmatch(_sample)
    code.decimals = None
    if spec.factor == 1000.0 and spec.does is not Does.EXTRA and decimals is not None:
        code.decimals = len(decimals.group(1))
        regex = re.escape(obis) + rf"\((\d+\.\d{{{code.decimals}}})" + _unit(unit, star)
    first = f"{value} + {'*' + unit!r}" if unit else value  # the first group as sent
    if spec.does is Does.MBUS_READING:
        reading, star2, unit2 = more[0].partition("*")
        regex += _value(unit2, star2)
        figure = code.capture()
        channel = spec.position
        code.submeters.setdefault(channel, set()).update(("value", "unit", "ts"))
        code.statements += [
            f"m{channel}_value = _number({figure})",
            f"m{channel}_unit = {(unit2 if star2 else None)!r}",
            f"m{channel}_ts = _timestamp({first}, tz)",
        ]
    elif spec.does is Does.GROUPS:
        regex += _ANY * len(more)
        rest_values = [code.capture() for _ in more]
        code.statements.append(f"extras[{spec.key!r}] = [{', '.join([first, *rest_values])}]")
    elif spec.does is Does.EXTRA and not unit:
        code.statements.append(f"extras[{spec.key!r}] = {value}")  # = _extra(value, None)
    elif spec.does is Does.EXTRA:
        code.statements.append(f"extras[{spec.key!r}] = _extra({value}, {unit!r})")
    else:
        code.line(spec.does, spec.key, spec.position, spec.factor, value)
    return regex + re.escape(cr)
