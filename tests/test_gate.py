"""shared/gate.py: work runs exactly while the feature is granted (pure asyncio, no server; the
interfaces' tests check the same with real signed licenses in Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from shared.entitlements import Decision, Feature
from shared.gate import Change, while_granted

TIMEOUT = 5


class Switch:
    """An entitlement source whose grant the test switches (`shared.entitlements.Entitlements`
    does the same from Redis)."""

    def __init__(self, granted: bool) -> None:
        self.granted = granted
        self.changed = asyncio.Event()

    def set(self, granted: bool) -> None:
        self.granted = granted
        self.changed.set()

    def decide(self, feature: Feature) -> Decision:
        return Decision(self.granted, f"{feature} {'granted' if self.granted else 'not granted'}")

    async def wait_until(self, feature: Feature, granted: bool) -> Decision:
        while self.granted != granted:
            self.changed.clear()
            await self.changed.wait()
        return self.decide(feature)


class Seen:
    """What the gate reported and the work did, in order, with an event per entry."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.running: list[bool] = []
        self.event = asyncio.Event()

    def report(self, change: Change, _decision: Decision) -> None:
        self.changes.append(change)
        self.event.set()

    def run(self, running: bool) -> None:
        self.running.append(running)
        self.event.set()

    async def until(self, check: Callable[[], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not check():
                self.event.clear()
                await self.event.wait()


async def test_work_starts_when_granted_stops_when_withdrawn_and_starts_again() -> None:
    switch = Switch(granted=False)
    seen = Seen()

    async def work() -> None:
        seen.run(True)
        try:
            await asyncio.Event().wait()
        finally:
            seen.run(False)

    gate = asyncio.create_task(while_granted(switch, "mqtt", work, report=seen.report))
    try:
        await seen.until(lambda: seen.changes == ["refused"])
        assert seen.running == []
        switch.set(True)
        await seen.until(lambda: seen.running == [True])
        switch.set(False)
        await seen.until(lambda: seen.running == [True, False])
        switch.set(True)
        await seen.until(lambda: seen.running == [True, False, True])
        assert seen.changes == ["refused", "granted", "withdrawn", "refused", "granted"]
    finally:
        gate.cancel()
        await asyncio.wait([gate], timeout=TIMEOUT)
    assert seen.running[-1] is False  # cancelling the gate stops the work


async def test_a_grant_within_the_grace_is_not_reported_as_refused() -> None:
    switch = Switch(granted=False)
    changes: list[Change] = []
    finished = asyncio.Event()

    async def work() -> None:
        finished.set()

    asyncio.get_running_loop().call_later(0.05, switch.set, True)
    await asyncio.wait_for(
        while_granted(switch, "modbus", work, report=lambda c, _d: changes.append(c), grace=3),
        TIMEOUT,
    )
    assert finished.is_set() and changes == ["granted"]  # returns when the work returns
