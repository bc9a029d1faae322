"""The Modbus service: follows the readings stream into the register store, and opens the TCP
port only while a licence grants Modbus.

Consumes the readings stream (`shared.stream.ReadingStream.follow_batches`, no polling: the
newest reading of each XREAD's batch) and the `modbus` entitlement (`shared.entitlements`);
produces a Modbus TCP server on HANPORT_MODBUS_HOST:HANPORT_MODBUS_PORT. Without the entitlement
the port is closed (clients get "connection refused"), the log says why and
`hanport_modbus_licensed` is 0; it opens as soon as a licence arrives and closes, dropping its
clients, when the licence goes away.
"""

from __future__ import annotations

import asyncio
import logging
import math
from contextlib import suppress
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

from redis.asyncio import Redis

from shared.backoff import Backoff
from shared.entitlements import Decision, Entitlements, Feature
from shared.identity import reader_serial
from shared.stream import ReadingStream

from .metrics import DATA_AGE, LICENSED
from .register_map import Identity, blocks
from .server import HanportModbusServer
from .settings import ModbusSettings
from .store import RegisterStore

log = logging.getLogger(__name__)
FEATURE: Feature = "modbus"
STARTUP_GRACE_S = 3.0
MIN_BATCH_INTERVAL_S = 0.01
BATCH_COUNT = 100  # readings per XREAD at most


class PortState:
    """Whether the port is open now; events to await a change (tests, benchmarks)."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self.closed.set()

    def set(self, is_open: bool) -> None:
        (self.closed if is_open else self.opened).clear()
        (self.opened if is_open else self.closed).set()


class EntitlementSource(Protocol):
    """What the service asks about its licence (`shared.entitlements.Entitlements`)."""

    def decide(self, feature: Feature) -> Decision: ...

    async def wait_until(self, feature: Feature, granted: bool) -> Decision: ...


def hanport_version() -> str:
    try:
        return version("hanport")
    except PackageNotFoundError:
        return "dev"


def make_store(settings: ModbusSettings, serial: str) -> RegisterStore:
    identity = Identity(serial=serial, version=hanport_version(), unit_id=settings.modbus_unit_id)
    return RegisterStore(
        blocks(settings.modbus_sunspec_model),
        identity,
        unit_id=settings.modbus_unit_id,
        stale_after=settings.modbus_stale_after,
    )


async def follow_readings(stream: ReadingStream, store: RegisterStore) -> None:
    """Put the newest reading into the store, then the newest of every batch as it arrives."""
    latest = await stream.wait_latest()
    after = "0-0"
    if latest is not None:
        after = latest[0]
        store.update(latest[1])
    loop = asyncio.get_running_loop()
    last_batch = -math.inf
    async for batch in stream.follow_batches(after, count=BATCH_COUNT):
        # one XREAD's worth: only its newest reading is served, the others are superseded
        store.update(batch[-1][1])
        # At most one batch per MIN_BATCH_INTERVAL_S: at meter rates (1-10 readings/s) this
        # never waits; at hundreds a second each XREAD then brings several (its cost is per
        # XREAD, not per reading), and a new reading is served at most that much later. A full
        # batch means more are waiting: read on at once, so the intake has no cap.
        now = loop.time()
        if len(batch) < BATCH_COUNT and now - last_batch < MIN_BATCH_INTERVAL_S:
            await asyncio.sleep(MIN_BATCH_INTERVAL_S - (now - last_batch))
            now = loop.time()
        last_batch = now


async def serve_while_licensed(
    settings: ModbusSettings,
    store: RegisterStore,
    entitlements: EntitlementSource,
    state: PortState | None = None,
) -> None:
    """The one place Modbus asks for its licence: the port is open exactly while it is granted."""
    where = f"{settings.modbus_host}:{settings.modbus_port}"
    state = state or PortState()
    first = True
    while True:
        decision = entitlements.decide(FEATURE)
        if not decision.granted and first:
            # at start-up the entitlements may not have read Redis yet: give them a moment
            with suppress(TimeoutError):
                decision = await asyncio.wait_for(
                    entitlements.wait_until(FEATURE, granted=True), STARTUP_GRACE_S
                )
        first = False
        if not decision.granted:
            LICENSED.set(0)
            log.warning(
                "Modbus TCP port %s stays closed: %s. Install a licence that grants 'modbus' "
                "(see docs/licensing.md); the port opens as soon as it arrives.",
                where,
                decision.reason,
            )
            decision = await entitlements.wait_until(FEATURE, granted=True)
        server = await _open(settings, store)
        LICENSED.set(1)
        state.set(True)
        log.info("Modbus TCP listening on %s (%s)", where, decision.reason)
        try:
            decision = await entitlements.wait_until(FEATURE, granted=False)
        finally:
            await server.stop()
            LICENSED.set(0)
            state.set(False)
        log.warning("Modbus TCP port %s closed: %s", where, decision.reason)


async def _open(settings: ModbusSettings, store: RegisterStore) -> HanportModbusServer:
    backoff = Backoff(maximum=30.0)
    while True:
        server = HanportModbusServer(store, settings.modbus_host, settings.modbus_port)
        try:
            await server.start()
            return server
        except OSError as error:
            delay = backoff.next_delay()
            log.error(
                "cannot listen on %s:%d (%s); is another program using the port? Retrying in "
                "%.1f s (set HANPORT_MODBUS_PORT to use another one)",
                settings.modbus_host,
                settings.modbus_port,
                error,
                delay,
            )
            await server.stop()
            await asyncio.sleep(delay)


async def run_service(
    settings: ModbusSettings,
    redis: Redis,
    *,
    entitlements: EntitlementSource | None = None,
    store: RegisterStore | None = None,
    state: PortState | None = None,
) -> None:
    """Run until cancelled. `entitlements` defaults to the real, signature-checking one."""
    serial = await reader_serial(settings.serial, redis)
    store = store or make_store(settings, serial)
    DATA_AGE.set_function(lambda: float("nan") if (age := store.age()) is None else age)
    tasks = [asyncio.create_task(follow_readings(ReadingStream(redis, settings.stream), store))]
    if entitlements is None:
        real = Entitlements(redis, settings)
        tasks.append(asyncio.create_task(real.run()))
        entitlements = real
    tasks.append(asyncio.create_task(serve_while_licensed(settings, store, entitlements, state)))
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task
