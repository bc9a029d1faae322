"""Realistic readings for any service's tests: telegrams from the built-in meter simulator,
decoded by the real P1 decoder. Deterministic for a given seed and start time.

    from tests.readings import simulated_readings, simulated_telegrams
    readings = simulated_readings(10, start_ms=1_700_000_000_000)
"""

from __future__ import annotations

from services.ingest.codec.decoded import Decoded
from services.ingest.codec.p1.decoder import P1Decoder
from services.ingest.sources.simulated_meter import MeterSimulator
from shared.reading import Reading

START_MS = 1_717_236_000_000  # 2024-06-01 10:00 UTC (13:00 in Helsinki: solar export)


def simulated_telegrams(
    n: int, *, start_ms: int = START_MS, interval_ms: int = 1000, seed: int = 1
) -> list[bytes]:
    """`n` P1 telegrams (valid CRC) one `interval_ms` apart, meter clock from `start_ms`."""
    return MeterSimulator(seed=seed).telegrams(n, start_ms, interval_ms)


def simulated_readings(
    n: int, *, start_ms: int = START_MS, interval_ms: int = 1000, seed: int = 1
) -> list[Reading]:
    """`n` readings, the k-th `received` at `start_ms + k * interval_ms` with `ts` that time
    rounded down to the second (meter clocks tick in seconds: keep `interval_ms` a multiple of
    1000 for distinct `ts`); energy counters grow, powers follow the simulated day."""
    decoder = P1Decoder()
    readings: list[Reading] = []
    for number, telegram in enumerate(
        simulated_telegrams(n, start_ms=start_ms, seed=seed, interval_ms=interval_ms)
    ):
        received = start_ms + number * interval_ms
        for item in decoder.feed(telegram, received):
            assert isinstance(item, Decoded), item
            readings.append(item.reading)
    assert len(readings) == n
    return readings
