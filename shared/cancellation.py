"""Stopping tasks that talk to Redis.

A cancellation that lands inside a redis-py command (redis-py 8, Python 3.11) can come out as a
ConnectionError or a timeout, or not come out at all: some steps of a pipeline's `execute` or
of a pub/sub read let the command return normally. The task still knows it is being cancelled
(`Task.cancelling()`), so loops around Redis calls check that and stop, instead of treating
the error as an outage and reconnecting, or waiting out their next timer.
"""

from __future__ import annotations

import asyncio
from typing import Any


def raise_if_cancelling(cause: BaseException | None = None) -> None:
    """Raise the CancelledError that redis-py turned into `cause` or swallowed, if the current
    task is being cancelled; return otherwise."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from cause


async def stop(task: asyncio.Future[Any], every: float = 0.5) -> None:
    """Cancel `task` and wait for it to end, cancelling again every `every` seconds while it
    runs on (a cancel it lost)."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=every)
