"""The register maps as tables, and the one function that turns values into registers.

Consumes a `Reading` (or None before the first one) and the gateway's `Identity`; produces one
register image (16-bit words) per `Block`. Each map is a table of `Point`s: name, register type,
where its value comes from, unit. `encode` walks a table; nothing else knows about a map's layout.

Maps (docs/modbus.md is generated from these tables):
- SunSpec, holding registers from 40000: `SunS`, model 1 (common), model 213 (float32 meter) or
  203 (integer meter with scale factors), end model.
- Eastron SDM630, input registers from 0 (float32, high word first), and its serial number at
  holding register 0xFC00.
- hanport native map, holding registers from 1000: status, then every value of the Cozify message;
  its points are the `register` of the field catalogue's rows (shared/fields.py). From 1100 the
  M-Bus sub-meters (gas, water, heat): value and its own time.

A value the meter did not send is the type's "not implemented" value (float NaN, int16 0x8000,
uint 0xFFFF..., acc32 0, string all zero bytes). Power is import-positive everywhere.
"""

from __future__ import annotations

import functools
import math
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from shared.fields import FIELDS, getter, showing, values
from shared.fields import Value as CatalogueValue
from shared.reading import Reading, SubMeter
from shared.submeters import medium

Space = Literal["holding", "input"]
Value = float | int | str | None


@dataclass(frozen=True)
class RegType:
    """How one value is laid out in registers (big-endian, high word first)."""

    name: str
    size: int  # registers
    fmt: str  # struct format of the whole value
    missing: Any  # the raw "not implemented" value
    low: float | None = None  # integer range that is a real value (None: a float or string)
    high: float | None = None

    @property
    def is_string(self) -> bool:
        return self.fmt.endswith("s")


NAN = math.nan
FLOAT32 = RegType("float32", 2, ">f", NAN)
FLOAT64 = RegType("float64", 4, ">d", NAN)
INT16 = RegType("int16", 1, ">h", -0x8000, -0x7FFF, 0x7FFF)
UINT16 = RegType("uint16", 1, ">H", 0xFFFF, 0, 0xFFFE)
UINT32 = RegType("uint32", 2, ">I", 0xFFFFFFFF, 0, 0xFFFFFFFE)
UINT64 = RegType("uint64", 4, ">Q", 0xFFFFFFFFFFFFFFFF, 0, 0xFFFFFFFFFFFFFFFE)
ACC32 = RegType("acc32", 2, ">I", 0, 0, 0xFFFFFFFF)
SUNSSF = RegType("sunssf", 1, ">h", -0x8000, -10, 10)
BITFIELD32 = RegType("bitfield32", 2, ">I", 0xFFFFFFFF, 0, 0xFFFFFFFE)
PAD = RegType("pad", 1, ">H", 0x8000, 0, 0xFFFF)


def string(registers: int) -> RegType:
    return RegType(f"string{registers * 2}", registers, f"{registers * 2}s", b"")


@dataclass(frozen=True)
class Point:
    """One value in a map.

    `source`: a value name (see `reading_values`), a constant int, or None (not implemented).
    `factor` converts the reading's unit to the register's (kWh -> Wh: 1000). `sf` names the
    scale-factor point of a SunSpec integer; a scale-factor point itself has `exponent`, the
    finest scale it may take. `at` pins the point to an offset in its block (gaps are filled with
    the block's `gap` type, not implemented). `measurement` points answer exception 0x0B while
    the data is stale; `live` points are computed when they are read (age, valid flag).
    """

    name: str
    type: RegType
    source: str | int | None
    unit: str = ""
    doc: str = ""
    factor: float = 1.0
    sf: str | None = None
    exponent: int | None = None
    at: int | None = None
    measurement: bool = True
    live: bool = False


@dataclass(frozen=True)
class Block:
    """A contiguous register range of one map."""

    name: str
    space: Space
    start: int
    points: tuple[Point, ...]
    gap: RegType = FLOAT32
    doc: str = ""

    def layout(self) -> tuple[tuple[int, Point], ...]:
        """(address, point) of every point, in order."""
        return self._layout

    @functools.cached_property
    def _layout(self) -> tuple[tuple[int, Point], ...]:
        out: list[tuple[int, Point]] = []
        offset = 0
        for point in self.points:
            if point.at is not None:
                if point.at < offset or (point.at - offset) % self.gap.size:
                    raise ValueError(f"{self.name}: {point.name} at +{point.at} overlaps")
                offset = point.at
            out.append((self.start + offset, point))
            offset += point.type.size
        return tuple(out)

    @property
    def size(self) -> int:
        address, point = self.layout()[-1]
        return address + point.type.size - self.start

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True)
class Identity:
    """What the gateway says about itself (SunSpec common model, SDM630 serial)."""

    serial: str
    version: str
    unit_id: int | None = None
    manufacturer: str = "hanport"
    model: str = "hanport HAN/P1 gateway"

    def values(self) -> dict[str, Value]:
        return {
            "manufacturer": self.manufacturer,
            "model": self.model,
            "version": self.version,
            "serial": self.serial,
            "serial32": serial32(self.serial),
            "unit": self.unit_id or 1,
        }


def serial32(serial: str) -> int:
    """The serial as a uint32 for SDM630 0xFC00: its last 8 hex digits when it ends in hex
    (`HP0A1B2C3D4E` -> 0x1B2C3D4E), else its CRC-32."""
    tail = serial[-8:]
    try:
        return int(tail, 16) & 0xFFFFFFFF if tail else 0
    except ValueError:
        return zlib.crc32(serial.encode())


# ---------------------------------------------------------------- values of a reading


def _total(values: Sequence[Value]) -> float | None:
    present = [float(v) for v in values if isinstance(v, int | float)]
    return sum(present) if present else None


def _mean(values: Sequence[Value]) -> float | None:
    present = [float(v) for v in values if isinstance(v, int | float)]
    return sum(present) / len(present) if present else None


def _float(value: Value) -> float | None:
    """The value as a float; None when it is not a finite number."""
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _volt_amperes(u: Value, i: Value) -> float:
    voltage, current = _float(u), _float(i)
    return voltage * current if voltage is not None and current is not None else 0.0


def phase_powers(values: Sequence[Value]) -> tuple[list[float | None], bool]:
    """The three phase powers of `values` (`p[0]` to `p[3]`, `u[0]` to `u[2]`, `i[0]` to `i[2]`,
    the order of `_PHASE_INPUTS`) such that they add up to the total, and whether any is an
    estimate. A phase the meter did not send gets a share of what the total leaves, in
    proportion to its U x I (equal shares when no missing phase has both); with no total, or
    every phase sent, they are as sent. Clients that add the phases (openWB) get the total."""
    total, phases = _float(values[0]), [_float(v) for v in values[1:4]]
    missing = [k for k, v in enumerate(phases) if v is None]
    if total is None or not missing:
        return phases, False
    rest = total - sum(v for v in phases if v is not None)
    weights = [_volt_amperes(values[4 + k], values[7 + k]) for k in missing]
    whole = sum(weights)
    for k, weight in zip(missing, weights, strict=True):
        phases[k] = rest * (weight / whole if whole > 0 else 1 / len(missing))
    return phases, True


def _phase_power(phase: int) -> Callable[[Sequence[Value]], float | None]:
    return lambda values: phase_powers(values)[0][phase]


def _estimated(values: Sequence[Value]) -> float:
    return 1.0 if phase_powers(values)[1] else 0.0


_PHASE_INPUTS = ("p[0]", "p[1]", "p[2]", "p[3]", "u[0]", "u[1]", "u[2]", "i[0]", "i[1]", "i[2]")

# Derived values: name -> (how, from which values, what it is for the docs).
DERIVED: dict[str, tuple[Callable[[Sequence[Value]], float | None], tuple[str, ...], str]] = {
    "i_sum": (_total, ("i[0]", "i[1]", "i[2]"), "sum of the phase currents `i`"),
    "i_avg": (_mean, ("i[0]", "i[1]", "i[2]"), "mean of the phase currents `i`"),
    "u_avg": (_mean, ("u[0]", "u[1]", "u[2]"), "mean of the phase voltages `u`"),
    "e_sum": (_total, ("ic", "ec"), "`ic + ec` (SDM630 total kWh)"),
    "re_sum": (_total, ("ric", "rec"), "`ric + rec` (SDM630 total kvarh)"),
    **{
        f"p_l{k + 1}_sdm": (
            _phase_power(k),
            _PHASE_INPUTS,
            f"`p[{k + 1}]`; when the meter does not send it, L{k + 1}'s share of `p[0]` "
            '(estimated, see "Meters that send only a total")',
        )
        for k in range(3)
    },
    "p_estimated": (
        _estimated,
        _PHASE_INPUTS,
        "1 while the SDM630 phase powers (0x0C-0x10) are estimated from `p[0]` because the "
        "meter does not send them, 0 while they are the meter's",
    ),
}
# Values computed when read (see RegisterStore): name -> what it is for the docs.
LIVE = {
    "valid": "1 while the newest reading is younger than HANPORT_MODBUS_STALE_AFTER, else 0",
    "age": "seconds since the gateway received the newest reading (0xFFFFFFFF: none yet)",
}


# every value of the field catalogue (shared/fields.py) by its path: `ic`, `p[0]`, `meter_model`
_READING_VALUES = tuple((value.path, getter(value)) for value in values(FIELDS))

# M-Bus sub-meters in the native map: value name -> (the media it is, unit per unit as sent
# (lower case) -> factor to the register's unit, the register's unit, what it is for the docs).
# Of several sub-meters of one kind, the lowest channel's is served.
SUBMETERS: dict[str, tuple[frozenset[str], dict[str, float], str, str]] = {
    "gas": (frozenset({"gas"}), {"m3": 1.0, "m³": 1.0}, "m³", "gas meter reading"),
    "water": (
        frozenset({"water", "warm_water", "hot_water", "cold_water"}),
        {"m3": 1.0, "m³": 1.0},
        "m³",
        "water meter reading",
    ),
    "heat": (
        frozenset({"heat", "heat_cooling"}),
        {"kwh": 1.0, "mwh": 1000.0, "gj": 1e9 / 3.6e6},
        "kWh",
        "heat meter reading (GJ and MWh converted: 1 GJ = 277.78 kWh)",
    ),
}


def _submeter(subs: Sequence[SubMeter], name: str) -> tuple[float | None, int | None]:
    """The value (in the register's unit) and time (ms) of the sub-meter served as `name`."""
    media, factors, _unit, _doc = SUBMETERS[name]
    for sub in sorted(subs, key=lambda s: s.channel):
        factor = factors.get((sub.unit or "").lower())
        if sub.value is not None and factor is not None and medium(sub) in media:
            return sub.value * factor, sub.ts
    return None, None


def submeter_values(reading: Reading) -> dict[str, Value]:
    """`gas`, `gas_ts`, `water`, `water_ts`, `heat`, `heat_ts` of a reading (None: none)."""
    out: dict[str, Value] = {}
    for name in SUBMETERS:
        out[name], out[f"{name}_ts"] = _submeter(reading.submeters, name)
    return out


def reading_values(reading: Reading | None, identity: Identity) -> dict[str, Value]:
    """Every value a map can name: the reading's fields (`p[0]`...), derived values, identity."""
    values: dict[str, Value] = identity.values()
    if reading is None:
        return values
    for path, value_of in _READING_VALUES:
        values[path] = value_of(reading)
    for name, (how, names, _doc) in DERIVED.items():
        values[name] = how([values.get(n) for n in names])
    values.update(submeter_values(reading))
    return values


# ---------------------------------------------------------------- the encoder


class EncodeError(ValueError):
    """A value did not fit its register type (it is served as not implemented)."""


def _raw(point: Point, value: Value, exponent: int) -> Any:
    """The value in the point's register type, or its `missing` value."""
    kind = point.type
    if value is None:
        return kind.missing
    if kind.is_string:
        return str(value).encode()[: kind.size * 2]
    if isinstance(value, str) or (isinstance(value, float) and not math.isfinite(value)):
        return kind.missing
    number = value * point.factor / (10.0**exponent) if exponent else value * point.factor
    if kind.low is None:
        return float(number)
    whole = round(number)
    if not kind.low <= whole <= (kind.high or 0):
        raise EncodeError(f"{point.name}={value} does not fit {kind.name}")
    return whole


def _exponent(point: Point, points: Sequence[Point], values: Mapping[str, Value]) -> int:
    """The scale factor of a SunSpec scale-factor point: the finest that fits every value."""
    assert point.exponent is not None
    scaled = [p for p in points if p.sf == point.name]
    numbers = []
    for p in scaled:
        value = values.get(p.source) if isinstance(p.source, str) else None
        if isinstance(value, int | float) and math.isfinite(value):
            numbers.append((abs(value * p.factor), p.type.high or 0))
    exponent = point.exponent
    while exponent < 10 and any(n / 10.0**exponent > high for n, high in numbers):
        exponent += 1
    return exponent


def encode(block: Block, values: Mapping[str, Value], errors: list[str] | None = None) -> list[int]:
    """The block's registers for `values`. A value that does not fit its type is served as not
    implemented and its message appended to `errors`."""
    exponents = {
        p.name: _exponent(p, block.points, values) for p in block.points if p.exponent is not None
    }
    words: list[int] = []
    for address, point in block.layout():
        while block.start + len(words) < address:
            words.extend(_words(block.gap, block.gap.missing))
        if point.exponent is not None:
            raw: Any = exponents[point.name]
        elif isinstance(point.source, int):
            raw = point.source  # a constant is sent as written (the end model's 0xFFFF)
        else:
            value = values.get(point.source) if point.source is not None else None
            try:
                raw = _raw(point, value, exponents.get(point.sf or "", 0))
            except (EncodeError, OverflowError) as error:
                if errors is not None:
                    errors.append(str(error))
                raw = point.type.missing
        try:
            words.extend(_words(point.type, raw))
        except (struct.error, OverflowError) as error:
            if errors is not None:
                errors.append(f"{point.name}={raw!r} does not fit {point.type.name}: {error}")
            words.extend(_words(point.type, point.type.missing))
    return words


def _words(kind: RegType, raw: Any) -> list[int]:
    data = struct.pack(kind.fmt, raw)
    return list(struct.unpack(f">{kind.size}H", data))


# ---------------------------------------------------------------- the tables


def _status(name: str, kind: RegType, source: str | int, doc: str, unit: str = "") -> Point:
    return Point(name, kind, source, unit, doc, measurement=False, live=source in LIVE)


def _f32(name: str, source: str | None, unit: str, doc: str, factor: float = 1.0) -> Point:
    return Point(name, FLOAT32, source, unit, doc, factor=factor)


SUNS = (_status("SunS", UINT32, 0x53756E53, "SunSpec marker, the ASCII text `SunS`"),)

COMMON_MODEL = (
    _status("ID", UINT16, 1, "model 1: common"),
    _status("L", UINT16, 66, "model length"),
    _status("Mn", string(16), "manufacturer", "manufacturer"),
    _status("Md", string(16), "model", "model"),
    _status("Opt", string(8), "meter_model", "the meter's model, as it identifies itself"),
    _status("Vr", string(8), "version", "hanport version"),
    _status("SN", string(16), "serial", "the reader's serial (HANPORT_SERIAL)"),
    _status("DA", UINT16, "unit", "device address: HANPORT_MODBUS_UNIT_ID, or 1"),
    _status("Pad", PAD, 0x8000, "padding"),
)

END_MODEL = (
    _status("ID", UINT16, 0xFFFF, "end model"),
    _status("L", UINT16, 0, "end model length"),
)

_NI = None  # the meter does not send it: not implemented

METER_213 = (
    _status("ID", UINT16, 213, "model 213: three-phase wye meter, float32"),
    _status("L", UINT16, 124, "model length"),
    _f32("A", "i_sum", "A", "total current"),
    _f32("AphA", "i[0]", "A", "current L1"),
    _f32("AphB", "i[1]", "A", "current L2"),
    _f32("AphC", "i[2]", "A", "current L3"),
    _f32("PhV", "u_avg", "V", "mean line-to-neutral voltage"),
    _f32("PhVphA", "u[0]", "V", "voltage L1-N"),
    _f32("PhVphB", "u[1]", "V", "voltage L2-N"),
    _f32("PhVphC", "u[2]", "V", "voltage L3-N"),
    _f32("PPV", _NI, "V", "mean line-to-line voltage"),
    _f32("PPVphAB", _NI, "V", "voltage L1-L2"),
    _f32("PPVphBC", _NI, "V", "voltage L2-L3"),
    _f32("PPVphCA", _NI, "V", "voltage L3-L1"),
    _f32("Hz", "frequency", "Hz", "frequency"),
    _f32("W", "p[0]", "W", "active power, import positive"),
    _f32("WphA", "p[1]", "W", "active power L1"),
    _f32("WphB", "p[2]", "W", "active power L2"),
    _f32("WphC", "p[3]", "W", "active power L3"),
    _f32("VA", _NI, "VA", "apparent power"),
    _f32("VAphA", _NI, "VA", "apparent power L1"),
    _f32("VAphB", _NI, "VA", "apparent power L2"),
    _f32("VAphC", _NI, "VA", "apparent power L3"),
    _f32("VAR", "r[0]", "var", "reactive power, import positive"),
    _f32("VARphA", "r[1]", "var", "reactive power L1"),
    _f32("VARphB", "r[2]", "var", "reactive power L2"),
    _f32("VARphC", "r[3]", "var", "reactive power L3"),
    _f32("PF", _NI, "", "power factor"),
    _f32("PFphA", _NI, "", "power factor L1"),
    _f32("PFphB", _NI, "", "power factor L2"),
    _f32("PFphC", _NI, "", "power factor L3"),
    _f32("TotWhExp", "ec", "Wh", "exported active energy", factor=1000),
    _f32("TotWhExpPhA", _NI, "Wh", "exported energy L1"),
    _f32("TotWhExpPhB", _NI, "Wh", "exported energy L2"),
    _f32("TotWhExpPhC", _NI, "Wh", "exported energy L3"),
    _f32("TotWhImp", "ic", "Wh", "imported active energy", factor=1000),
    _f32("TotWhImpPhA", _NI, "Wh", "imported energy L1"),
    _f32("TotWhImpPhB", _NI, "Wh", "imported energy L2"),
    _f32("TotWhImpPhC", _NI, "Wh", "imported energy L3"),
    *(
        _f32(f"TotVAh{d}{ph}", _NI, "VAh", f"{d.lower()}ported apparent energy {ph or 'total'}")
        for d in ("Exp", "Imp")
        for ph in ("", "PhA", "PhB", "PhC")
    ),
    *(
        _f32(f"TotVArh{q}{ph}", _NI, "varh", f"reactive energy {q[-2:]} {ph[-1:] or 'total'}")
        for q in ("ImpQ1", "ImpQ2", "ExpQ3", "ExpQ4")
        for ph in ("", "phA", "phB", "phC")
    ),
    Point("Evt", BITFIELD32, 0, "", "meter events: none"),
)


def _i16(name: str, source: str | None, unit: str, doc: str, sf: str) -> Point:
    return Point(name, INT16, source, unit, doc, sf=sf)


def _acc(name: str, source: str | None, unit: str, doc: str, sf: str, factor: float = 1.0) -> Point:
    return Point(name, ACC32, source, unit, doc, factor=factor, sf=sf)


def _sf(name: str, finest: int) -> Point:
    return Point(name, SUNSSF, None, "", f"scale factor (10^sf), finest {finest}", exponent=finest)


METER_203 = (
    _status("ID", UINT16, 203, "model 203: three-phase wye meter, integers with scale factors"),
    _status("L", UINT16, 105, "model length"),
    _i16("A", "i_sum", "A", "total current", "A_SF"),
    _i16("AphA", "i[0]", "A", "current L1", "A_SF"),
    _i16("AphB", "i[1]", "A", "current L2", "A_SF"),
    _i16("AphC", "i[2]", "A", "current L3", "A_SF"),
    _sf("A_SF", -2),
    _i16("PhV", "u_avg", "V", "mean line-to-neutral voltage", "V_SF"),
    _i16("PhVphA", "u[0]", "V", "voltage L1-N", "V_SF"),
    _i16("PhVphB", "u[1]", "V", "voltage L2-N", "V_SF"),
    _i16("PhVphC", "u[2]", "V", "voltage L3-N", "V_SF"),
    _i16("PPV", _NI, "V", "mean line-to-line voltage", "V_SF"),
    _i16("PhVphAB", _NI, "V", "voltage L1-L2", "V_SF"),
    _i16("PhVphBC", _NI, "V", "voltage L2-L3", "V_SF"),
    _i16("PhVphCA", _NI, "V", "voltage L3-L1", "V_SF"),
    _sf("V_SF", -1),
    _i16("Hz", "frequency", "Hz", "frequency", "Hz_SF"),
    _sf("Hz_SF", -2),
    _i16("W", "p[0]", "W", "active power, import positive", "W_SF"),
    _i16("WphA", "p[1]", "W", "active power L1", "W_SF"),
    _i16("WphB", "p[2]", "W", "active power L2", "W_SF"),
    _i16("WphC", "p[3]", "W", "active power L3", "W_SF"),
    _sf("W_SF", 0),
    _i16("VA", _NI, "VA", "apparent power", "VA_SF"),
    _i16("VAphA", _NI, "VA", "apparent power L1", "VA_SF"),
    _i16("VAphB", _NI, "VA", "apparent power L2", "VA_SF"),
    _i16("VAphC", _NI, "VA", "apparent power L3", "VA_SF"),
    _sf("VA_SF", 0),
    _i16("VAR", "r[0]", "var", "reactive power, import positive", "VAR_SF"),
    _i16("VARphA", "r[1]", "var", "reactive power L1", "VAR_SF"),
    _i16("VARphB", "r[2]", "var", "reactive power L2", "VAR_SF"),
    _i16("VARphC", "r[3]", "var", "reactive power L3", "VAR_SF"),
    _sf("VAR_SF", 0),
    _i16("PF", _NI, "", "power factor", "PF_SF"),
    _i16("PFphA", _NI, "", "power factor L1", "PF_SF"),
    _i16("PFphB", _NI, "", "power factor L2", "PF_SF"),
    _i16("PFphC", _NI, "", "power factor L3", "PF_SF"),
    _sf("PF_SF", -2),
    _acc("TotWhExp", "ec", "Wh", "exported active energy", "TotWh_SF", factor=1000),
    _acc("TotWhExpPhA", _NI, "Wh", "exported energy L1", "TotWh_SF"),
    _acc("TotWhExpPhB", _NI, "Wh", "exported energy L2", "TotWh_SF"),
    _acc("TotWhExpPhC", _NI, "Wh", "exported energy L3", "TotWh_SF"),
    _acc("TotWhImp", "ic", "Wh", "imported active energy", "TotWh_SF", factor=1000),
    _acc("TotWhImpPhA", _NI, "Wh", "imported energy L1", "TotWh_SF"),
    _acc("TotWhImpPhB", _NI, "Wh", "imported energy L2", "TotWh_SF"),
    _acc("TotWhImpPhC", _NI, "Wh", "imported energy L3", "TotWh_SF"),
    _sf("TotWh_SF", 0),
    *(
        _acc(
            f"TotVAh{d}{ph}",
            _NI,
            "VAh",
            f"{d.lower()}ported apparent energy {ph or 'total'}",
            "TotVAh_SF",
        )
        for d in ("Exp", "Imp")
        for ph in ("", "PhA", "PhB", "PhC")
    ),
    _sf("TotVAh_SF", 0),
    *(
        _acc(
            f"TotVArh{q}{ph}",
            _NI,
            "varh",
            f"reactive energy {q[-2:]} {ph[-3:] or 'total'}",
            "TotVArh_SF",
        )
        for q in ("ImpQ1", "ImpQ2", "ExpQ3", "ExpQ4")
        for ph in ("", "PhA", "PhB", "PhC")
    ),
    _sf("TotVArh_SF", 0),
    Point("Evt", BITFIELD32, 0, "", "meter events: none"),
)

METER_MODELS = {213: METER_213, 203: METER_203}
SUNSPEC_BASE = 40000


def _sdm(at: int, name: str, source: str | None, unit: str, factor: float = 1.0) -> Point:
    return Point(name, FLOAT32, source, unit, name, factor=factor, at=at)


SDM630_INPUT = (
    _sdm(0x00, "Phase 1 line to neutral volts", "u[0]", "V"),
    _sdm(0x02, "Phase 2 line to neutral volts", "u[1]", "V"),
    _sdm(0x04, "Phase 3 line to neutral volts", "u[2]", "V"),
    _sdm(0x06, "Phase 1 current", "i[0]", "A"),
    _sdm(0x08, "Phase 2 current", "i[1]", "A"),
    _sdm(0x0A, "Phase 3 current", "i[2]", "A"),
    _sdm(0x0C, "Phase 1 power", "p_l1_sdm", "W"),
    _sdm(0x0E, "Phase 2 power", "p_l2_sdm", "W"),
    _sdm(0x10, "Phase 3 power", "p_l3_sdm", "W"),
    _sdm(0x12, "Phase 1 volt amps", _NI, "VA"),
    _sdm(0x14, "Phase 2 volt amps", _NI, "VA"),
    _sdm(0x16, "Phase 3 volt amps", _NI, "VA"),
    _sdm(0x18, "Phase 1 volt amps reactive", "r[1]", "var"),
    _sdm(0x1A, "Phase 2 volt amps reactive", "r[2]", "var"),
    _sdm(0x1C, "Phase 3 volt amps reactive", "r[3]", "var"),
    _sdm(0x1E, "Phase 1 power factor", _NI, ""),
    _sdm(0x20, "Phase 2 power factor", _NI, ""),
    _sdm(0x22, "Phase 3 power factor", _NI, ""),
    _sdm(0x24, "Phase 1 phase angle", _NI, "°"),
    _sdm(0x26, "Phase 2 phase angle", _NI, "°"),
    _sdm(0x28, "Phase 3 phase angle", _NI, "°"),
    _sdm(0x2A, "Average line to neutral volts", "u_avg", "V"),
    _sdm(0x2E, "Average line current", "i_avg", "A"),
    _sdm(0x30, "Sum of line currents", "i_sum", "A"),
    _sdm(0x34, "Total system power", "p[0]", "W"),
    _sdm(0x38, "Total system volt amps", _NI, "VA"),
    _sdm(0x3C, "Total system VAr", "r[0]", "var"),
    _sdm(0x3E, "Total system power factor", _NI, ""),
    _sdm(0x42, "Total system phase angle", _NI, "°"),
    _sdm(0x46, "Frequency of supply voltages", "frequency", "Hz"),
    _sdm(0x48, "Total import kWh", "ic", "kWh"),
    _sdm(0x4A, "Total export kWh", "ec", "kWh"),
    _sdm(0x4C, "Total import kVArh", "ric", "kvarh"),
    _sdm(0x4E, "Total export kVArh", "rec", "kvarh"),
    _sdm(0x50, "Total VAh", _NI, "kVAh"),
    _sdm(0x52, "Ah", _NI, "Ah"),
    _sdm(0x54, "Total system power demand", _NI, "W"),
    _sdm(0x56, "Maximum total system power demand", _NI, "W"),
    _sdm(0xC8, "Line 1 to Line 2 volts", _NI, "V"),
    _sdm(0xCA, "Line 2 to Line 3 volts", _NI, "V"),
    _sdm(0xCC, "Line 3 to Line 1 volts", _NI, "V"),
    _sdm(0xCE, "Average line to line volts", _NI, "V"),
    _sdm(0xE0, "Neutral current", _NI, "A"),
    _sdm(0x156, "Total kWh (import + export)", "e_sum", "kWh"),
    _sdm(0x158, "Total kVArh (import + export)", "re_sum", "kvarh"),
    *(
        _sdm(0x15A + 2 * n, f"L{n % 3 + 1} {what}", _NI, unit)
        for n, (what, unit) in enumerate(
            [("import kWh", "kWh")] * 3
            + [("export kWh", "kWh")] * 3
            + [("total kWh", "kWh")] * 3
            + [("import kVArh", "kvarh")] * 3
            + [("export kVArh", "kvarh")] * 3
            + [("total kVArh", "kvarh")] * 3
        )
    ),
)

SDM630_HOLDING = (
    _status("Serial number", UINT32, "serial32", "the reader's serial as uint32 (see below)"),
)

NATIVE_BASE = 1000
REGISTER_TYPES = {t.name: t for t in (FLOAT32, FLOAT64, INT16, UINT16, UINT32, UINT64, ACC32)}


def _native(value: CatalogueValue) -> Point:
    """The native map's point of a catalogue value: `register` of its row gives type, address
    (an array's values follow each other) and text (phases add ` total`, ` L1`...)."""
    register = value.field.register
    assert register is not None
    kind = REGISTER_TYPES.get(register.type)
    if kind is None:
        raise ValueError(f"field {value.field.key!r} of shared/fields.py: register type "
                         f"{register.type!r} is not one of {', '.join(REGISTER_TYPES)}")  # fmt: skip
    phase = {None: "", "total": " total"}.get(value.phase, f" {str(value.phase).upper()}")
    address = register.address + (value.index or 0) * kind.size
    return Point(value.path, kind, value.path, value.field.unit, register.doc + phase,
                 at=address - NATIVE_BASE, measurement=not register.status)  # fmt: skip


NATIVE = (
    _status("map version", UINT16, 1, "layout version of this map"),
    _status("data valid", UINT16, "valid", LIVE["valid"]),
    _status("age", UINT32, "age", LIVE["age"], "s"),
    *sorted(
        (_native(value) for value in showing("register", values(FIELDS))),
        key=lambda point: point.at or 0,
    ),
    Point(
        "phase powers estimated",
        UINT16,
        "p_estimated",
        "",
        DERIVED["p_estimated"][2],
        at=1070 - NATIVE_BASE,
    ),  # fmt: skip
)


SUBMETER_BASE = 1100
NATIVE_SUBMETERS = tuple(
    point
    for name, (_media, _factors, unit, doc) in SUBMETERS.items()
    for point in (
        Point(f"{name}", FLOAT64, name, unit, doc),
        Point(f"{name} time", UINT64, f"{name}_ts", "ms", f"{doc}: the sub-meter's own time"),
    )
)


def blocks(sunspec_model: int = 213) -> tuple[Block, ...]:
    """Every block the server answers, for the configured SunSpec meter model."""
    return (
        Block(
            "SunSpec",
            "holding",
            SUNSPEC_BASE,
            SUNS + COMMON_MODEL + METER_MODELS[sunspec_model] + END_MODEL,
            doc="SunSpec: `SunS`, model 1 (common), the meter model, the end model.",
        ),
        Block(
            "SDM630",
            "input",
            0,
            SDM630_INPUT,
            doc="Eastron SDM630-compatible input registers: float32, high word first.",
        ),
        Block(
            "SDM630 serial",
            "holding",
            0xFC00,
            SDM630_HOLDING,
            doc="Eastron SDM630 serial number (holding register 0xFC00, uint32).",
        ),
        Block(
            "native",
            "holding",
            NATIVE_BASE,
            NATIVE,
            doc="hanport native map: status, then every value of the Cozify meter message.",
        ),
        Block(
            "native sub-meters",
            "holding",
            SUBMETER_BASE,
            NATIVE_SUBMETERS,
            gap=FLOAT64,
            doc="hanport native map, M-Bus sub-meters behind the meter (DSMR gas, water, heat): "
            "each value (float64) and its own time (uint64, ms since the epoch); NaN and "
            "0xFFFF... while the meter has none.",
        ),
    )


def check(points: Sequence[Point]) -> None:
    """Raise ValueError when a point names a value no reading, derived value or identity has
    (a misspelt source would otherwise be served as not implemented, silently)."""
    known = {path for path, _value in _READING_VALUES} | set(DERIVED) | set(LIVE)
    known |= {n for name in SUBMETERS for n in (name, f"{name}_ts")}
    known |= set(Identity(serial="", version="").values())
    for name, (_how, names, _doc) in DERIVED.items():
        if not set(names) <= known:
            raise ValueError(f"derived value {name!r} uses unknown {sorted(set(names) - known)}")
    for point in points:
        if isinstance(point.source, str) and point.source not in known:
            raise ValueError(f"register point {point.name!r} names an unknown value "
                             f"{point.source!r}: see reading_values()")  # fmt: skip


def _check_every_block() -> None:
    for model in METER_MODELS:
        for block in blocks(model):
            check(block.points)
            block.layout()  # raises when two points overlap


_check_every_block()  # at import: a wrong table stops the service at start, naming the point
