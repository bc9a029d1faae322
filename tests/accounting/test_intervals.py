"""Interval boundaries across daylight saving time, and energy split between samples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.accounting.intervals import (
    PERIODS,
    Accounts,
    MeterLedger,
    Sample,
    interval_start,
    interval_starts,
    next_start,
    split_energy,
    step_register,
    to_ms,
)
from shared.reading import Reading

OSLO = ZoneInfo("Europe/Oslo")
HOUR_MS = 3_600_000
QUARTER_MS = 900_000


def day_bounds(year: int, month: int, day: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, day, tzinfo=OSLO)
    return start, next_start(start, "day", OSLO)


@pytest.mark.parametrize(
    ("day", "hours", "quarters"),
    [((2026, 3, 29), 23, 92), ((2026, 10, 25), 25, 100), ((2026, 6, 1), 24, 96)],
)
def test_daylight_saving_days(day: tuple[int, int, int], hours: int, quarters: int) -> None:
    begin, end = day_bounds(*day)
    hour_starts = list(interval_starts(begin, end, "hour", OSLO))
    quarter_starts = list(interval_starts(begin, end, "quarter", OSLO))
    assert len(hour_starts) == hours
    assert len(quarter_starts) == quarters
    assert len({to_ms(s) for s in quarter_starts}) == quarters
    assert to_ms(end) - to_ms(begin) == hours * HOUR_MS
    # every step is exactly 15 min of real time
    steps = {to_ms(b) - to_ms(a) for a, b in zip(quarter_starts, quarter_starts[1:], strict=False)}
    assert steps == {QUARTER_MS}


def test_autumn_repeated_hour_keeps_fold() -> None:
    # 2026-10-25 02:30 occurs twice in Oslo: 00:30 UTC (CEST) and 01:30 UTC (CET)
    first = interval_start(datetime(2026, 10, 25, 0, 40, tzinfo=ZoneInfo("UTC")), "hour", OSLO)
    second = interval_start(datetime(2026, 10, 25, 1, 40, tzinfo=ZoneInfo("UTC")), "hour", OSLO)
    assert (first.hour, first.fold, second.hour, second.fold) == (2, 0, 2, 1)
    assert to_ms(second) - to_ms(first) == HOUR_MS


def test_month_and_day_starts() -> None:
    instant = datetime(2026, 12, 31, 23, 30, tzinfo=ZoneInfo("UTC"))  # 00:30 1 Jan in Oslo
    assert interval_start(instant, "month", OSLO) == datetime(2027, 1, 1, tzinfo=OSLO)
    assert interval_start(instant, "day", OSLO) == datetime(2027, 1, 1, tzinfo=OSLO)
    march = datetime(2026, 3, 1, tzinfo=OSLO)
    assert next_start(march, "month", OSLO) == datetime(2026, 4, 1, tzinfo=OSLO)
    assert to_ms(next_start(march, "month", OSLO)) - to_ms(march) == (31 * 24 - 1) * HOUR_MS


def test_split_over_a_gap_is_proportional_and_estimated() -> None:
    t0 = to_ms(datetime(2026, 1, 5, 10, 30, tzinfo=OSLO))
    t1 = to_ms(datetime(2026, 1, 5, 12, 0, tzinfo=OSLO))
    shares = split_energy(t0, 100.0, t1, 103.0, "hour", OSLO, estimate_over_ms=QUARTER_MS)
    assert [s.kwh for s in shares] == pytest.approx([1.0, 2.0])
    assert [s.start_ms for s in shares] == [t0 - HOUR_MS // 2, t0 + HOUR_MS // 2]
    assert all(s.estimated for s in shares)


def test_hourly_samples_on_the_hour_fill_one_hour_exactly() -> None:
    t0 = to_ms(datetime(2026, 1, 5, 10, 0, tzinfo=OSLO))
    shares = split_energy(t0, 5.0, t0 + HOUR_MS, 6.5, "hour", OSLO, estimate_over_ms=2 * HOUR_MS)
    assert [(s.start_ms, s.kwh, s.estimated) for s in shares] == [(t0, 1.5, False)]


def test_reset_starts_a_new_baseline_and_says_so() -> None:
    base = Sample(1_000_000, 500.0)
    baseline, shares, event = step_register(
        base, Sample(1_010_000, 2.0), "ic", "hour", OSLO, QUARTER_MS
    )
    assert baseline == Sample(1_010_000, 2.0)
    assert shares == []
    assert event is not None and event.kind == "reset"


def test_clock_back_keeps_baseline_and_energy() -> None:
    ledger = MeterLedger("m1", OSLO)
    t0 = to_ms(datetime(2026, 1, 5, 10, 0, tzinfo=OSLO))
    ledger.add(t0, {"ic": 10.0})
    events = ledger.add(t0 - 5_000, {"ic": 10.2})
    assert [e.kind for e in events] == ["clock_back"]
    ledger.add(t0 + 60_000, {"ic": 10.4, "ec": None})
    hour = ledger.totals["ic"]["hour"]
    assert sum(e.kwh for e in hour.values()) == pytest.approx(0.4)
    assert "ec" not in ledger.totals


def test_ledger_hourly_meter_totals_per_period() -> None:
    ledger = MeterLedger("m1", OSLO, estimate_over_ms=2 * HOUR_MS)
    t0 = to_ms(datetime(2026, 3, 29, 0, 0, tzinfo=OSLO))
    for hour in range(24):  # a 23-hour day, sampled on the hour: 23 hours then next day
        ledger.add(t0 + hour * HOUR_MS, {"ic": 100.0 + hour, "ec": 50.0, "ric": None})
    ic = ledger.totals["ic"]
    assert len(ic["hour"]) == 23
    assert all(e.kwh == pytest.approx(1.0) and not e.estimated for e in ic["hour"].values())
    assert list(ic["day"].values())[0].kwh == pytest.approx(23.0)
    assert sum(e.kwh for e in ic["quarter"].values()) == pytest.approx(23.0)
    assert all(e.estimated for e in ic["quarter"].values())  # an hour's gap spans 4 quarters
    assert "ec" not in ledger.totals  # never rose


def test_accounts_keep_meters_apart_and_hold_missing_registers() -> None:
    accounts = Accounts(OSLO)
    t0 = to_ms(datetime(2026, 1, 5, 10, 0, tzinfo=OSLO))
    accounts.add(Reading(ts=t0, received=t0, meter_id="a", ic=1.0, ec=0.0))
    accounts.add(Reading(ts=t0, received=t0, meter_id="b", ic=7.0))
    # 10 s later: a list without energy (Nordic meters send it hourly)
    accounts.add(Reading(ts=t0 + 10_000, received=t0 + 10_000, meter_id="a"))
    accounts.add(Reading(ts=t0 + HOUR_MS, received=t0 + HOUR_MS, meter_id="a", ic=2.5, ec=0.0))
    events = accounts.add(Reading(ts=t0 + HOUR_MS, received=t0, meter_id="b", ic=3.0))
    hour_a = accounts.meters["a"].totals["ic"]["hour"]
    assert [(start, e.kwh, e.estimated) for start, e in hour_a.items()] == [(t0, 1.5, False)]
    assert [e.kind for e in events] == ["reset"]
    assert "ic" not in accounts.meters["b"].totals


def test_p1_meter_every_10_s_fills_quarters_as_measured() -> None:
    # a P1 meter sending every 10 s at 2.4 kW from 09:55 to 10:35: quarters of 0.6 kWh
    ledger = MeterLedger("p1", OSLO)
    t0 = to_ms(datetime(2026, 10, 25, 9, 55, tzinfo=OSLO))
    for step in range(40 * 6 + 1):
        ledger.add(t0 + step * 10_000, {"ic": 1000.0 + step * 2.4 / 360})
    quarters = ledger.totals["ic"]["quarter"]
    assert [round(e.kwh, 9) for e in quarters.values()] == [0.2, 0.6, 0.6, 0.2]
    assert not any(e.estimated for e in quarters.values())
    assert [round(e.kwh, 9) for e in ledger.totals["ic"]["hour"].values()] == [0.2, 1.4]


# --- properties --------------------------------------------------------------------------------

START_MS = to_ms(datetime(2026, 10, 24, 12, 0, tzinfo=OSLO))  # spans the autumn change


@st.composite
def sample_runs(draw: st.DrawFn) -> list[tuple[int, float, bool]]:
    """(ts_ms, value, reset) rising samples with random gaps; a reset drops to a low value."""
    count = draw(st.integers(min_value=2, max_value=30))
    ts, value = START_MS, draw(st.floats(min_value=0, max_value=1e6))
    run = [(ts, value, False)]
    for _ in range(count):
        ts += draw(st.integers(min_value=1, max_value=3 * 24 * HOUR_MS))
        reset = draw(st.booleans()) and draw(st.integers(0, 9)) == 0
        if reset:
            value = draw(st.floats(min_value=0, max_value=value)) if value > 0 else 0.0
            reset = value < run[-1][1]
        else:
            value += draw(st.floats(min_value=0, max_value=50))
        run.append((ts, value, reset))
    return run


@settings(max_examples=150, deadline=None)
@given(sample_runs(), st.sampled_from(PERIODS), st.integers(1, 4 * HOUR_MS))
def test_split_never_negative_and_sums_to_rise(
    run: list[tuple[int, float, bool]], period: str, threshold: int
) -> None:
    baseline: Sample | None = None
    for ts, value, reset in run:
        previous = baseline
        baseline, shares, event = step_register(
            baseline,
            Sample(ts, value),
            "ic",
            period,  # type: ignore[arg-type]
            OSLO,
            threshold,
        )
        assert all(s.kwh >= 0 for s in shares)
        if previous is None:
            continue
        if reset:
            assert shares == [] and event is not None and event.kind == "reset"
        else:
            assert event is None
            assert sum(s.kwh for s in shares) == pytest.approx(value - previous.value, abs=1e-6)
            starts = [s.start_ms for s in shares]
            assert starts == sorted(set(starts))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2 * 24 * HOUR_MS), st.floats(min_value=0, max_value=20)),
        min_size=2,
        max_size=30,
    ),
    st.sampled_from(PERIODS),
)
def test_clock_jumps_neither_create_nor_lose_energy(
    offsets_and_rises: list[tuple[int, float]], period: str
) -> None:
    """Values only rise; times jump back and forth. Counted energy = last baseline - first."""
    ledger = MeterLedger("m", OSLO, periods=(period,))  # type: ignore[arg-type]
    value = 1000.0
    first = None
    for offset, rise in offsets_and_rises:
        value += rise
        ledger.add(START_MS + offset, {"ic": value})
        first = value if first is None else first
    assert first is not None
    counted = sum(e.kwh for e in ledger.totals.get("ic", {}).get(period, {}).values())  # type: ignore[call-overload]
    assert all(e.kwh >= 0 for e in ledger.totals.get("ic", {}).get(period, {}).values())  # type: ignore[call-overload]
    assert counted == pytest.approx(ledger.baselines["ic"].value - first, abs=1e-6)
    assert counted <= value - first + 1e-6


def test_interval_starts_cover_a_gap_once() -> None:
    begin = datetime(2026, 10, 25, 1, 50, tzinfo=OSLO)
    end = begin.astimezone(UTC) + timedelta(hours=3)  # real hours, not wall-clock ones
    starts = [to_ms(s) for s in interval_starts(begin, end, "hour", OSLO)]
    assert len(starts) == 4  # 01:00, 02:00 CEST, 02:00 CET, 03:00 (begin is CEST 01:50)
