"""Readings for the REST tests: the ingest simulator's (`tests/readings.simulated_readings`)
when it is there, else a small stand-in with the same shape (three-phase, import and export)."""

from __future__ import annotations

import math
import time

from shared.reading import Reading, Value


def sample_readings(n: int) -> list[Reading]:
    try:
        from tests.readings import simulated_readings  # the ingest simulator's readings
    except ImportError:
        return _stand_in(n)
    return list(simulated_readings(n))


def _stand_in(n: int) -> list[Reading]:
    now = int(time.time() * 1000)
    out = []
    for k in range(n):
        ts = now + k * 1000
        phases = [round(900 + 400 * math.sin(k / 5 + j), 0) for j in range(3)]
        pi: list[Value] = [sum(max(p, 0) for p in phases), *[max(p, 0) for p in phases]]
        pe: list[Value] = [0.0, 0.0, 0.0, 0.0]
        u: list[Value] = [round(230 + math.sin(k / 7 + j), 1) for j in range(3)]
        i: list[Value] = [round(p / (v or 230), 2) for p, v in zip(phases, u, strict=True)]
        out.append(
            Reading(
                ts=ts,
                received=ts,
                ic=round(12345.678 + k * 0.001, 3),
                ec=round(321.5, 3),
                ric=round(100.25 + k * 0.0001, 4),
                rec=2.5,
                p=list(pi),
                pi=pi,
                pe=pe,
                r=[120.0, 40.0, 40.0, 40.0],
                u=u,
                i=i,
                meter_id="TEST0000000000001",
                meter_model="/TST5\\253833635_A",
                crc="ok",
            )
        )
    return out
