"""A meter that sends its energy registers only once an hour (Aidon, Kaifa, Kamstrup list 3),
with power every 10 s (list 1/2): its hours are measured (not estimated), its quarter-hours
estimated, and the live window counts the import power since the last hourly register."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from services.accounting.account import MeterAccount
from services.accounting.tariffs import rule
from shared.reading import Reading

OSLO = ZoneInfo("Europe/Oslo")
T0 = 1_772_319_600_000  # 2026-03-01 00:00 Oslo
HOUR_MS = 3_600_000


def test_hourly_registers_with_power_between() -> None:
    account = MeterAccount.new("m1", OSLO, rule("no-elvia"))
    # 3 hours at 3 kW: power every 10 s, registers on the hour, then 20 minutes of the 4th hour
    end = 3 * HOUR_MS + 20 * 60_000
    for ts in range(T0, T0 + end + 1, 10_000):
        on_the_hour = (ts - T0) % HOUR_MS == 0
        account.add(
            Reading(
                ts=ts,
                received=ts,
                meter="m1",
                ic=100 + 3 * (ts - T0) / HOUR_MS if on_the_hour else None,
                pi=[3000.0, None, None, None],
            )
        )
    hours = account.ledger.totals["ic"]["hour"]
    assert [(h.kwh, h.estimated) for h in hours.values()] == [(3.0, False)] * 3
    quarters = account.ledger.totals["ic"]["quarter"]
    assert len(quarters) == 12 and all(q.estimated for q in quarters.values())
    answer = account.tariff_state()
    # the 4th hour has no register yet: 20 minutes at 3 kW from power, 1.0 kWh; projected 3 kW
    assert answer["window_energy_kwh"] == pytest.approx(1.0, abs=1e-6)
    assert answer["projected_kw"] == pytest.approx(3.0, abs=1e-6)
    assert answer["value_kw"] == pytest.approx(3.0)  # one day: its best hour
    assert account.ledger.baselines["ic"].ts_ms == T0 + 3 * HOUR_MS  # the last hourly register
