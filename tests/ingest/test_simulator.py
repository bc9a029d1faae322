"""The meter simulator: valid telegrams, a plausible day, counters that only grow."""

from __future__ import annotations

from services.ingest.codec.p1.parser import parse_telegram
from services.ingest.sources.simulated_meter import MeterSimulator
from tests.readings import START_MS, simulated_readings, simulated_telegrams

HOUR_MS = 3_600_000


def test_simulated_readings_helper() -> None:
    readings = simulated_readings(5, start_ms=1_700_000_000_000)
    assert [r.ts for r in readings] == [1_700_000_000_000 + 1000 * n for n in range(5)]
    assert all(r.crc == "ok" and r.meter_id == "HANPORTSIM0001" for r in readings)
    assert all(None not in r.u and None not in r.i and None not in r.pi for r in readings)
    assert simulated_readings(3) == simulated_readings(3)  # deterministic


def test_a_simulated_day() -> None:
    simulator = MeterSimulator(seed=3)
    midnight = 1_717_189_200_000  # 2024-06-01 00:00 in Helsinki
    readings = [
        parse_telegram(simulator.telegram(midnight + n * 600_000), received_ms=0)
        for n in range(144)  # every 10 minutes for a day
    ]
    by_hour = {n // 6: r for n, r in enumerate(readings)}
    assert by_hour[13].pe[0] is not None and by_hour[13].pe[0] > 1000  # midday solar export
    assert by_hour[13].p[0] is not None and by_hour[13].p[0] < 0
    assert by_hour[3].pe[0] == 0 and by_hour[3].pi[0] is not None and by_hour[3].pi[0] > 100
    assert by_hour[19].pi[0] is not None and by_hour[19].pi[0] > by_hour[3].pi[0]  # evening peak
    for before, after in zip(readings, readings[1:], strict=False):
        for field in ("ic", "ec", "ric", "rec"):
            assert getattr(after, field) >= getattr(before, field), field
    first, last = readings[0], readings[-1]
    assert first.ic is not None and last.ic is not None and last.ic > first.ic
    assert first.ec is not None and last.ec is not None and last.ec > first.ec
    volts = [v for r in readings for v in r.u if v is not None]
    assert 220 < min(volts) < max(volts) < 240 and max(volts) - min(volts) > 1  # they move


def test_telegram_flags_summer_and_winter_time() -> None:
    summer, winter = (
        parse_telegram(simulated_telegrams(1, start_ms=ms)[0], received_ms=0)
        for ms in (START_MS, START_MS - 150 * 24 * HOUR_MS)
    )
    assert summer.meter_time is not None and summer.meter_time.endswith("S")
    assert winter.meter_time is not None and winter.meter_time.endswith("W")
    assert summer.ts == START_MS
