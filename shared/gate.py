"""Running work only while a license grants its feature: the one license gate.

`while_granted` starts the work when the feature is granted, cancels it when the grant is
withdrawn (or expires) and starts it again when a license arrives, for as long as the service
runs. What the service says about each change (log lines, its `*_licensed` gauge) is its
`report`:

    def report(change: Change, decision: Decision) -> None:
        LICENSED.set(int(change == "granted"))
        if change != "granted":
            log.warning("MQTT is not licensed (%s): holding off", decision.reason)

    await while_granted(entitlements, "mqtt", deliver, report=report)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Literal

from .cancellation import stop
from .entitlements import Decision, EntitlementSource, Feature

log = logging.getLogger(__name__)

# "refused": not granted when the gate looked (at start-up, or after a withdrawal it waits);
# "granted": the work starts now; "withdrawn": the grant went, the work is being stopped.
Change = Literal["refused", "granted", "withdrawn"]
Report = Callable[[Change, Decision], None]
RETRY_S = 1.0  # after the entitlements failed to answer (they follow Redis themselves)


def _silent(_change: Change, _decision: Decision) -> None:
    pass


async def while_granted(
    entitlements: EntitlementSource,
    feature: Feature,
    work: Callable[[], Awaitable[None]],
    *,
    report: Report = _silent,
    grace: float = 0.0,
) -> None:
    """Run `work()` while `feature` is granted; cancel it (and wait until it ended) when the
    grant goes, start it again when it comes back. Returns when `work()` returns, raises what
    it raises. `grace`: seconds to wait for a grant at start-up before reporting "refused"
    (the entitlements may not have read Redis yet)."""
    decision = entitlements.decide(feature)
    if not decision.granted and grace > 0:
        with suppress(TimeoutError):
            decision = await asyncio.wait_for(entitlements.wait_until(feature, True), grace)
    while True:
        if not decision.granted:
            report("refused", decision)
            decision = await entitlements.wait_until(feature, granted=True)
        report("granted", decision)
        working = asyncio.ensure_future(work())
        lost = asyncio.ensure_future(entitlements.wait_until(feature, granted=False))
        try:
            done, _ = await asyncio.wait({working, lost}, return_when=asyncio.FIRST_COMPLETED)
            if lost in done and lost.exception() is None:
                decision = lost.result()
                report("withdrawn", decision)
        finally:
            await stop(working)
            await stop(lost)
        if working in done:
            working.result()  # re-raises what stopped the work
            return
        error = lost.exception()
        if error is not None:
            log.warning("cannot follow the '%s' entitlement (%s); checking again", feature, error)
            await asyncio.sleep(RETRY_S)
            decision = entitlements.decide(feature)
