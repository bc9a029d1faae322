"""Writing the per-feature entitlement records and the change notification to Redis.

Consumes `shared.entitlements.Record` values; produces one JSON string per feature at
`RECORD_PREFIX + feature` and one message on `CHANNEL` (the changed features, comma-separated),
in one MULTI/EXEC so a reader never sees half an update.
"""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis

from shared.entitlements import CHANNEL, Record, encode_record, record_key
from shared.identity import SERIAL_KEY

# the highest time (ms) the licensing service judged licenses by; also in HANPORT_LICENSE_DIR
TIME_FLOOR_KEY = "hanport:license:time-floor"


def parse_floor(stored: bytes | str | None) -> int:
    """The time floor kept in Redis (0: none, or not a number)."""
    try:
        return int(stored or 0)
    except ValueError:
        return 0


async def publish(
    redis: Redis,
    records: Mapping[str, Record],
    *,
    notify: bool = True,
    serial: str | None = None,
    time_floor: int | None = None,
) -> None:
    """Store the records (and the reader `serial` at `SERIAL_KEY` and the `time_floor` at
    `TIME_FLOOR_KEY`, when given: a wiped or overwritten key is repaired) and (unless `notify` is false) notify every `Entitlements`
    follower."""
    if not records:
        return
    pipe = redis.pipeline(transaction=True)
    if serial is not None:
        pipe.set(SERIAL_KEY, serial)
    if time_floor is not None:
        pipe.set(TIME_FLOOR_KEY, time_floor)
    for feature, record in records.items():
        pipe.set(record_key(feature), encode_record(record))
    if notify:
        pipe.publish(CHANNEL, ",".join(records))
    await pipe.execute()
