"""Whether an interface may serve now: the one place every interface asks.

The licensing service publishes, per feature (`rest`, `mqtt`, `modbus`), a record in Redis that
carries the signed licence it rests on. `Entitlements` follows those records, verifies each
licence's signature itself with the trusted public keys (a record written by hand grants
nothing), and keeps the last verified decision until that licence's own expiry when the
licensing service or Redis is away.

Interfaces use it like this:

    entitlements = Entitlements(redis, settings)
    asyncio.create_task(entitlements.run())
    decision = entitlements.decide("mqtt")          # Decision(granted, reason, until, licence_id)
    await entitlements.wait_until("mqtt", granted=True)

In consumer use REST is granted without a licence; MQTT and Modbus need an activation.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from .settings import CommonSettings

Feature = Literal["rest", "mqtt", "modbus"]
FEATURES: tuple[Feature, ...] = ("rest", "mqtt", "modbus")


@dataclass(frozen=True)
class Decision:
    granted: bool
    reason: str
    until: int | None = None  # ms since the epoch; None: no expiry
    licence_id: str | None = None


class Entitlements:
    """Follows the verified entitlements for this reader; see the module docstring."""

    def __init__(self, redis: Redis, settings: CommonSettings) -> None:
        self.redis = redis
        self.settings = settings
        self._changed = asyncio.Condition()

    async def run(self) -> None:
        """Keep decisions current until cancelled (filled in by the licensing issue)."""
        await asyncio.Event().wait()

    def decide(self, feature: Feature) -> Decision:
        if feature == "rest" and self.settings.use == "consumer":
            return Decision(True, "REST is free in consumer use")
        return Decision(False, f"no licence grants '{feature}' to this reader")

    async def wait_until(self, feature: Feature, granted: bool) -> Decision:
        async with self._changed:
            await self._changed.wait_for(lambda: self.decide(feature).granted == granted)
        return self.decide(feature)
