"""Turn the registers a parser found into one `Reading`, with the derived values filled in.

Both the P1 parser and the DLMS decoder feed a `ReadingBuilder` register by register (OBIS code,
value, unit as sent) and call `build`. The derivations live here, once:
- `ic`/`ec`/`ric`/`rec`: the total register when sent, else the sum of the tariff registers;
- a total power absent from the telegram: the sum of the phases that were sent;
- `p = pi - pe` and `r = qi - qe`, element by element; a value no register gave stays `None`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

from shared.reading import CrcStatus, Reading, SubMeter

from .obis import DEFAULT_UNITS, UNIT_FACTORS, Kind, convert, describe, normalise_text_code

_TOTALS = {"ic": "1.8.", "ec": "2.8.", "ric": "3.8.", "rec": "4.8."}


def sum_present(values: list[float | None]) -> float | None:
    """The sum of the values present (6 decimals), None when none is."""
    present = [v for v in values if v is not None]
    return round(sum(present), 6) if present else None


def _difference(plus: float | None, minus: float | None) -> float | None:
    if plus is None and minus is None:
        return None
    return round((plus or 0.0) - (minus or 0.0), 6)


def _whole_difference(plus: float, minus: float) -> float:
    difference = float(plus - minus)
    # round() of a whole number is that number: skip the (slow) call for the usual W values
    return difference if difference.is_integer() else round(difference, 6)


def differences(plus: list[float | None], minus: list[float | None]) -> list[float | None]:
    """`plus - minus` element by element (None where neither is present), faster when no value is missing (the usual case)."""
    if None in plus or None in minus:
        return [_difference(a, b) for a, b in zip(plus, minus, strict=True)]
    return list(map(_whole_difference, plus, minus))  # type: ignore[arg-type]


class Slot(NamedTuple):
    """Where a numeric register's value goes in a `ReadingBuilder`, precomputed per (code, unit)
    so a fast parser can store values without walking the tables for every line."""

    target: str  # "arrays" | "tariffs" | "scalars" | "counts"
    key: str  # the array or scalar field, or the tariff name ("1.8.1")
    position: int  # index into the array (0 when not an array)
    factor: float  # multiply the number as sent by this to get the reading's unit


@lru_cache(maxsize=4096)
def numeric_slot(code: str, unit: str | None) -> Slot | None:
    """The slot of a numeric register `code` (as sent; `1-1:` is read as `1-0:`) in `unit`; None when `ReadingBuilder.add` must
    decide instead (unknown code, text or time register, or a unit that does not fit)."""
    code = normalise_text_code(code)
    register = describe(code)
    if register is None or register.kind in (Kind.TEXT, Kind.TIME):
        return None
    spelled = DEFAULT_UNITS.get(register.kind, "") if unit is None else unit.strip().lower()
    factor = UNIT_FACTORS.get(register.kind, {}).get(spelled)
    if factor is None:
        return None
    if register.field == "tariffs":
        return Slot("tariffs", code.split(":", 1)[1], 0, factor)
    if register.position is not None:
        return Slot("arrays", register.field, register.position, factor)
    if register.kind is Kind.COUNT:
        return Slot("counts", register.field, 0, factor)
    return Slot("scalars", register.field, 0, factor)


class ReadingBuilder:
    """Collects registers of one telegram or frame; `build` makes the `Reading`."""

    def __init__(self, *, received: int, protocol: str) -> None:
        self.received = received
        self.protocol = protocol
        self.scalars: dict[str, Any] = {}
        self.arrays: dict[str, list[float | None]] = {
            "pi": [None] * 4,
            "pe": [None] * 4,
            "qi": [None] * 4,
            "qe": [None] * 4,
            "u": [None] * 3,
            "i": [None] * 3,
        }
        self.tariffs: dict[str, float] = {}
        self.submeters: dict[int, SubMeter] = {}
        self.extras: dict[str, Any] = {}

    def add(self, code: str, value: Any, unit: str | None = None) -> None:
        """One register: `code` normalised (see `obis.obis_key`), `value` a number or text.

        Raises `obis.UnitError` when a known register comes with a unit that does not fit.
        Unknown codes, and known codes whose value is not of their kind, go to `extras`.
        """
        register = describe(code)
        if register is None:
            self.extras[code] = value if unit is None else {"value": value, "unit": unit}
            return
        kind = register.kind
        if kind in (Kind.TEXT, Kind.TIME):
            self.scalars[register.field] = str(value)
            return
        if not isinstance(value, int | float):
            self.extras[code] = value
            return
        number = convert(kind, float(value), unit)
        if register.field == "tariffs":
            self.tariffs[code.split(":", 1)[1]] = number
        elif register.position is not None:
            self.arrays[register.field][register.position] = number
        elif kind is Kind.COUNT:
            self.scalars[register.field] = int(number)
        else:
            self.scalars[register.field] = number

    def submeter(self, channel: int, **fields: Any) -> None:
        """Set fields of the M-Bus device on `channel` (device_type, id, value, unit, ts)."""
        current = self.submeters.get(channel) or SubMeter(channel=channel)
        for name, value in fields.items():
            setattr(current, name, value)
        self.submeters[channel] = current

    def build(
        self,
        *,
        ts: int | None,
        crc: CrcStatus,
        meter_model: str | None = None,
    ) -> Reading:
        """The reading; `ts` is the meter's clock in ms, or None to use the receive time."""
        # Straight-line code (no helper calls): this runs for every telegram, on the hot path.
        scalars, tariffs, arrays = self.scalars, self.tariffs, self.arrays
        get = scalars.get
        totals = [get(field) for field in _TOTALS]
        if tariffs:
            for n, prefix in enumerate(_TOTALS.values()):
                if totals[n] is None:
                    totals[n] = sum_present([v for k, v in tariffs.items() if k.startswith(prefix)])
        pi, pe, qi, qe = arrays["pi"], arrays["pe"], arrays["qi"], arrays["qe"]
        if pi[0] is None:
            pi[0] = sum_present(pi[1:])
        if pe[0] is None:
            pe[0] = sum_present(pe[1:])
        if qi[0] is None:
            qi[0] = sum_present(qi[1:])
        if qe[0] is None:
            qe[0] = sum_present(qe[1:])
        return Reading(
            ts=ts if ts is not None else self.received,
            received=self.received,
            ic=totals[0],
            ec=totals[1],
            ric=totals[2],
            rec=totals[3],
            p=differences(pi, pe),
            pi=pi,
            pe=pe,
            r=differences(qi, qe),
            u=arrays["u"],
            i=arrays["i"],
            meter_id=get("meter_id"),
            meter_model=meter_model,
            meter_time=get("meter_time"),
            tariffs=tariffs,
            tariff=get("tariff"),
            frequency=get("frequency"),
            power_failures=get("power_failures"),
            long_power_failures=get("long_power_failures"),
            submeters=[self.submeters[k] for k in sorted(self.submeters)] if self.submeters else [],
            crc=crc,
            protocol=self.protocol,
            extras=self.extras,
        )
