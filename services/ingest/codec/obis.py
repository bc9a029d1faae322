"""The OBIS-code map: which meter register lands in which field of a `Reading`, in which unit.

P1 telegrams name registers as text (`1-0:21.7.0`), DLMS frames as six bytes (1.0.21.7.0.255);
both are normalised by `obis_key` and looked up in `OBIS`, one table walked by `describe`.
Codes that are not in the table are kept in the reading's `extras`, never dropped.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple


class Kind(Enum):
    """What a register measures; decides the unit it is converted to."""

    ENERGY = "kWh"
    REACTIVE_ENERGY = "kvarh"
    POWER = "W"
    REACTIVE_POWER = "var"
    VOLTAGE = "V"
    CURRENT = "A"
    FREQUENCY = "Hz"
    COUNT = ""
    TEXT = "text"
    TIME = "time"


class Register(NamedTuple):
    """Where one OBIS register goes: a `Reading` field, an array index when the field is one."""

    field: str
    position: int | None
    kind: Kind


E, RE, P, RP = Kind.ENERGY, Kind.REACTIVE_ENERGY, Kind.POWER, Kind.REACTIVE_POWER

OBIS: dict[str, Register] = {
    # Energy registers: totals, and tariff registers that sum to the total when it is absent.
    "1-0:1.8.0": Register("ic", None, E),
    "1-0:2.8.0": Register("ec", None, E),
    "1-0:3.8.0": Register("ric", None, RE),
    "1-0:4.8.0": Register("rec", None, RE),
    **{f"1-0:{c}.8.{t}": Register("tariffs", None, E) for c in (1, 2) for t in (1, 2, 3, 4)},
    **{f"1-0:{c}.8.{t}": Register("tariffs", None, RE) for c in (3, 4) for t in (1, 2, 3, 4)},
    # Active power, import (pi) and export (pe): [total, L1, L2, L3].
    "1-0:1.7.0": Register("pi", 0, P),
    "1-0:21.7.0": Register("pi", 1, P),
    "1-0:41.7.0": Register("pi", 2, P),
    "1-0:61.7.0": Register("pi", 3, P),
    "1-0:2.7.0": Register("pe", 0, P),
    "1-0:22.7.0": Register("pe", 1, P),
    "1-0:42.7.0": Register("pe", 2, P),
    "1-0:62.7.0": Register("pe", 3, P),
    # Reactive power, import (qi) and export (qe); the reading's `r` is qi - qe.
    "1-0:3.7.0": Register("qi", 0, RP),
    "1-0:23.7.0": Register("qi", 1, RP),
    "1-0:43.7.0": Register("qi", 2, RP),
    "1-0:63.7.0": Register("qi", 3, RP),
    "1-0:4.7.0": Register("qe", 0, RP),
    "1-0:24.7.0": Register("qe", 1, RP),
    "1-0:44.7.0": Register("qe", 2, RP),
    "1-0:64.7.0": Register("qe", 3, RP),
    # Phase voltages and currents: [L1, L2, L3].
    "1-0:32.7.0": Register("u", 0, Kind.VOLTAGE),
    "1-0:52.7.0": Register("u", 1, Kind.VOLTAGE),
    "1-0:72.7.0": Register("u", 2, Kind.VOLTAGE),
    "1-0:31.7.0": Register("i", 0, Kind.CURRENT),
    "1-0:51.7.0": Register("i", 1, Kind.CURRENT),
    "1-0:71.7.0": Register("i", 2, Kind.CURRENT),
    "1-0:14.7.0": Register("frequency", None, Kind.FREQUENCY),
    # Identity, clock and counters.
    "0-0:96.1.0": Register("meter_id", None, Kind.TEXT),
    "0-0:96.1.1": Register("meter_id", None, Kind.TEXT),
    "0-0:96.14.0": Register("tariff", None, Kind.TEXT),
    "0-0:1.0.0": Register("meter_time", None, Kind.TIME),
    "0-0:96.7.21": Register("power_failures", None, Kind.COUNT),
    "0-0:96.7.9": Register("long_power_failures", None, Kind.COUNT),
}

# Unit spellings meters use, folded to lower case, and the factor to the reading's unit per kind.
UNIT_FACTORS: dict[Kind, dict[str, float]] = {
    Kind.ENERGY: {"kwh": 1.0, "wh": 0.001, "mwh": 1000.0},
    # Some meters label reactive registers kVAh/kVA (seen in the wild); read them as kvarh/kvar.
    Kind.REACTIVE_ENERGY: {"kvarh": 1.0, "varh": 0.001, "mvarh": 1000.0, "kvah": 1.0, "vah": 0.001},
    Kind.POWER: {"kw": 1000.0, "w": 1.0, "mw": 1_000_000.0},
    Kind.REACTIVE_POWER: {"kvar": 1000.0, "var": 1.0, "kva": 1000.0, "va": 1.0},
    Kind.VOLTAGE: {"v": 1.0, "kv": 1000.0},
    Kind.CURRENT: {"a": 1.0, "ma": 0.001},
    Kind.FREQUENCY: {"hz": 1.0},
    Kind.COUNT: {"": 1.0},
}

# The unit P1 meters mean when a line has none (`1-0:4.7.0(00.007)`): DSMR's k-units.
DEFAULT_UNITS: dict[Kind, str] = {
    Kind.ENERGY: "kwh",
    Kind.REACTIVE_ENERGY: "kvarh",
    Kind.POWER: "kw",
    Kind.REACTIVE_POWER: "kvar",
    Kind.VOLTAGE: "v",
    Kind.CURRENT: "a",
    Kind.FREQUENCY: "hz",
    Kind.COUNT: "",
}


class UnitError(ValueError):
    """A register came with a unit that does not fit what it measures."""


def obis_key(a: int, b: int, c: int, d: int, e: int) -> str:
    """Text form of an OBIS code. Electricity (A=1) registers ignore the channel B, as Kamstrup
    sends 1-1:1.8.0 where others send 1-0:1.8.0."""
    if a == 1:
        b = 0
    return f"{a}-{b}:{c}.{d}.{e}"


def normalise_text_code(code: str) -> str:
    """`1-1:1.8.0` -> `1-0:1.8.0`; other codes unchanged (M-Bus channels 0-n keep their n)."""
    if code.startswith("1-") and not code.startswith("1-0:"):
        colon = code.find(":")
        if colon > 0:
            return "1-0" + code[colon:]
    return code


def describe(code: str) -> Register | None:
    """The register a normalised OBIS code maps to, or None when the code is not in the table."""
    return OBIS.get(code)


def convert(kind: Kind, value: float, unit: str | None) -> float:
    """`value` in `unit` converted to the reading's unit for `kind`; raises `UnitError`."""
    spelled = DEFAULT_UNITS.get(kind, "") if unit is None else unit.strip().lower()
    factor = UNIT_FACTORS.get(kind, {}).get(spelled)
    if factor is None:
        raise UnitError(f"unit {unit!r} does not fit a {kind.name.lower()} register")
    return value if factor == 1.0 else round(value * factor, 6)
