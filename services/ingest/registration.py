"""The meter's record in the box's directory of meters (`shared.meters`, the hash
`hanport:meters`): written with the ingest status every few seconds once the meter's name is
known, so consumers find its streams; and, at start, the check that no other running ingest
already reads a meter under the same name (or writes the same classic stream).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass, field

from redis.asyncio import Redis

from shared.ingest_status import EVERY_SECONDS
from shared.meters import MeterDirectory, MeterKeys, MeterRecord
from shared.stream import REDIS_DOWN, redis_client

from .naming import MeterNaming

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 5.0
# How long a record that looks alive is watched for a rewrite before it counts as left behind by
# an ingest that stopped: longer than the status (and record) rewrite interval.
WATCH_S = EVERY_SECONDS + 3.0
WATCH_EVERY_S = 0.5


@dataclass
class Registration:
    """This ingest's meter as the directory shows it."""

    keys: MeterKeys
    naming: MeterNaming
    host: str = field(default_factory=socket.gethostname)
    started: int = field(default_factory=lambda: int(time.time() * 1000))

    def record(self, now_ms: int) -> MeterRecord | None:
        """The record to write; None until the meter's name is known (its first reading, when
        no name is configured)."""
        name = self.naming.configured or self.naming.name
        if name is None:
            return None
        return MeterRecord(
            name=name,
            readings=self.keys.readings,
            raw=self.keys.raw,
            status=self.keys.status,
            source=self.naming.source,
            host=self.host,
            meter_id=self.naming.meter_id,
            model=self.naming.model,
            started=self.started,
            updated=now_ms,
        )

    async def write(self, redis: Redis) -> None:
        record = self.record(int(time.time() * 1000))
        if record is not None:
            await MeterDirectory(redis).put(record)


def conflict(mine: Registration, records: list[MeterRecord], now_ms: int) -> Conflict | None:
    """What another ingest, alive by its record, already claims of ours, or None."""
    for other in records:
        if not other.alive(now_ms) or (other.host, other.source) == (mine.host, mine.naming.source):
            continue
        if mine.naming.configured and other.name == mine.naming.configured:
            return Conflict(other, f"meter name {other.name!r} is already read from {{where}}; "
                            f"this ingest reads {mine.naming.source}: give each meter its own "
                            "HANPORT_METER_NAME")  # fmt: skip
        if other.readings == mine.keys.readings:
            return Conflict(other, f"the stream {other.readings} is already written for meter "
                            f"{other.name!r} read from {{where}}; this ingest reads "
                            f"{mine.naming.source}: when a box reads several meters, set "
                            "HANPORT_METER_NAME for each")  # fmt: skip
    return None


@dataclass(frozen=True)
class Conflict:
    """Another ingest's record that claims our meter name or stream, and what to say of it."""

    other: MeterRecord
    says: str  # with `{where}` for where the other reads, filled in by `line`

    def line(self, now_ms: int) -> str:
        other = self.other
        age = (now_ms - other.updated) / 1000
        where = f"{other.source} on host {other.host} (seen {age:.0f} s ago)"
        return self.says.replace("{where}", where)


async def check_unclaimed(url: str, mine: Registration, watch_s: float = WATCH_S) -> str | None:
    """The line that refuses this ingest when another one is running for its meter name (or
    stream), else None. A record alive by its time may be the one a stopped container left
    (recreated containers have new host names): it is watched for `watch_s` (longer than the
    record's rewrite interval) and only a record rewritten meanwhile refuses. None too when
    Redis does not answer within `CHECK_TIMEOUT_S` (the meter is read meanwhile; logged)."""
    redis = redis_client(url)
    directory = MeterDirectory(redis)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            found = conflict(mine, await directory.records(), int(time.time() * 1000))
        if found is None:
            return None
        deadline = time.monotonic() + watch_s
        while time.monotonic() < deadline:
            await asyncio.sleep(WATCH_EVERY_S)
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                now = await directory.get(found.other.name)
            if now is not None and now.updated > found.other.updated:
                return Conflict(now, found.says).line(int(time.time() * 1000))
        log.warning(
            "the ingest that read this meter (%s on host %s) stopped updating the directory; "
            "taking over",
            found.other.source,
            found.other.host,
        )
        return None
    except (TimeoutError, *REDIS_DOWN) as error:
        log.warning("could not check the directory of meters (%s); going on", error)
        return None
    finally:
        await redis.aclose()
