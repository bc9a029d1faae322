"""Capacity tariffs: worked examples per rule, written as data (a month of windows, the expected
peaks, value, step and headroom)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.accounting.intervals import Period, interval_starts, next_start
from services.accounting.tariffs import (
    RULES,
    UnknownRule,
    Window,
    billed_value,
    headroom,
    month_value,
    rule,
)

# (day, hour, minute) local -> kWh of that window
Overrides = dict[tuple[int, int, int], float]


@dataclass(frozen=True)
class Example:
    """A month of windows at `base_kwh`, some windows set by `overrides`; the current window is
    `now` (day, hour, minute) with `now_kwh` drawn so far and `seconds_left`."""

    rule: str
    year: int
    month: int
    base_kwh: float
    overrides: Overrides
    peaks_kw: tuple[float, ...]
    value_kw: float
    step: int
    now: tuple[int, int, int]
    now_kwh: float
    seconds_left: float
    present_w: float
    headroom_value_w: float
    headroom_step_w: float
    note: str = field(default="")


EXAMPLES = [
    Example(
        "no-elvia",
        2026,
        1,
        1.0,
        {(5, 18, 0): 7.0, (5, 19, 0): 8.0, (12, 8, 0): 6.0, (20, 17, 0): 4.0, (21, 17, 0): 3.5},
        peaks_kw=(8.0, 6.0, 4.0),
        value_kw=6.0,
        step=3,  # 5-10 kW
        # Jan 31 17:00, 1 kWh so far, 30 min left: up to 4 kWh keeps the value (third peak),
        # below 16 kWh keeps the mean under 10 kW (step 4); 1 kW already drawn
        now=(31, 17, 0),
        now_kwh=1.0,
        seconds_left=1800,
        present_w=1000,
        headroom_value_w=5000.0,
        headroom_step_w=29000.0,
        note="only the highest hour of Jan 5 counts",
    ),
    Example(
        "no-tensio",
        2026,
        2,
        0.5,
        {(3, 7, 0): 1.8, (9, 7, 0): 1.9, (17, 18, 0): 2.3},
        peaks_kw=(2.3, 1.9, 1.8),
        value_kw=2.0,
        step=2,  # exactly on 2 kW: step 2 (2-5)
        now=(17, 19, 0),
        now_kwh=0.5,
        seconds_left=3600,
        present_w=0,
        # Feb 17 already has 2.3: up to 2.3 kWh keeps the value; above, this hour is Feb 17's
        # peak, and step 3 needs (x + 1.9 + 1.8) / 3 >= 5: x >= 11.3, 10.8 kWh more in an hour
        headroom_value_w=1800.0,
        headroom_step_w=10800.0,
    ),
    Example(
        "be-flanders",
        2026,
        2,
        0.25,
        {(10, 19, 15): 1.5},
        peaks_kw=(6.0,),
        value_kw=6.0,
        step=0,
        # a quarter-hour with 0.5 kWh so far, 5 min left: up to 1.5 kWh keeps the 6 kW peak
        now=(27, 18, 0),
        now_kwh=0.5,
        seconds_left=300,
        present_w=0,
        headroom_value_w=12000.0,
        headroom_step_w=math.inf,
    ),
    Example(
        "be-flanders",
        2026,
        3,
        0.25,
        {},
        peaks_kw=(1.0,),
        value_kw=2.5,
        step=0,  # the floor
        # 2.5 kW over a quarter-hour is 0.625 kWh; 0.25 drawn, 450 s left
        now=(10, 12, 30),
        now_kwh=0.25,
        seconds_left=450,
        present_w=0,
        headroom_value_w=3000.0,
        headroom_step_w=math.inf,
        note="a quiet month is billed at the 2.5 kW floor",
    ),
    Example(
        "se-3-hours",
        2026,
        1,
        1.0,
        {(10, 12, 0): 9.0, (12, 21, 0): 9.0, (13, 8, 0): 5.0, (14, 19, 0): 4.0, (15, 7, 0): 3.0},
        peaks_kw=(9.0, 9.0, 5.0),
        value_kw=23 / 3,
        step=0,
        now=(31, 12, 0),
        now_kwh=2.0,
        seconds_left=3600,
        present_w=0,
        headroom_value_w=3000.0,
        headroom_step_w=math.inf,
    ),
    Example(
        "se-3-hours-high-load",
        2026,
        1,
        1.0,
        {(10, 12, 0): 9.0, (12, 21, 0): 9.0, (13, 8, 0): 5.0, (14, 19, 0): 4.0, (15, 7, 0): 3.0},
        # Jan 10 is a Saturday, Jan 12 21:00 is after 20: neither counts
        peaks_kw=(5.0, 4.0, 3.0),
        value_kw=4.0,
        step=0,
        # Saturday Jan 31: the window does not count at all
        now=(31, 12, 0),
        now_kwh=2.0,
        seconds_left=3600,
        present_w=0,
        headroom_value_w=math.inf,
        headroom_step_w=math.inf,
    ),
    Example(
        "se-3-hours-high-load",
        2026,
        1,
        1.0,
        {(13, 8, 0): 5.0, (14, 19, 0): 4.0, (15, 7, 0): 3.0},
        peaks_kw=(5.0, 4.0, 3.0),
        value_kw=4.0,
        step=0,
        # Friday Jan 30 10:00 counts: up to 3 kWh keeps the value
        now=(30, 10, 0),
        now_kwh=1.5,
        seconds_left=1800,
        present_w=500,
        headroom_value_w=2500.0,
        headroom_step_w=math.inf,
    ),
]


def month_windows(example: Example) -> tuple[list[Window], datetime]:
    """The month's windows (the current one at what it drew so far) and the current start."""
    tariff = rule(example.rule)
    zone = ZoneInfo(tariff.zone)
    period: Period = "hour" if tariff.window_minutes == 60 else "quarter"
    begin = datetime(example.year, example.month, 1, tzinfo=zone)
    end = next_start(begin, "month", zone)
    windows: list[Window] = []
    now_start = None
    for start in interval_starts(begin, end, period, zone):
        key = (start.day, start.hour, start.minute)
        if key == example.now:
            now_start = start
            windows.append((start, example.now_kwh))
        else:
            windows.append((start, example.overrides.get(key, example.base_kwh)))
    assert now_start is not None
    return windows, now_start


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"{e.rule}-{e.year}-{e.month:02}")
def test_worked_example(example: Example) -> None:
    tariff = rule(example.rule)
    windows, now_start = month_windows(example)
    completed = [w for w in windows if w[0] != now_start]
    value = month_value(tariff, completed)
    assert [kw for _, kw in value.peaks] == pytest.approx(list(example.peaks_kw))
    assert value.kw == pytest.approx(example.value_kw)
    assert value.step == example.step
    room = headroom(
        tariff, windows, now_start, example.now_kwh, example.seconds_left, example.present_w
    )
    # headroom stays a milli-watt-hour short of the edge: within 0.1 W over 36 s or more
    assert room.value_w == pytest.approx(example.headroom_value_w, abs=0.1)
    assert room.step_w == pytest.approx(example.headroom_step_w, abs=0.1)
    assert room.value_w <= example.headroom_value_w and room.step_w <= example.headroom_step_w


def test_elvia_steps() -> None:
    elvia = rule("no-elvia")
    start = datetime(2026, 1, 5, 12, tzinfo=ZoneInfo("Europe/Oslo"))
    expected = {0.5: 1, 2.0: 2, 4.9: 2, 5.0: 3, 12.0: 4, 19.0: 5, 24.0: 6, 30.0: 7, 60.0: 8}
    expected |= {80.0: 9, 100.0: 10, 250.0: 10}
    for kw, step in expected.items():
        assert month_value(elvia, [(start, kw)]).step == step, kw


def test_flanders_bills_the_mean_of_the_last_12_months() -> None:
    flanders = rule("be-flanders")
    monthly = [10.0] + [2.5] * 6 + [6.0] * 6  # 13 months: the first falls out
    assert billed_value(flanders, monthly) == pytest.approx((2.5 * 6 + 6.0 * 6) / 12)
    assert billed_value(flanders, [4.0, 5.0]) == pytest.approx(4.5)
    assert billed_value(flanders, []) == 2.5
    assert billed_value(rule("no-elvia"), [3.0, 7.0]) == 7.0


def test_unknown_rule_lists_the_known_ones() -> None:
    with pytest.raises(UnknownRule) as caught:
        rule("no-nowhere")
    message = str(caught.value)
    assert "no-nowhere" in message
    assert all(row.name in message for row in RULES)


def test_rule_names_are_unique() -> None:
    assert len({row.name for row in RULES}) == len(RULES)


# --- properties: drawing the headroom keeps the value and step, a little more raises them -----

OSLO = ZoneInfo("Europe/Oslo")
JANUARY = [  # the first week: the month so far
    start
    for start in interval_starts(
        datetime(2026, 1, 1, tzinfo=OSLO), datetime(2026, 1, 8, tzinfo=OSLO), "hour", OSLO
    )
]


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([row.name for row in RULES if row.window_minutes == 60]),
    st.lists(st.floats(0, 30), min_size=len(JANUARY), max_size=len(JANUARY)),
    st.integers(0, len(JANUARY) - 1),
    st.floats(0, 5),
    st.floats(60, 3600),
)
def test_headroom_is_the_edge(
    name: str, energies: list[float], now: int, so_far: float, seconds_left: float
) -> None:
    tariff = rule(name)
    windows: list[Window] = list(zip(JANUARY, energies, strict=True))
    windows[now] = (JANUARY[now], so_far)
    before = month_value(tariff, windows)
    room = headroom(tariff, windows, JANUARY[now], so_far, seconds_left)
    for watts, same in ((room.value_w, lambda v: v.kw <= before.kw + 1e-6), (room.step_w, None)):
        if math.isinf(watts):
            continue
        final = so_far + watts * seconds_left / 3_600_000
        windows[now] = (JANUARY[now], final)
        at_edge = month_value(tariff, windows)
        windows[now] = (JANUARY[now], final + 0.01)
        beyond = month_value(tariff, windows)
        if same is not None:
            assert same(at_edge) and beyond.kw > before.kw
        else:
            assert at_edge.step == before.step and beyond.step > before.step
