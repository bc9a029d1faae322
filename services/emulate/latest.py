"""The newest reading of every meter, and which meter a device serves to which client.

Consumes batches of readings (`shared.follow.Follower`'s handle); produces, per meter name
(`shared.meters.meter_of`), its newest reading, served only while fresh (`shared.stale`):

    latest = Latest(stale_after=20.0)
    follower = Follower(MeterStreams(redis, classic_stream), latest.update, NEWEST_ONLY)
    latest.get("house")     # the newest Reading of meter "house", or None
    latest.fresh("house")   # the same, or None when older than stale_after (never zeros)

The SMA sender and every other personality read it; `Choice` says which meter one of them
serves to a client address (`HANPORT_EMULATE_CLIENTS`, its own meter setting,
`HANPORT_DEFAULT_METER`, then `shared.meters.default_meter`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.meters import default_meter, meter_of
from shared.reading import Reading
from shared.stale import is_stale
from shared.stream import Entry, ReadingStream

from .metrics import RECEIVED
from .settings import Network

CLASSIC_REFRESH_S = 5.0  # how often the classic stream's meter is looked up


class Latest:
    """The newest reading per meter (see the module docstring). `clock`: seconds since the
    epoch (tests pass their own)."""

    def __init__(self, stale_after: float, clock: Callable[[], float] = time.time) -> None:
        self.stale_after = stale_after
        self.clock = clock
        self.readings: dict[str, Reading] = {}
        # the meter whose readings come on the classic stream (`follow_classic` keeps it)
        self.classic: str | None = None
        self._changed = asyncio.Event()

    def update(self, batch: list[Entry]) -> None:
        """Keep the newest reading of each meter in `batch` (readings of one meter come in
        order); wake whoever waits for a change."""
        for _id, reading in batch:
            self.readings[meter_of(reading)] = reading
        if batch:
            newest = batch[-1][1]
            RECEIVED.labels(meter_of(newest)).set(newest.received / 1000)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def get(self, meter: str) -> Reading | None:
        return self.readings.get(meter)

    def fresh(self, meter: str | None) -> Reading | None:
        """The meter's newest reading, or None when there is none or it is stale."""
        reading = None if meter is None else self.readings.get(meter)
        if reading is None or is_stale(reading, self.stale_after, self.clock()):
            return None
        return reading

    def is_stale(self, meter: str) -> bool:
        return is_stale(self.readings.get(meter), self.stale_after, self.clock())

    def names(self) -> list[str]:
        return sorted(self.readings)

    async def follow_classic(self, stream: ReadingStream, every: float = CLASSIC_REFRESH_S) -> None:
        """Keep `classic` the meter of the classic stream's newest reading, forever."""
        while True:
            latest = await stream.latest()
            if latest is not None:
                self.classic = meter_of(latest[1])
            await asyncio.sleep(every)

    async def until(self, predicate: Callable[[], object]) -> None:
        """Return once `predicate()` is true, checking after every update (tests, benchmarks)."""
        while not predicate():
            await self._changed.wait()


@dataclass(frozen=True)
class Choice:
    """Which meter a device serves: per client address first, then the device's own setting,
    then the box's default meter."""

    latest: Latest
    meter: str | None = None  # the device's own setting (HANPORT_SHELLY_METER, ...)
    default: str | None = None  # HANPORT_DEFAULT_METER
    clients: list[tuple[Network, str]] = field(default_factory=list)
    # whether the device's license serves a meter (a license may name its meters); None: all
    allowed: Callable[[str, Reading], bool] | None = None

    def meter_for(self, address: str | None = None) -> str | None:
        if address and self.clients:
            try:
                ip = ipaddress.ip_address(address.split("%", 1)[0])
            except ValueError:
                ip = None
            if ip is not None:
                mapped = getattr(ip, "ipv4_mapped", None) or ip
                for network, meter in self.clients:
                    if mapped in network:
                        return meter
        if self.meter:
            return self.meter
        return default_meter(self.latest.names(), self.default, self.latest.classic)

    def reading_for(self, address: str | None = None) -> tuple[str | None, Reading | None]:
        """(the meter, its fresh reading; None when there is none, it is stale or the license
        does not serve that meter)."""
        meter = self.meter_for(address)
        reading = self.latest.fresh(meter)
        if reading is None or meter is None or self.allowed is None:
            return meter, reading
        return meter, reading if self.allowed(meter, reading) else None
