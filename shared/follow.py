"""Following the newest readings: the loop every consumer of the readings stream runs.

`Follower.run()` hands `handle` the newest reading in the stream (as a batch of one), then every
later reading, in order, as the batches one XREAD returns, forever. Given `MeterStreams`, it does
so for every meter of the box: each batch is one meter's (key state by `shared.meters.meter_of`;
the example below keeps one meter's totals, for brevity). It waits out Redis outages
(`ReadingStream.follow_batches`) and, restarted after an error (`shared.supervise`), resumes
after the last reading it handed over: nothing skipped, nothing repeated. `loaded` is set once
the newest reading was looked up (REST waits for it before answering).

How often it reads is its `Pacing`; the pacing of every consumer is defined here, in one place.

A new consumer is a page of code. One that keeps a running total of imported energy, and only
while a license grants its feature:

    import asyncio

    from shared.entitlements import Entitlements
    from shared.follow import BACKGROUND, Follower
    from shared.gate import while_granted
    from shared.meter_streams import MeterStreams
    from shared.reading import Reading
    from shared.stale import is_stale
    from shared.stream import Entry, connect
    from shared.supervise import run_supervised


    class Totals:
        def __init__(self) -> None:
            self.first: Reading | None = None
            self.last: Reading | None = None

        def add(self, batch: list[Entry]) -> None:
            self.first = self.first or batch[0][1]
            self.last = batch[-1][1]


    async def main(settings) -> None:
        redis = await connect(settings.redis_url)      # waits out any Redis error
        totals = Totals()
        follower = Follower(MeterStreams(redis, settings.stream), totals.add, BACKGROUND)
        entitlements = Entitlements(redis, settings)

        async def report() -> None:                    # the work the license gates
            while True:
                if not is_stale(totals.last, limit=30.0):
                    ...                                # send totals.last.ic - totals.first.ic
                await asyncio.sleep(60)

        await run_supervised({                         # each restarted after an error
            "stream follower": follower.run,
            "entitlements": entitlements.run,
            "report": lambda: while_granted(entitlements, "rest", report),
        })
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass

from .meter_streams import Cursor, MeterStreams
from .metrics import LAST_READING_TS
from .stream import Entry, ReadingStream


@dataclass(frozen=True)
class Pacing:
    """How a follower reads: up to `count` readings per XREAD, and at most one XREAD per
    `min_interval` s unless the last batch was full (more are waiting: it reads on at once, so
    the intake has no cap). At meter rates (1 to 10 readings/s) it never waits; at hundreds a
    second each XREAD brings several readings (the cost is per XREAD, not per reading) and a
    new reading is handed over at most `min_interval` s later."""

    count: int = 100
    min_interval: float = 0.01


# REST hands every reading to its SSE/WebSocket clients: at most 5 ms added.
EVERY_READING = Pacing(count=100, min_interval=0.005)
# Modbus serves only the newest reading of each batch.
NEWEST_ONLY = Pacing(count=100, min_interval=0.01)
# Licensing needs only the newest meter id and meter time: noticing them up to 0.1 s later is
# fine. 250 rather than 1,000 per XREAD: at 9,000 readings/s the larger batches raised its peak
# resident set from 73 to 78 MB, for 0.003 ms less CPU per reading.
BACKGROUND = Pacing(count=250, min_interval=0.1)

Handle = Callable[[list[Entry]], object]


class Follower:
    """Follows the newest readings of `stream` into `handle` (see the module docstring): one
    stream, or every meter's (`shared.meter_streams.MeterStreams`), each batch from one meter."""

    def __init__(
        self,
        stream: ReadingStream | MeterStreams,
        handle: Handle,
        pacing: Pacing,
        *,
        loaded: asyncio.Event | None = None,
    ) -> None:
        self.streams = stream if isinstance(stream, MeterStreams) else MeterStreams.single(stream)
        self.handle = handle
        self.pacing = pacing
        self.cursor: Cursor = {}  # per stream, the newest entry handed over
        self.loaded = loaded or asyncio.Event()

    async def run(self) -> None:
        """Hand over each stream's newest reading, then every later one, forever."""
        for latest in await self.streams.wait_newest(self.cursor):
            LAST_READING_TS.set(latest[1].ts / 1000)
            self.handle([latest])
        self.loaded.set()
        loop = asyncio.get_running_loop()
        pacing = self.pacing
        last_batch = -math.inf
        async for batch in self.streams.follow_batches(self.cursor, count=pacing.count):
            self.handle(batch)
            now = loop.time()
            if len(batch) < pacing.count and now - last_batch < pacing.min_interval:
                await asyncio.sleep(pacing.min_interval - (now - last_batch))
                now = loop.time()
            last_batch = now
