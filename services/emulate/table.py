"""A device's values as a table: each row names the device's key and where its number comes
from in a `Reading` (a path of the field catalogue, shared/fields.py, or a small function for a
derived value), with the unit change and sign as a factor. `render` is the one function that
walks a table; a value the meter did not send is left out (never 0).

    EM_STATUS = (Row("a_act_power", "p[1]"), Row("total_act", "ic", scale=1000))
    render(EM_STATUS, reading)   # {"a_act_power": 1980.0, "total_act": 2721126.0}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.fields import FIELDS, getter, values
from shared.reading import Reading

Read = Callable[[Reading], Any]
BY_PATH: dict[str, Read] = {value.path: getter(value) for value in values(FIELDS)}


@dataclass(frozen=True)
class Row:
    """One value of a device: `name` is the device's key, `source` a catalogue path (`ic`,
    `p[1]`, `u[0]`) or a function of the reading; `scale` turns our unit into the device's
    (kWh -> Wh: 1000) and its sign says the device's direction (-1: export positive);
    `digits` rounds as the device does (None: as is)."""

    name: str
    source: str | Read
    scale: float = 1.0
    digits: int | None = 3
    read: Read = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if callable(self.source):
            read = self.source
        else:
            try:
                read = BY_PATH[self.source]
            except KeyError:
                raise ValueError(
                    f"row {self.name!r}: {self.source!r} is not a value of shared/fields.py "
                    f"(one of {', '.join(BY_PATH)})"
                ) from None
        object.__setattr__(self, "read", read)


def render(rows: Iterable[Row], reading: Reading) -> dict[str, Any]:
    """The device's values for `reading`; rows whose value the meter did not send are left out."""
    out: dict[str, Any] = {}
    for row in rows:
        value = row.read(reading)
        if value is None:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = value * row.scale if row.scale != 1.0 else value
            value = float(value) if row.digits is None else round(float(value), row.digits)
        out[row.name] = value
    return out


# ---------------------------------------------------------------- derived values


def total(key: str) -> Read:
    """The sum of a per-phase array (`i`: the phase currents), None unless every phase is sent."""

    def read(reading: Reading) -> float | None:
        parts = getattr(reading, key)
        return None if any(v is None for v in parts) else sum(parts)

    return read


def apparent(phase: int) -> Read:
    """Apparent power of a phase (0-2), VA: voltage times current, as a meter's Urms * Irms
    (never below the active power: the meter rounds current to 0.1 A)."""

    def read(reading: Reading) -> float | None:
        u, i, p = reading.u[phase], reading.i[phase], reading.p[phase + 1]
        if u is None or i is None:
            return None
        return max(u * i, abs(p)) if p is not None else u * i

    return read


def apparent_total(reading: Reading) -> float | None:
    parts = [apparent(k)(reading) for k in range(3)]
    return None if any(v is None for v in parts) else sum(v for v in parts if v is not None)


def power_factor(phase: int) -> Read:
    """Active over apparent power of a phase (0-2), signed like the active power, at most 1."""

    def read(reading: Reading) -> float | None:
        p, s = reading.p[phase + 1], apparent(phase)(reading)
        if p is None or not s:
            return None
        return max(-1.0, min(1.0, p / s))

    return read


def tariff(key: str) -> Read:
    """A tariff register (`1.8.1`, kWh), when the meter sends it."""
    return lambda reading: reading.tariffs.get(key)
