"""The box's health, published every `HANPORT_UPLINK_HEALTH_INTERVAL` s: version, licence state
per feature, and lag (readings not yet at the hub, per meter and in all)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from nats.js import JetStreamContext
from redis.asyncio import Redis

from shared.entitlements import FEATURES, EntitlementSource

from .messages import Health, MeterHealth, health_message
from .metrics import LAG
from .publish import publish_in_order
from .relay import MeterRelay

log = logging.getLogger(__name__)


def hanport_version() -> str:
    try:
        return version("hanport")
    except PackageNotFoundError:
        return "unknown"


async def group_lag(redis: Redis, stream: str, group: str) -> int:
    """Entries of `stream` the group has not acknowledged: never read (lag) plus pending."""
    groups: Any = await redis.xinfo_groups(stream)
    for info in groups:
        name = info.get("name")
        name = name.decode() if isinstance(name, bytes) else name
        if name == group:
            return int(info.get("lag") or 0) + int(info.get("pending") or 0)
    return 0


@dataclass
class HealthReporter:
    redis: Redis
    js: JetStreamContext
    box: str
    relays: dict[str, MeterRelay]  # by stream key
    entitlements: EntitlementSource
    spooled: Callable[[], Any] | None  # async: readings on the spool
    interval: float
    stage: str
    timeout: float = 5.0

    async def snapshot(self) -> Health:
        meters: dict[str, MeterHealth] = {}
        for key, relay in list(self.relays.items()):  # grows as meters appear
            lag = await group_lag(self.redis, key, relay.group)
            LAG.labels(key).set(lag)
            meters[key] = MeterHealth(stream=key, lag=lag, last_entry=relay.last_entry)
        spool = int(await self.spooled()) if self.spooled else 0
        licence: dict[str, str] = {}
        for feature in FEATURES:
            decision = self.entitlements.decide(feature)
            licence[feature] = "granted" if decision.granted else decision.reason
        return Health(
            box=self.box, ts=int(time.time() * 1000), version=hanport_version(), licence=licence,
            meters=meters, spool=spool, lag=spool + sum(m.lag for m in meters.values()),
        )  # fmt: skip

    async def run(self) -> None:
        while True:
            message = health_message(await self.snapshot())
            await publish_in_order(self.js, [message], ack_timeout=self.timeout, stage=self.stage)
            await asyncio.sleep(self.interval)
