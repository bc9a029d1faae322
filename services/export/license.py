"""The export's license gate: the sinks are written only while a license grants `export`
(`shared.gate.while_granted`, as MQTT, Modbus and the emulations).

Held off means nothing is read from the readings streams and nothing is acknowledged: the
readings wait in Redis and go out, in order, once a license arrives (the intervals that changed
meanwhile too). The sinks' consumer groups are made while held off as well, so the ingest keeps
what they have not confirmed, within `HANPORT_STREAM_RETAIN_MAX`, from the first start on. Each
change is logged once and shown in `hanport_export_licensed`; meanwhile `watch_lag` keeps the lag
gauges current (the workers do while they run), so the backlog that builds up is seen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.cancellation import raise_if_cancelling, stop
from shared.entitlements import Decision, EntitlementSource, Feature
from shared.gate import Change
from shared.retention import group_backlogs
from shared.stream import REDIS_DOWN

from . import metrics

log = logging.getLogger(__name__)
FEATURE: Feature = "export"
STARTUP_GRACE_S = 3.0  # the entitlements may not have read Redis yet
LAG_EVERY_S = 5.0  # as the workers' own lag gauges


def report(change: Change, decision: Decision) -> None:
    metrics.LICENSED.set(int(change == "granted"))
    if change == "granted":
        log.info("export is licensed (%s): writing", decision.license_id or decision.reason)
    elif change == "refused":
        log.warning(
            "export is not licensed (%s): holding off, nothing is written or acknowledged; "
            "readings wait in Redis and are exported once a license grants 'export' (consumer "
            "use: `hanport license self-activate`; commercial use: a license or trial from the "
            "vendor; docs/licensing.md)",
            decision.reason,
        )
    else:
        log.warning("the export license is gone (%s): stopped writing", decision.reason)


async def while_refused(
    entitlements: EntitlementSource, work: Callable[[], Awaitable[None]]
) -> None:
    """Run `work()` while `export` is not granted (the inverse of `while_granted`); forever."""
    while True:
        await entitlements.wait_until(FEATURE, granted=False)
        running = asyncio.ensure_future(work())
        try:
            await entitlements.wait_until(FEATURE, granted=True)
        finally:
            await stop(running)


async def watch_lag(redis: Redis, key: str, sinks: list[str], group_prefix: str) -> None:
    """The lag gauges of each sink's group on `key`, every LAG_EVERY_S s; forever."""
    while True:
        try:
            backlogs = await group_backlogs(redis, key, group_prefix)
            for sink in sinks:
                backlog = backlogs.get(group_prefix + sink)
                if backlog is not None:
                    metrics.LAG_ENTRIES.labels(sink, key).set(backlog.entries)
                    metrics.LAG_SECONDS.labels(sink, key).set(backlog.age_s())
        except (*REDIS_DOWN, ResponseError) as error:
            raise_if_cancelling(error)
            log.debug("lag unavailable: %s", error)
        await asyncio.sleep(LAG_EVERY_S)
