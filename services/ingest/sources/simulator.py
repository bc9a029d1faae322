"""The built-in meter as a source: a `simulated_meter.MeterSimulator` telegram every `interval`
seconds, stamped with the wall clock (`HANPORT_SOURCE=simulator`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from ..codec.p1.clock import DEFAULT_TIMEZONE
from ..metrics import SOURCE_CONNECTED
from .simulated_meter import MeterSimulator
from .spec import SourceSpec


@dataclass
class SimulatorSource:
    """The built-in meter: one telegram every `interval` seconds, stamped with the wall clock."""

    spec: SourceSpec
    interval: float = 1.0
    tz: ZoneInfo | str = DEFAULT_TIMEZONE

    async def chunks(self) -> AsyncIterator[bytes]:
        simulator = MeterSimulator(tz=self.tz)
        SOURCE_CONNECTED.set(1)
        start = time.monotonic()
        tick = 0
        while True:
            yield simulator.telegram(int(time.time() * 1000))
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * self.interval - time.monotonic()))
