"""The bridge's one licensing check: run the delivery only while a licence grants `mqtt`.

Consumes an entitlement source (`shared.entitlements.Entitlements`, or any object with the same
`decide`/`wait_until`); produces a running or held-off delivery. Held off means nothing is read
from the stream (readings wait in Redis) and nothing is sent to the broker; the state is logged
once per change and shown in `hanport_mqtt_licensed`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from shared.entitlements import Decision, Feature

from .metrics import LICENSED

log = logging.getLogger(__name__)
FEATURE: Feature = "mqtt"


class EntitlementSource(Protocol):
    def decide(self, feature: Feature) -> Decision: ...

    async def wait_until(self, feature: Feature, granted: bool) -> Decision: ...


async def while_licensed(
    entitlements: EntitlementSource, work: Callable[[], Awaitable[None]]
) -> None:
    """Run `work()` while MQTT is licensed; cancel it when the licence goes, start it again when
    one arrives. Returns when `work()` returns."""
    while True:
        decision = entitlements.decide(FEATURE)
        if not decision.granted:
            LICENSED.set(0)
            log.warning(
                "MQTT is not licensed (%s): holding off; readings wait in Redis and are "
                "published once a licence for 'mqtt' is installed",
                decision.reason,
            )
            decision = await entitlements.wait_until(FEATURE, granted=True)
        LICENSED.set(1)
        log.info("MQTT is licensed (%s): publishing", decision.licence_id or decision.reason)
        working = asyncio.ensure_future(work())
        lost = asyncio.ensure_future(entitlements.wait_until(FEATURE, granted=False))
        try:
            done, _ = await asyncio.wait({working, lost}, return_when=asyncio.FIRST_COMPLETED)
            if lost in done:
                LICENSED.set(0)
        finally:
            for task in (working, lost):
                task.cancel()
            await asyncio.gather(working, lost, return_exceptions=True)
        if working in done:
            working.result()  # re-raises what stopped the work
            return
        if lost.exception() is not None:
            log.warning("cannot follow the MQTT licence (%s); checking again", lost.exception())
            await asyncio.sleep(1)
            continue
        log.warning("the MQTT licence is gone (%s): stopped publishing", lost.result().reason)
