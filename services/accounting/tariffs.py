"""Capacity-tariff rules as data, and the one function set that walks them.

A capacity tariff bills a month on how hard the site drew power, not only on how much energy it
used. Each operator's rule is one `CapacityRule` row in `RULES`:

- `window_minutes`: the metering window whose average power counts (60 in Norway and Sweden,
  15 in Flanders).
- `top_n`: 1 = the month's single highest window; N = the mean of the N highest windows, each on
  a different day (the highest window of each day competes).
- `high_load`: optional filter: only windows starting in these months, on these weekdays, between
  these local hours count (public holidays are not known here and count as their weekday).
- `billing`: "month" bills the month's value; "mean_12" bills the mean of the last 12 monthly
  values (Flanders).
- `floor_kw`: the least value a month can have (Flanders 2.5 kW).
- `steps_kw`: the lower bounds of the price steps, in kW; step 1 starts at the first bound, a
  value on a bound belongs to the step that starts there. Empty when the price is per kW.
- `zone`: the time zone whose clock sets days, hours and months.

To add a rule, append a row to `RULES` with a name not used yet and a comment saying where the
operator publishes it; add a worked example in tests/accounting/test_tariffs.py.

Functions: `rule(name)` finds a row (an unknown name raises `UnknownRule` listing the known ones);
`month_value` forms the month's value (kW) and step from (window start, kWh) pairs;
`billed_value` the billed value from monthly values; `headroom` the power that can still be
drawn for the rest of the current window without raising the month's value or step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

Billing = Literal["month", "mean_12"]

# A window: its start (aware datetime) and the energy drawn in it (kWh)
Window = tuple[datetime, float]


@dataclass(frozen=True)
class HighLoad:
    """The windows that count: months 1-12, weekdays 0 (Monday)-6, local hours [start, end)."""

    months: frozenset[int]
    weekdays: frozenset[int]
    hour_start: int
    hour_end: int

    def holds(self, local: datetime) -> bool:
        return (
            local.month in self.months
            and local.weekday() in self.weekdays
            and self.hour_start <= local.hour < self.hour_end
        )


@dataclass(frozen=True)
class CapacityRule:
    """One operator's capacity tariff (see the module docstring for each field)."""

    name: str
    country: str
    operator: str
    zone: str
    window_minutes: int
    top_n: int
    billing: Billing = "month"
    floor_kw: float = 0.0
    steps_kw: tuple[float, ...] = ()
    high_load: HighLoad | None = None


# The Norwegian grid-tariff steps most operators publish (kW lower bounds): 0-2, 2-5, 5-10, ...
NORWAY_STEPS = (0.0, 2.0, 5.0, 10.0, 15.0, 20.0, 25.0, 50.0, 75.0, 100.0)
WEEKDAYS = frozenset(range(5))
SWEDEN_WINTER = HighLoad(frozenset({11, 12, 1, 2, 3}), WEEKDAYS, 7, 20)

RULES: tuple[CapacityRule, ...] = (
    # Elvia: mean of the 3 highest hourly energies on 3 different days, steps 0-2 ... >100 kW
    CapacityRule("no-elvia", "NO", "Elvia", "Europe/Oslo", 60, 3, steps_kw=NORWAY_STEPS),
    # Tensio: same form and steps as Elvia (check the operator's price list for changes)
    CapacityRule("no-tensio", "NO", "Tensio", "Europe/Oslo", 60, 3, steps_kw=NORWAY_STEPS),
    # Flanders (Fluvius): highest quarter-hour average power of the month, at least 2.5 kW,
    # billed on the mean of the last 12 monthly peaks
    CapacityRule("be-flanders", "BE", "Fluvius", "Europe/Brussels", 15, 1, "mean_12", floor_kw=2.5),
    # Sweden (power tariffs, e.g. Ellevio): mean of the 3 highest hours on different days
    CapacityRule("se-3-hours", "SE", "generic", "Europe/Stockholm", 60, 3),
    # Sweden, high-load variant: only hours in Nov-Mar, weekdays 07-20 count
    CapacityRule(
        "se-3-hours-high-load",
        "SE",
        "generic",
        "Europe/Stockholm",
        60,
        3,
        high_load=SWEDEN_WINTER,
    ),
)


_ON_BOUND_KW = 1e-9
# headroom: a window this much above its energy so far that still keeps the value never counts;
# the answer stays this far below the edge
_NEVER_KWH = 1e6
_MARGIN_KWH = 1e-6


class UnknownRule(KeyError):
    """A capacity-tariff rule name that is not in `RULES`."""


def rule(name: str) -> CapacityRule:
    """The rule called `name`; an unknown name raises `UnknownRule` listing the known rules."""
    for row in RULES:
        if row.name == name:
            return row
    known = ", ".join(row.name for row in RULES)
    raise UnknownRule(f"unknown capacity-tariff rule {name!r}: known rules are {known}")


@dataclass(frozen=True)
class MonthValue:
    """The month's value (kW), its step (1-based, 0 when the rule has no steps) and the peaks
    that formed it (window start, kW), highest first."""

    kw: float
    step: int
    peaks: tuple[tuple[datetime, float], ...]


def window_kw(tariff: CapacityRule, kwh: float) -> float:
    """The average power (kW) of a window that drew `kwh`."""
    return kwh * 60 / tariff.window_minutes


def step_of(tariff: CapacityRule, kw: float) -> int:
    """The 1-based price step holding `kw` (0 when the rule has no steps).

    A value within a micro-watt of a bound is on it: a mean of meter values like (2.3 + 1.9 + 1.8)
    / 3 comes out as 1.9999999999999998 in floating point, and is 2 kW.
    """
    return sum(1 for lower in tariff.steps_kw if kw + _ON_BOUND_KW >= lower)


def month_value(tariff: CapacityRule, windows: Sequence[Window]) -> MonthValue:
    """The month's value and step from its windows (start, kWh), by `tariff`."""
    zone = ZoneInfo(tariff.zone)
    best_per_day: dict[object, tuple[datetime, float]] = {}
    for start, kwh in windows:
        local = start.astimezone(zone)
        if tariff.high_load is not None and not tariff.high_load.holds(local):
            continue
        kw = window_kw(tariff, kwh)
        # with top_n == 1 every window competes; otherwise only each day's highest
        key: object = local.date() if tariff.top_n > 1 else local.timestamp()
        if key not in best_per_day or kw > best_per_day[key][1]:
            best_per_day[key] = (start, kw)
    peaks = sorted(best_per_day.values(), key=lambda peak: -peak[1])[: tariff.top_n]
    kw = sum(peak[1] for peak in peaks) / len(peaks) if peaks else 0.0
    kw = max(kw, tariff.floor_kw)
    return MonthValue(kw, step_of(tariff, kw), tuple(peaks))


def billed_value(tariff: CapacityRule, monthly_kw: Sequence[float]) -> float:
    """The billed value (kW) from the monthly values so far, oldest first."""
    if not monthly_kw:
        return tariff.floor_kw
    if tariff.billing == "month":
        return monthly_kw[-1]
    last = monthly_kw[-12:]
    return sum(last) / len(last)


def competing(tariff: CapacityRule, windows: Sequence[Window]) -> list[Window]:
    """The windows that can still matter to the month's value when one more window is added:
    those the rule counts, and of them each day's highest (top_n > 1) or the single highest
    (top_n == 1). `month_value` of these plus any window equals that of all plus it; headroom's
    bisection then walks a month of 31 windows instead of 3,000 quarter-hours."""
    zone = ZoneInfo(tariff.zone)
    best: dict[object, Window] = {}
    for start, kwh in windows:
        local = start.astimezone(zone)
        if tariff.high_load is not None and not tariff.high_load.holds(local):
            continue
        key: object = local.date() if tariff.top_n > 1 else None
        if key not in best or kwh > best[key][1]:
            best[key] = (start, kwh)
    return list(best.values())


def step_bounds(tariff: CapacityRule, step: int) -> tuple[float | None, float | None]:
    """The kW bounds [from, to) of the 1-based `step` (None: no bound; (None, None) without
    steps)."""
    if step <= 0 or not tariff.steps_kw:
        return None, None
    lower = tariff.steps_kw[step - 1]
    upper = tariff.steps_kw[step] if step < len(tariff.steps_kw) else None
    return lower, upper


@dataclass(frozen=True)
class Headroom:
    """Watts that can still be added for the rest of the current window: without raising the
    month's value (`value_w`), without raising its step (`step_w`); `math.inf` when the window
    does not count."""

    value_w: float
    step_w: float


def headroom(
    tariff: CapacityRule,
    month_windows: Sequence[Window],
    window_start: datetime,
    window_kwh: float,
    seconds_left: float,
    present_w: float = 0.0,
) -> Headroom:
    """The power that can be added, on top of `present_w`, for the `seconds_left` of the window
    starting at `window_start` (which drew `window_kwh` so far), with the month's other windows
    `month_windows`, without raising the month's value or step.

    The window's energy cannot go below what it drew already, so the month as it stands counts
    the window at `window_kwh`. Found by bisection on the window's final energy, since the month's
    value only grows with it, whatever the rule's form.
    """
    others = competing(
        tariff, [w for w in month_windows if w[0].timestamp() != window_start.timestamp()]
    )

    def value_with(kwh: float) -> MonthValue:
        return month_value(tariff, [*others, (window_start, kwh)])

    now = value_with(window_kwh)
    if seconds_left <= 0:
        return Headroom(0.0, 0.0)

    def added_w(final_kwh: float) -> float:
        average_w = (final_kwh - window_kwh) * 1000 * 3600 / seconds_left
        return max(0.0, average_w - present_w)

    def largest(keeps: Callable[[MonthValue], bool]) -> float:
        # double until the value rises (or plainly never will), then halve the gap
        low, high = window_kwh, window_kwh + 1.0
        while keeps(value_with(high)):
            if high > window_kwh + _NEVER_KWH:
                return math.inf
            low, high = high, window_kwh + 2 * (high - window_kwh)
        for _ in range(60):
            middle = (low + high) / 2
            low, high = (middle, high) if keeps(value_with(middle)) else (low, middle)
        # a milli-watt-hour short of the edge, so the answer is safe to draw
        return added_w(max(window_kwh, low - _MARGIN_KWH))

    return Headroom(
        largest(lambda v: v.kw <= now.kw + 1e-9),
        largest(lambda v: v.step <= now.step),
    )
