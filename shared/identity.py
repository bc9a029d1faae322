"""The reader's serial: configured (`HANPORT_SERIAL`), or generated once and kept in Redis so
every service and every restart agree on it."""

from __future__ import annotations

import asyncio
import logging
import secrets

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .backoff import Backoff
from .cancellation import raise_if_cancelling
from .stream import REDIS_DOWN

log = logging.getLogger(__name__)

SERIAL_KEY = "hanport:serial"


def new_serial() -> str:
    return "HP" + secrets.token_hex(5).upper()


async def reader_serial(configured: str | None, redis: Redis) -> str:
    if configured:
        return configured
    await redis.set(SERIAL_KEY, new_serial(), nx=True)
    stored = await redis.get(SERIAL_KEY)
    return stored.decode() if isinstance(stored, bytes) else str(stored)


async def wait_for_serial(configured: str | None, redis: Redis) -> str:
    """`reader_serial`, waiting out any Redis error with backoff (one log line per attempt)."""
    backoff = Backoff()
    while True:
        try:
            return await reader_serial(configured, redis)
        except (RedisError, *REDIS_DOWN) as error:
            raise_if_cancelling(error)
            delay = backoff.next_delay()
            log.warning(
                "cannot read the reader serial from Redis (%s); retrying in %.1f s", error, delay
            )
            await asyncio.sleep(delay)
