"""The worked examples (examples.py: a month of readings, the operator's rule worked out by
hand) through the pure account: peaks, value, step, headroom, billed value, and the energy of
DST days, a 40-minute gap and a meter replacement."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.accounting.account import PERIOD_OF, MeterAccount
from services.accounting.intervals import from_ms, to_ms
from services.accounting.tariffs import rule

from .examples import EXAMPLES, Example, local, readings


def account_of(example: Example) -> MeterAccount:
    zone = ZoneInfo(example.zone)
    account = MeterAccount.new("m1", zone, rule(example.rule))
    for reading in readings(example):
        account.add(reading)
    return account


def check_tariff(example: Example, answer: dict[str, object]) -> None:
    zone = ZoneInfo(example.zone)
    peaks = answer["peaks"]
    assert isinstance(peaks, list)
    assert [(datetime.fromisoformat(p["start"]), p["kw"]) for p in peaks] == [
        (local(s, zone), pytest.approx(kw, abs=1e-6)) for s, kw in example.peaks
    ]
    assert answer["value_kw"] == pytest.approx(example.value_kw, abs=1e-6)
    step = answer["step"]
    assert isinstance(step, dict)
    assert (step["index"], step["from_kw"], step["to_kw"]) == example.step
    assert answer["headroom_w"] == pytest.approx(example.headroom_w, abs=1.0)
    if example.billed_kw is not None:
        assert answer["billed_kw"] == pytest.approx(example.billed_kw, abs=1e-6)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_tariff_of_a_month(example: Example) -> None:
    check_tariff(example, account_of(example).tariff_state())


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_energy_of_special_intervals(example: Example) -> None:
    zone = ZoneInfo(example.zone)
    account = account_of(example)
    for (resolution, start), (kwh, estimated) in example.intervals.items():
        total = account.ledger.totals["ic"][PERIOD_OF[resolution]][to_ms(local(start, zone))]
        assert (round(total.kwh, 6), total.estimated) == (round(kwh, 6), estimated), (
            resolution,
            start,
        )
    for (resolution, day), count in example.count.items():
        starts = account.ledger.totals["ic"][PERIOD_OF[resolution]]
        assert sum(1 for s in starts if from_ms(s, zone).date().isoformat() == day) == count


def test_flanders_reports_the_meters_own_peak() -> None:
    from .examples import FLANDERS

    answer = account_of(FLANDERS).tariff_state()
    assert answer["meter_peak_kw"] == 6.0
    assert answer["meter_peak_difference_kw"] == pytest.approx(0.0, abs=1e-6)
    months = answer["months_kw"]
    assert isinstance(months, dict)
    assert list(months)[0] == "2025-11" and months["2026-08"] == 2.5 and len(months) == 12


def test_the_meter_replacement_is_an_event() -> None:
    from .examples import ELVIA

    assert account_of(ELVIA).events == {"reset": 1}


def test_outside_the_high_load_hours_the_window_does_not_count() -> None:
    from .examples import SWEDEN

    account = account_of(SWEDEN)
    zone = ZoneInfo(SWEDEN.zone)
    saturday = account.tariff_state(to_ms(local("2026-03-28T10:30", zone)))
    evening = account.tariff_state(to_ms(local("2026-03-30T20:30", zone)))
    for answer in (saturday, evening):
        assert answer["headroom_w"] is None and answer["headroom_value_w"] is None
        assert answer["value_kw"] == pytest.approx(SWEDEN.value_kw, abs=1e-6)
