"""Redis calls that wait out outages: the retry the MQTT bridge and the export's workers share.

`RedisRetry(...)(call, *args)` is `await call(*args)`, except that
- Redis unreachable (`shared.stream.REDIS_DOWN`) is waited out with backoff: one warning per
  outage, `hanport_redis_connected` 0 meanwhile, 1 again after;
- a consumer group Redis lost (`NOGROUP`, or what the caller adds to `gone`: a restart without
  persistence, a FLUSHALL) is made again (`regroup`) and the call tried again, up to 5 times;
- a key of another type (`WRONGTYPE`) stops the service (`Fatal`) with a message naming the
  caller's keys: no retry can mend it;
- a cancel passes through, even one redis-py turned into a ConnectionError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.exceptions import ResponseError

from .backoff import Backoff
from .cancellation import raise_if_cancelling
from .metrics import REDIS_CONNECTED
from .stream import REDIS_DOWN
from .supervise import Fatal

log = logging.getLogger(__name__)
T = TypeVar("T")
REGROUP_ATTEMPTS = 5


def _nothing(*_args: Any) -> None:
    return None


@dataclass
class RedisRetry:
    """The retry of one service's Redis calls (the module's docstring)."""

    keys: str  # the keys the caller uses, named when one holds another type
    regroup: Callable[[], Awaitable[None]]  # make the caller's consumer groups again
    groups: str = "a consumer group"  # what `regroup` makes, for the log
    gone: tuple[str, ...] = ("NOGROUP",)  # errors that mean the groups are gone
    on_down: Callable[[bool], None] = _nothing  # Redis unreachable (True: a new outage)
    on_error: Callable[[], None] = _nothing  # any Redis error (a metric)

    async def __call__(self, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        backoff = Backoff()
        while True:
            try:
                result = await call(*args)
            except REDIS_DOWN as error:
                raise_if_cancelling()  # redis-py may make a ConnectionError of a cancel
                REDIS_CONNECTED.set(0)
                self.on_error()
                self.on_down(backoff.attempts == 0)
                if backoff.attempts == 0:
                    log.warning(
                        "lost Redis (%s); retrying, nothing is acknowledged meanwhile", error
                    )
                await asyncio.sleep(backoff.next_delay())
                continue
            except ResponseError as error:
                raise_if_cancelling(error)
                self.on_error()
                if "WRONGTYPE" in str(error):
                    raise Fatal(
                        f"Redis refused a command ({error}): {self.keys} holds another kind "
                        "of value; delete that key or name other keys"
                    ) from error
                gone = any(text in str(error) for text in self.gone)
                if not gone or backoff.attempts > REGROUP_ATTEMPTS:
                    raise
                log.warning("%s is gone (Redis lost its data?); making it again", self.groups)
                await asyncio.sleep(backoff.next_delay())
                with contextlib.suppress(*REDIS_DOWN, ResponseError):  # else: the next round
                    await self.regroup()
                continue
            if backoff.attempts:
                REDIS_CONNECTED.set(1)
            raise_if_cancelling()
            return result
