"""Worked examples as data: a month of meter readings (a 5-minute register sample with the
import power), each described by a base load and the windows that differ, and what the
operator's published rule makes of it, worked out by hand in the comments.

`readings(example)` turns a description into the readings a meter would send. Used by the pure
tests (test_worked_examples.py) and the service/REST tests (the same month through Redis).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.reading import Reading

STEP_MIN = 5


@dataclass(frozen=True)
class Example:
    name: str
    rule: str
    zone: str
    month: tuple[int, int]  # the month of readings: (year, month)
    end: str  # local time of the last reading ("2026-03-31T20:30")
    base_kw: float
    # local start of a window (hour, or quarter for 15-minute rules) -> the power drawn in it
    loads: dict[str, float]
    # local time of readings left out: a gap from the reading before to the one after
    gap: tuple[str, str] | None = None
    # local time at which the meter is replaced: the register starts again from 0
    replaced_at: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # sent with every reading
    window_min: int = 60
    # expected: the month's peaks (local start, kW), value, step (index, from, to), headroom
    peaks: list[tuple[str, float]] = field(default_factory=list)
    value_kw: float = 0.0
    step: tuple[int, float | None, float | None] = (0, None, None)
    headroom_w: float | None = None
    billed_kw: float | None = None
    # expected energies: (resolution, local start) -> (import kWh, estimated)
    intervals: dict[tuple[str, str], tuple[float, bool]] = field(default_factory=dict)
    count: dict[tuple[str, str], int] = field(default_factory=dict)  # intervals of a day


def local(text: str, zone: ZoneInfo, fold: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone, fold=fold)


def readings(example: Example, meter: str = "m1") -> list[Reading]:
    """A reading every 5 minutes of the month up to `end` (UTC steps: DST days are 23/25 h)."""
    zone = ZoneInfo(example.zone)
    year, month = example.month
    t = datetime(year, month, 1, tzinfo=zone).astimezone(UTC)
    end = local(example.end, zone).astimezone(UTC)
    loads = {
        local(k, zone).astimezone(UTC): v
        for k, v in example.loads.items()
        if not k.endswith("+fold")
    }
    # a "fold" load key ("...T02:15+fold") is the repeated autumn hour
    for key, value in example.loads.items():
        if key.endswith("+fold"):
            loads[local(key[:-5], zone, fold=1).astimezone(UTC)] = value
    gap = None
    if example.gap:
        gap = (
            local(example.gap[0], zone).astimezone(UTC),
            local(example.gap[1], zone).astimezone(UTC),
        )
    replaced = local(example.replaced_at, zone).astimezone(UTC) if example.replaced_at else None
    register = 1000.0
    out: list[Reading] = []
    step = timedelta(minutes=STEP_MIN)
    window = timedelta(minutes=example.window_min)
    while t <= end:
        if out:
            # the power of the 5 minutes that just ended, by the window they are in
            before = t - step
            start = datetime.fromtimestamp(
                before.timestamp() // window.total_seconds() * window.total_seconds(), UTC
            )
            kw = loads.get(start, example.base_kw)
            register += kw * STEP_MIN / 60
        else:
            kw = example.base_kw
        if replaced is not None and t == replaced:
            register = 0.0
        if gap is None or not (gap[0] < t < gap[1]):
            out.append(
                Reading(
                    ts=int(t.timestamp() * 1000),
                    received=int(t.timestamp() * 1000),
                    meter=meter,
                    ic=round(register, 6),
                    ec=0.0,
                    pi=[kw * 1000, None, None, None],
                    extras=example.extras,
                )
            )
        t += step
    return out


# Elvia (Norway), March 2026, Europe/Oslo: the spring day (29th) has 23 hours.
# Hours above the 1 kW base: 3rd 18:00 4.2, 3rd 19:00 5.0 (same day: only 5.0 counts),
# 10th 08:00 3.6, 29th 12:00 2.9. Mean of the 3 highest on different days: (5.0 + 3.6 + 2.9) / 3
# = 3.8333 kW, step 2 (2-5 kW). At 31st 20:30 the hour has drawn 0.5 kWh at 1 kW: the step
# holds while (5.0 + 3.6 + E) / 3 < 5, E < 6.4 kWh: 5.9 kWh more in 1800 s = 11,800 W average,
# 10,800 W on top of the 1,000 W drawn. A 40-minute gap 15th 10:05-10:45 leaves the hour
# measured (40 < 61 min) and the quarter-hours 10:15 and 10:30 estimated; the meter replaced
# at 20th 12:00 loses the 5 minutes before (1 kW: 0.0833 kWh) from that day.
ELVIA = Example(
    name="elvia-march-2026",
    rule="no-elvia",
    zone="Europe/Oslo",
    month=(2026, 3),
    end="2026-03-31T20:30",
    base_kw=1.0,
    loads={
        "2026-03-03T18:00": 4.2,
        "2026-03-03T19:00": 5.0,
        "2026-03-10T08:00": 3.6,
        "2026-03-29T12:00": 2.9,
    },
    gap=("2026-03-15T10:05", "2026-03-15T10:45"),
    replaced_at="2026-03-20T12:00",
    peaks=[("2026-03-03T19:00", 5.0), ("2026-03-10T08:00", 3.6), ("2026-03-29T12:00", 2.9)],
    value_kw=3.833333,
    step=(2, 2.0, 5.0),
    headroom_w=10800.0,
    intervals={
        ("1d", "2026-03-29T00:00"): (22 * 1.0 + 2.9, False),  # 23 hours, one of them 2.9
        ("1d", "2026-03-28T00:00"): (24.0, False),
        ("1d", "2026-03-20T00:00"): (24.0 - 1 / 12, False),
        ("1h", "2026-03-15T10:00"): (1.0, False),
        ("15m", "2026-03-15T10:15"): (0.25, True),
        ("15m", "2026-03-15T10:30"): (0.25, True),
        ("15m", "2026-03-15T10:45"): (0.25, False),
        ("1h", "2026-03-03T19:00"): (5.0, False),
    },
    count={("1h", "2026-03-29"): 23, ("15m", "2026-03-29"): 92},
)

# Flanders (Fluvius), October 2026, Europe/Brussels: the autumn day (25th) has 25 hours and 100
# quarter-hours. Base 0.8 kW; quarter-hours above it: 7th 18:15 6.0 kW (1.5 kWh), 25th 02:15 in
# the repeated hour 4.0 kW. Month value 6.0 kW (the single highest quarter-hour, above the 2.5 kW
# floor). The meter's own 1-0:1.6.0 says 6.0 kW at 18:30 (the end of that quarter-hour): 0 apart.
# The meter's 0-0:98.1.0 history gives Oct 2025 9.0 kW and Nov 2025 - Sep 2026 3.5 kW (and Aug
# 2026 0.0, raised to the 2.5 floor): the bill's 12-month mean is Nov 2025 - Oct 2026:
# (10 x 3.5 + 2.5 + 6.0) / 12 = 3.625 kW. At 31st 20:05 the quarter-hour has drawn 0.8 kW for 5
# min (0.0667 kWh): the value holds up to 1.5 kWh, 1.4333 kWh more in 600 s = 8,600 W average,
# 7,800 W on top of the 800 W drawn.
_HISTORY = ["13", "1-0:1.6.0", "1-0:1.6.0"]
for _y, _m in [(2025, 10), *[(2025, m) for m in (11, 12)], *[(2026, m) for m in range(1, 10)]]:
    _end_y, _end_m = (_y + 1, 1) if _m == 12 else (_y, _m + 1)
    _kw = 9.0 if (_y, _m) == (2025, 10) else 0.0 if (_y, _m) == (2026, 8) else 3.5
    _HISTORY += [
        f"{_end_y % 100:02d}{_end_m:02d}01000000W",
        f"{_y % 100:02d}{_m:02d}15120000W",
        f"{_kw:06.3f}*kW",
    ]

FLANDERS = Example(
    name="flanders-october-2026",
    rule="be-flanders",
    zone="Europe/Brussels",
    month=(2026, 10),
    end="2026-10-31T20:05",
    base_kw=0.8,
    loads={"2026-10-07T18:15": 6.0, "2026-10-25T02:15+fold": 4.0},
    window_min=15,
    extras={"1-0:1.6.0": ["261007183000S", "06.000*kW"], "0-0:98.1.0": _HISTORY},
    peaks=[("2026-10-07T18:15", 6.0)],
    value_kw=6.0,
    step=(0, None, None),
    headroom_w=7800.0,
    billed_kw=3.625,
    intervals={
        # 25 hours at 0.8 kW, one quarter-hour of them at 4.0 kW: 24.75 h x 0.8 + 1.0
        ("1d", "2026-10-25T00:00"): (24.75 * 0.8 + 1.0, False),
        ("15m", "2026-10-07T18:15"): (1.5, False),
    },
    count={("1h", "2026-10-25"): 25, ("15m", "2026-10-25"): 100},
)

# Sweden, high-load variant (Nov-Mar weekdays 07-20), March 2026, Europe/Stockholm. Hours above
# the 1 kW base: Sat 7th 10:00 7.0 (weekend: out), Mon 2nd 06:00 6.0 (before 07: out), Tue 3rd
# 08:00 4.0 and 09:00 4.5 (one day: 4.5), Wed 4th 19:00 3.0, Thu 5th 20:00 5.0 (20:00 is out),
# Fri 6th 12:00 2.5. Mean of the 3 highest on different days: (4.5 + 3.0 + 2.5) / 3 = 3.3333 kW,
# no steps (price per kW). At Tue 31st 10:30, 0.5 kWh drawn: the value holds up to 2.5 kWh,
# 2.0 kWh more in 1800 s = 4,000 W average, 3,000 W on top of the 1,000 W drawn.
SWEDEN = Example(
    name="sweden-high-load-march-2026",
    rule="se-3-hours-high-load",
    zone="Europe/Stockholm",
    month=(2026, 3),
    end="2026-03-31T10:30",
    base_kw=1.0,
    loads={
        "2026-03-07T10:00": 7.0,
        "2026-03-02T06:00": 6.0,
        "2026-03-03T08:00": 4.0,
        "2026-03-03T09:00": 4.5,
        "2026-03-04T19:00": 3.0,
        "2026-03-05T20:00": 5.0,
        "2026-03-06T12:00": 2.5,
    },
    peaks=[("2026-03-03T09:00", 4.5), ("2026-03-04T19:00", 3.0), ("2026-03-06T12:00", 2.5)],
    value_kw=3.333333,
    step=(0, None, None),
    headroom_w=3000.0,
    intervals={("1d", "2026-03-29T00:00"): (23.0, False)},
)

EXAMPLES = (ELVIA, FLANDERS, SWEDEN)
