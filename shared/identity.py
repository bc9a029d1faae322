"""The reader's serial: configured (`HANPORT_SERIAL`), or generated once and kept in Redis so
every service and every restart agree on it."""

from __future__ import annotations

import secrets

from redis.asyncio import Redis

SERIAL_KEY = "hanport:serial"


def new_serial() -> str:
    return "HP" + secrets.token_hex(5).upper()


async def reader_serial(configured: str | None, redis: Redis) -> str:
    if configured:
        return configured
    await redis.set(SERIAL_KEY, new_serial(), nx=True)
    stored = await redis.get(SERIAL_KEY)
    return stored.decode() if isinstance(stored, bytes) else str(stored)
