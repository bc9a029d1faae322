"""Readings for the export tests."""

from __future__ import annotations

from shared.reading import Reading, SubMeter

BOX = "HPTEST0001"
T0 = 1_764_547_200_000  # 2025-12-01 00:00:00 UTC: a month boundary in the middle of a test


def reading(n: int, *, meter: str = "main", start: int = T0, step_ms: int = 1000) -> Reading:
    """The n-th reading of `meter`: values that tell readings apart; L3 and export absent."""
    ts = start + n * step_ms
    return Reading(
        ts=ts,
        received=ts + 150,
        meter=meter,
        ic=1000.0 + n / 1000,
        ec=None,
        p=[float(500 + n), 200.0, float(300 + n), None],
        pi=[float(500 + n), 200.0, float(300 + n), None],
        u=[230.5, 231.0, None],
        i=[1.25, 2.5, None],
        submeters=[SubMeter(channel=1, device_type=3, id="G1", value=10.0 + n, unit="m3")]
        if n % 10 == 0
        else [],
    )
