"""Waiting for a running stack (local processes or containers) to reach a state: poll a check
until it holds or a deadline passes, then fail with the last error and the stack's logs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from pymodbus.exceptions import ModbusException

# what a check may raise while the stack is still getting there
NOT_YET = (httpx.HTTPError, ModbusException, OSError, AssertionError, TimeoutError)


async def until(
    check: Callable[[], Awaitable[Any]],
    what: str,
    logs: Callable[[], str],
    within: float,
    every: float = 0.1,
) -> Any:
    """Poll `check` (truthy when done) every `every` s until it succeeds or `within` s pass."""
    deadline = time.monotonic() + within
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = await check()
            if result:
                return result
        except NOT_YET as error:
            last_error = error
        await asyncio.sleep(every)
    raise AssertionError(
        f"timed out after {within} s waiting for {what} (last error: {last_error!r})\n{logs()}"
    )
