"""The export's license gate: the sinks are written only while a license grants `export`
(`shared.gate.while_granted`, as MQTT, Modbus and the emulations).

Held off means nothing is read from the readings streams and nothing is acknowledged: the
readings wait in Redis and go out, in order, once a license arrives (the intervals that changed
meanwhile too). The sinks' consumer groups are made while held off as well, so the ingest keeps
what they have not confirmed, within `HANPORT_STREAM_RETAIN_MAX`, from the first start on. Each
change is logged once and shown in `hanport_export_licensed`; meanwhile `watch_lag` keeps the lag
gauges current (the workers do while they run), so the backlog that builds up is seen.

A license that names its meters (`meters`, docs/licensing.md) narrows the export to them
(`ServedMeters`), as MQTT's messages: another meter's readings are passed over (the position
moves past them, as past the readings written, so the stream does not keep them) and its
intervals are not written; the first refusal of a meter is logged, each reading counted in
`hanport_entitlement_meter_refused_total{feature="export"}`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.cancellation import raise_if_cancelling, stop
from shared.entitlements import Decision, EntitlementSource, Feature, MeterFilter
from shared.gate import Change
from shared.meters import meter_of
from shared.retention import group_backlogs
from shared.stream import REDIS_DOWN

from . import metrics
from .sinks.entries import Entries

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


@dataclass
class ServedMeters:
    """The meters the export's license serves (its `meters`; every meter without it): what a
    batch of readings and a round of intervals are narrowed to. One per service, so each
    meter's first refusal is logged once."""

    entitlements: EntitlementSource
    meter_filter: MeterFilter = field(default_factory=lambda: MeterFilter(FEATURE))

    def narrow(self, entries: Entries) -> tuple[Entries, list[str]]:
        """(the entries of served meters, the ids of the others). Decided once per meter of
        the batch (a stream is mostly one meter's), not per reading."""
        decision = self.entitlements.decide(FEATURE)
        if decision.meters is None:
            return entries, []
        meters = [(meter_of(reading), reading.meter_id) for reading in entries.readings]
        served = {
            meter: self.meter_filter.serves(decision, *meter, count=count)
            for meter, count in Counter(meters).items()
        }
        if all(served.values()):
            return entries, []
        kept = [served[meter] for meter in meters]
        passed_over = [
            entry_id for entry_id, keep in zip(entries.ids, kept, strict=True) if not keep
        ]
        return entries.only(kept), passed_over

    def names(self, meters: Iterable[str]) -> set[str]:
        """Those of these meters (by name: the accounting intervals') the license serves.
        The others' intervals are not counted as refused: they are written once a license
        names their meter (`IntervalExport`)."""
        decision = self.entitlements.decide(FEATURE)
        return {name for name in set(meters) if self.meter_filter.serves(decision, name, count=0)}
