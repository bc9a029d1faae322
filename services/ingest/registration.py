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

from shared.meters import MeterDirectory, MeterKeys, MeterRecord
from shared.reading import Reading
from shared.stream import REDIS_DOWN, redis_client

from .naming import MeterNaming

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 5.0


@dataclass
class Registration:
    """This ingest's meter as the directory shows it."""

    keys: MeterKeys
    naming: MeterNaming
    host: str = field(default_factory=socket.gethostname)
    started: int = field(default_factory=lambda: int(time.time() * 1000))
    model: str | None = None

    def seen(self, reading: Reading) -> None:
        self.model = reading.meter_model or self.model

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
            model=self.model,
            started=self.started,
            updated=now_ms,
        )

    async def write(self, redis: Redis) -> None:
        record = self.record(int(time.time() * 1000))
        if record is not None:
            await MeterDirectory(redis).put(record)


def conflict(mine: Registration, records: list[MeterRecord], now_ms: int) -> str | None:
    """What another running ingest already claims of ours, in one line, or None."""
    for other in records:
        if not other.alive(now_ms) or (other.host, other.source) == (mine.host, mine.naming.source):
            continue
        age = (now_ms - other.updated) / 1000
        where = f"{other.source} on host {other.host} (seen {age:.0f} s ago)"
        if mine.naming.configured and other.name == mine.naming.configured:
            return (
                f"meter name {other.name!r} is already read from {where}; this ingest reads "
                f"{mine.naming.source}: give each meter its own HANPORT_METER_NAME"
            )
        if other.readings == mine.keys.readings:
            return (
                f"the stream {other.readings} is already written for meter {other.name!r} read "
                f"from {where}; this ingest reads {mine.naming.source}: when a box reads "
                "several meters, set HANPORT_METER_NAME for each"
            )
    return None


async def check_unclaimed(url: str, mine: Registration) -> str | None:
    """`conflict` against the directory in Redis; None too when Redis does not answer within
    `CHECK_TIMEOUT_S` (the meter is read meanwhile; the check is logged as skipped)."""
    redis = redis_client(url)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            records = await MeterDirectory(redis).records()
    except (TimeoutError, *REDIS_DOWN) as error:
        log.warning("could not check the directory of meters (%s); going on", error)
        return None
    finally:
        await redis.aclose()
    return conflict(mine, records, int(time.time() * 1000))
