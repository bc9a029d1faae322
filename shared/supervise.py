"""Keeping a service's background tasks running: restart a task that failed, with backoff.

Every long-running piece of work of a service (following the stream, watching Redis, the
entitlements, the MQTT delivery and its housekeeping) runs under `supervise`: an unexpected
error is logged with its traceback, counted in `hanport_task_restarts_total{task}` and the work
started again after a backoff delay (reset once it ran for `HEALTHY_AFTER_S`), so no single
failure takes the service down. Two things are not restarted: a cancel (the service is
stopping) and `Fatal`, an error that restarting cannot mend; it ends the service, which exits
with status 1 (`shared.service.run`) and the container's restart policy or the operator takes
over.

`run_supervised` runs several such tasks at once and stops them all, reliably (a cancel that
redis-py swallowed is repeated, `shared.cancellation.stop`), when one fails for good or the
caller is cancelled:

    await run_supervised({
        "stream follower": follower.run,
        "entitlements": entitlements.run,
    })
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from prometheus_client import Counter

from .backoff import Backoff
from .cancellation import stop

log = logging.getLogger(__name__)

HEALTHY_AFTER_S = 60.0  # a task that ran this long before failing starts again at once

Work = Callable[[], Awaitable[None]]

TASK_RESTARTS = Counter(
    "hanport_task_restarts_total",
    "Background tasks started again after an unexpected error, by task.",
    ["task"],
)


class Fatal(Exception):
    """An error restarting cannot mend (the configuration, or what Redis holds, must change
    first): `supervise` lets it through and the service ends with exit status 1. Its message
    says what is wrong and what to do."""


async def supervise(name: str, work: Work, *, backoff: Backoff | None = None) -> None:
    """Run `work()` until it returns; after an unexpected error, log it, count it and run it
    again after a backoff delay. A cancel and `Fatal` pass through."""
    backoff = backoff or Backoff()
    restarts = TASK_RESTARTS.labels(name)
    while True:
        started = time.monotonic()
        try:
            await work()
            return
        except (asyncio.CancelledError, Fatal):
            raise
        except Exception:
            log.exception("%s failed; starting it again", name)
        restarts.inc()
        if time.monotonic() - started >= HEALTHY_AFTER_S:
            backoff.reset()
        await asyncio.sleep(backoff.next_delay())


async def run_supervised(works: Mapping[str, Work]) -> None:
    """Run every work under `supervise` at once, until all of them returned, one raised
    `Fatal` (raised here) or the caller is cancelled; the others are then stopped, and this
    returns only once they ended."""
    tasks = [asyncio.create_task(supervise(name, work), name=name) for name, work in works.items()]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            await stop(task)
    for task in done:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error
