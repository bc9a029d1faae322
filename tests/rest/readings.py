"""Readings for the REST tests: the ingest simulator's, decoded by the real P1 decoder
(`tests/readings.simulated_readings`)."""

from __future__ import annotations

from shared.reading import Reading
from tests.readings import simulated_readings


def sample_readings(n: int) -> list[Reading]:
    return list(simulated_readings(n))
