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


async def publish(
    redis: Redis,
    records: Mapping[str, Record],
    *,
    notify: bool = True,
    serial: str | None = None,
) -> None:
    """Store the records (and the reader `serial`, when given, at `SERIAL_KEY`: a wiped or
    overwritten key is repaired) and (unless `notify` is false) notify every `Entitlements`
    follower."""
    if not records:
        return
    pipe = redis.pipeline(transaction=True)
    if serial is not None:
        pipe.set(SERIAL_KEY, serial)
    for feature, record in records.items():
        pipe.set(record_key(feature), encode_record(record))
    if notify:
        pipe.publish(CHANNEL, ",".join(records))
    await pipe.execute()
