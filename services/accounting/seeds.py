"""What a Belgian (e-MUCS) meter says of its own peaks: `1-0:1.6.0`, this month's highest
quarter-hour average power with its time, and `0-0:98.1.0`, the highest of each of the last 13
months. The ingest keeps both, undecoded, in the reading's `extras`:

    "1-0:1.6.0": ["231102114500W", "03.064*kW"]
    "0-0:98.1.0": ["4", "1-0:1.6.0", "1-0:1.6.0",
                   "230801000000S", "632525252525W", "00.000*kW",     <- (period end, peak time,
                   "230901000000S", "230831181500S", "01.862*kW", ...]    peak kW), repeated

A period stamp is the first instant after the month it closes (230901000000S closes August 2023).
Accounting seeds the Flanders rule's 12-month mean with these months and reports how far its own
month value is from the meter's `1-0:1.6.0`. Pure functions; a value that does not parse is left
out, never guessed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

PEAK_CODE = "1-0:1.6.0"
HISTORY_CODE = "0-0:98.1.0"


def stamp(text: str, zone: ZoneInfo) -> datetime | None:
    """A DSMR time stamp `YYMMDDhhmmssX` (X: S summer, W winter) as an aware datetime."""
    if len(text) != 13 or not text[:12].isdigit():
        return None
    try:
        local = datetime(
            2000 + int(text[0:2]),
            int(text[2:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[8:10]),
            int(text[10:12]),
            tzinfo=zone,
            fold=1 if text[12] == "W" else 0,
        )
    except ValueError:
        return None
    return local


def kilowatts(text: str) -> float | None:
    """`"03.064*kW"` -> 3.064."""
    number = text.split("*", 1)[0]
    try:
        return float(number)
    except ValueError:
        return None


def meter_peak(extras: dict[str, Any], zone: ZoneInfo) -> tuple[datetime, float] | None:
    """The meter's own peak this month (`1-0:1.6.0`): (when, kW)."""
    value = extras.get(PEAK_CODE)
    if not isinstance(value, list) or len(value) != 2:
        return None
    when, kw = stamp(str(value[0]), zone), kilowatts(str(value[1]))
    if when is None or kw is None:
        return None
    return when, kw


def month_key(instant: datetime) -> str:
    """`YYYY-MM` of a local datetime."""
    return f"{instant.year:04d}-{instant.month:02d}"


def monthly_peaks(extras: dict[str, Any], zone: ZoneInfo) -> dict[str, float]:
    """The meter's monthly peaks (`0-0:98.1.0`): `YYYY-MM` -> kW, months it closed only."""
    value = extras.get(HISTORY_CODE)
    if not isinstance(value, list) or len(value) < 3:
        return {}
    groups = [str(v) for v in value[3:]]
    out: dict[str, float] = {}
    for index in range(0, len(groups) - 2, 3):
        closed, kw = stamp(groups[index], zone), kilowatts(groups[index + 2])
        if closed is None or kw is None:
            continue
        # the month that ends at `closed` (its first instant belongs to the next month)
        out[month_key(closed - timedelta(seconds=1))] = kw
    return out
