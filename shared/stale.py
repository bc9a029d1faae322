"""When a reading is too old to serve: the one stale rule every interface applies.

A reading's age is counted from when the gateway received it (`Reading.received`, ms since the
epoch), not from the meter's own clock. It is stale when older than the interface's limit
(`HANPORT_REST_STALE_AFTER`, `HANPORT_MODBUS_STALE_AFTER`); no reading at all counts as stale.

    age_s(reading)                    # 1.2 (s), or None without a reading
    is_stale(reading, limit=30.0)     # False
    stale_reason(reading, limit=30.0) # None, or ("the newest reading is 31.0 s old ...", 31.0)
"""

from __future__ import annotations

import time

from .reading import Reading

NO_READING = "no reading received yet"


def age_s(reading: Reading | None, now: float | None = None) -> float | None:
    """Seconds since the gateway received `reading` (never negative); None without one.
    `now` is seconds since the epoch (default: the system clock)."""
    if reading is None:
        return None
    return max(0.0, (time.time() if now is None else now) - reading.received / 1000)


def is_stale(reading: Reading | None, limit: float, now: float | None = None) -> bool:
    """Whether `reading` is missing or older than `limit` seconds."""
    age = age_s(reading, now)
    return age is None or age > limit


def stale_reason(
    reading: Reading | None, limit: float, now: float | None = None
) -> tuple[str, float | None] | None:
    """None when `reading` is fresh, else (why, its age in seconds rounded to ms, or None)."""
    age = age_s(reading, now)
    if age is None:
        return (NO_READING, None)
    if age > limit:
        return (f"the newest reading is {age:.1f} s old (limit {limit:g} s)", round(age, 3))
    return None
