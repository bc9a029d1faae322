"""The reader's serial: one identity, established in one place, that every service waits for.

Licenses are bound to it, so where it comes from is a security question: a serial anyone with
Redis access could change would let them use a license issued to another reader.

- The licensing service establishes it (`choose_serial`): `HANPORT_SERIAL` when configured, else
  the one kept in its license folder (`HANPORT_LICENSE_DIR/serial`), else the one the installed
  licenses name, else a new one. It keeps it in the folder and publishes it to Redis
  (`SERIAL_KEY`) for display and for services that cannot read the folder.
- Every other service waits for it (`wait_for_serial`) and never makes one up: `HANPORT_SERIAL`,
  else the `serial` file in the license folder when the folder is there (compose mounts it
  read-only into each interface), else, only when there is no such folder, the serial in Redis.
- The caller keeps what it got for the life of its process (`shared.entitlements` checks every
  license against that serial and ignores later changes of the key in Redis).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from .backoff import Backoff
from .cancellation import raise_if_cancelling
from .stream import REDIS_DOWN

log = logging.getLogger(__name__)

SERIAL_KEY = "hanport:serial"
SERIAL_FILE = "serial"  # in HANPORT_LICENSE_DIR
POLL_S = 0.5  # how often a waiting service looks for the serial again


def new_serial() -> str:
    return "HP" + secrets.token_hex(5).upper()


def choose_serial(
    configured: str | None, kept: str | None, licensed: Iterable[str]
) -> tuple[str, str]:
    """The licensing service's choice of serial and where it came from: configured, else kept
    in the license folder, else the one most installed licenses name, else a new one."""
    if configured:
        return configured, "HANPORT_SERIAL"
    if kept:
        return kept, "the license folder"
    named = Counter(licensed).most_common(1)
    if named:
        return named[0][0], "the installed licenses"
    return new_serial(), "new"


def read_serial_file(folder: Path) -> str | None:
    """The serial kept in the license folder, None when there is none (yet)."""
    try:
        text = (folder / SERIAL_FILE).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return text or None


def source(configured: str | None, folder: Path | None) -> str:
    """Where a service other than licensing takes the serial from (see the module docstring)."""
    if configured:
        return "HANPORT_SERIAL"
    if folder is not None and folder.is_dir():
        return str(folder / SERIAL_FILE)
    return f"Redis ({SERIAL_KEY}; there is no license folder at {folder})"


def _look(configured: str | None, folder: Path | None) -> tuple[bool, str | None]:
    """(whether the answer is final without Redis, the serial found that way)."""
    if configured:
        return True, configured
    if folder is not None and folder.is_dir():
        return True, read_serial_file(folder)
    return False, None


async def reader_serial(configured: str | None, folder: Path | None, redis: Redis) -> str | None:
    """One look for the established serial (see the module docstring); None: not yet."""
    final, serial = _look(configured, folder)
    if final:
        return serial
    stored = await redis.get(SERIAL_KEY)
    if stored is None:
        return None
    return stored.decode() if isinstance(stored, bytes) else str(stored)


async def wait_for_serial(configured: str | None, folder: Path | None, redis: Redis) -> str:
    """`reader_serial`, waiting until the licensing service has established it (one log line),
    and waiting out Redis errors with backoff (one line per attempt). A WRONGTYPE reply (the
    key holds something else) is raised: waiting does not fix it."""
    backoff = Backoff()
    told = False
    while True:
        try:
            serial = await reader_serial(configured, folder, redis)
        except (RedisError, *REDIS_DOWN) as error:
            raise_if_cancelling(error)
            if isinstance(error, ResponseError) and "WRONGTYPE" in str(error):
                raise
            delay = backoff.next_delay()
            log.warning(
                "cannot read the reader serial from Redis (%s); retrying in %.1f s", error, delay
            )
            await asyncio.sleep(delay)
            continue
        except OSError as error:  # the folder is there but cannot be read
            raise_if_cancelling(error)
            serial = None
            if not told:
                log.error("cannot read the reader serial in %s: %s", folder, error)
        if serial is not None:
            log.info("reader serial %s (from %s)", serial, source(configured, folder))
            return serial
        if not told:
            told = True
            log.info(
                "waiting for the licensing service to establish the reader serial in %s (give "
                "this service the licensing service's HANPORT_LICENSE_DIR, read-only, or set "
                "HANPORT_SERIAL)",
                source(configured, folder),
            )
        await asyncio.sleep(POLL_S)
