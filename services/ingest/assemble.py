"""Turn the registers a parser found into one `Reading`, with the derived values filled in.

Both the P1 parser and the DLMS decoder feed a `ReadingBuilder` register by register (OBIS code,
value, unit as sent) and call `build`. The derivations live here, once:
- `ic`/`ec`/`ric`/`rec`: the total register when sent, else the sum of the tariff registers;
- a total power absent from the telegram: the sum of the phases that were sent;
- `p = pi - pe` and `r = qi - qe`, element by element; a value no register gave stays `None`.
"""

from __future__ import annotations

from typing import Any

from shared.reading import CrcStatus, Reading, SubMeter

from .obis import Kind, convert, describe

_TOTALS = {"ic": "1.8.", "ec": "2.8.", "ric": "3.8.", "rec": "4.8."}


def _sum(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present), 6) if present else None


def _difference(plus: float | None, minus: float | None) -> float | None:
    if plus is None and minus is None:
        return None
    return round((plus or 0.0) - (minus or 0.0), 6)


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
        totals: dict[str, float | None] = {}
        for field, prefix in _TOTALS.items():
            total = self.scalars.get(field)
            if total is None:
                total = _sum([v for k, v in self.tariffs.items() if k.startswith(prefix)])
            totals[field] = total
        pi, pe, qi, qe = (self.arrays[k] for k in ("pi", "pe", "qi", "qe"))
        for phases in (pi, pe, qi, qe):
            if phases[0] is None:
                phases[0] = _sum(phases[1:])
        return Reading(
            ts=ts if ts is not None else self.received,
            received=self.received,
            ic=totals["ic"],
            ec=totals["ec"],
            ric=totals["ric"],
            rec=totals["rec"],
            p=[_difference(a, b) for a, b in zip(pi, pe, strict=True)],
            pi=pi,
            pe=pe,
            r=[_difference(a, b) for a, b in zip(qi, qe, strict=True)],
            u=self.arrays["u"],
            i=self.arrays["i"],
            meter_id=self.scalars.get("meter_id"),
            meter_model=meter_model,
            meter_time=self.scalars.get("meter_time"),
            tariffs=self.tariffs,
            tariff=self.scalars.get("tariff"),
            frequency=self.scalars.get("frequency"),
            power_failures=self.scalars.get("power_failures"),
            long_power_failures=self.scalars.get("long_power_failures"),
            submeters=[self.submeters[k] for k in sorted(self.submeters)],
            crc=crc,
            protocol=self.protocol,
            extras=self.extras,
        )
