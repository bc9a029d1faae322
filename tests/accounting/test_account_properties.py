"""Hypothesis, through what the service stores: for random reading sequences (gaps of any
length, clock jumps, hourly-only registers), every stored interval is non-negative and each
resolution's intervals add up to the register difference; and an account stored half-way,
restored and fed the rest ends exactly where one fed everything at once does (a restart)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.accounting.account import MeterAccount
from services.accounting.intervals import PERIODS, to_ms
from services.accounting.store import decode_row, encode_row
from services.accounting.tariffs import rule
from shared.reading import Reading

OSLO = ZoneInfo("Europe/Oslo")
HOUR_MS = 3_600_000
START_MS = to_ms(datetime(2026, 3, 28, 20, 0, tzinfo=OSLO))  # spans the spring change


@st.composite
def reading_runs(draw: st.DrawFn) -> list[Reading]:
    """Readings with rising registers; times mostly forward, sometimes back (clock set)."""
    count = draw(st.integers(2, 40))
    ts, ic, ec = START_MS, 500.0, 20.0
    out = []
    for _ in range(count):
        ts += draw(st.integers(-HOUR_MS, 6 * HOUR_MS))
        ic += draw(st.floats(0, 30))
        ec += draw(st.floats(0, 5))
        hourly_only = draw(st.booleans())  # a Nordic list 2 reading: no registers
        out.append(
            Reading(
                ts=ts,
                received=ts,
                meter="m",
                ic=None if hourly_only else ic,
                ec=None if hourly_only else ec,
                pi=[draw(st.floats(0, 20_000)), None, None, None],
            )
        )
    return out


def stored(account: MeterAccount) -> dict[tuple[str, int], tuple[float, ...]]:
    """What the service would have stored: every interval through the row encoding."""
    changed = {
        (period, start)
        for by_period in account.ledger.totals.values()
        for period, by_start in by_period.items()
        for start in by_start
    }
    rows = [decode_row(row.period, encode_row(row)) for row in account.rows(changed)]
    return {(row.period, row.start_ms): (*row.values, row.estimated) for row in rows}


@settings(max_examples=120, deadline=None)
@given(reading_runs())
def test_stored_intervals_never_negative_and_sum_to_register_difference(
    run: list[Reading],
) -> None:
    account = MeterAccount.new("m", OSLO, rule("no-elvia"))
    for reading in run:
        account.add(reading)
    intervals = stored(account)
    assert all(v >= 0 for values in intervals.values() for v in values[:4])
    firsts = {
        "ic": next((r.ic for r in run if r.ic is not None), None),
        "ec": next((r.ec for r in run if r.ec is not None), None),
    }
    for index, register in enumerate(("ic", "ec")):
        first = firsts[register]
        if first is None:
            continue
        rise = account.ledger.baselines[register].value - first
        for period in PERIODS:
            total = sum(v[index] for (p, _s), v in intervals.items() if p == period)
            assert total == pytest.approx(rise, abs=1e-6)


@settings(max_examples=80, deadline=None)
@given(reading_runs(), st.data())
def test_restored_account_ends_where_an_uninterrupted_one_does(
    run: list[Reading], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(run)))
    tariff = rule("no-elvia")
    whole = MeterAccount.new("m", OSLO, tariff)
    for index, reading in enumerate(run):
        whole.add(reading, "s", f"{index + 1}-0")

    first = MeterAccount.new("m", OSLO, tariff)
    for index, reading in enumerate(run[:cut]):
        first.add(reading, "s", f"{index + 1}-0")
    again = MeterAccount.restore("m", OSLO, tariff, first.snapshot())
    again.load_rows(
        [decode_row(r.period, encode_row(r)) for r in first.rows(set(first.ledger.changed))]
    )
    for index, reading in enumerate(run):  # redelivered from the start: counted once
        if not again.seen("s", f"{index + 1}-0"):
            again.add(reading, "s", f"{index + 1}-0")

    assert stored(again) == stored(whole)
    assert again.tariff_state() == whole.tariff_state()
