"""The Modbus service: follows the readings stream into the register store, and opens the TCP
port only while a license grants Modbus.

Consumes every meter's readings stream (`shared.follow.Follower` over
`shared.meter_streams.MeterStreams`, no polling: the newest reading of each XREAD's batch) into
`services.modbus.units.Units` (a unit id per meter, `HANPORT_MODBUS_UNITS`; other unit ids the
default meter), and the `modbus` entitlement (`shared.gate.while_granted`);
produces a Modbus TCP server on HANPORT_MODBUS_HOST:HANPORT_MODBUS_PORT. Without the entitlement
the port is closed (clients get "connection refused"), the log says why and
`hanport_modbus_licensed` is 0; it opens as soon as a license arrives and closes, dropping its
clients, when the license goes away.
"""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import PackageNotFoundError, version

from redis.asyncio import Redis

from shared.backoff import Backoff
from shared.entitlements import Decision, Entitlements, EntitlementSource, Feature
from shared.follow import NEWEST_ONLY, Follower
from shared.gate import Change, Report, while_granted
from shared.identity import wait_for_serial
from shared.meter_streams import REFRESH_S, MeterStreams
from shared.meters import MeterDirectory
from shared.stream import REDIS_DOWN, ReadingStream, wait_for_redis
from shared.supervise import Work, run_supervised

from .accounting import refresh_accounting
from .metrics import DATA_AGE, LICENSED
from .register_map import Identity, blocks
from .server import HanportModbusServer, Limits
from .settings import ModbusSettings
from .store import RegisterStore
from .units import Units

log = logging.getLogger(__name__)
FEATURE: Feature = "modbus"
STARTUP_GRACE_S = 3.0


class PortState:
    """Whether the port is open now; events to await a change (tests, benchmarks)."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self.closed.set()

    def set(self, is_open: bool) -> None:
        (self.closed if is_open else self.opened).clear()
        (self.opened if is_open else self.closed).set()


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


def follower(stream: ReadingStream, store: RegisterStore) -> Follower:
    """The newest reading into the store, then the newest of every batch as it arrives (one
    XREAD's worth: its other readings are superseded before any client could read them)."""
    return Follower(stream, lambda batch: store.update(batch[-1][1]), NEWEST_ONLY)


def reporter(where: str) -> Report:
    """What the service says when the license for the port changes."""

    def report(change: Change, decision: Decision) -> None:
        if change == "refused":
            LICENSED.set(0)
            log.warning(
                "Modbus TCP port %s stays closed: %s. Install a license that grants 'modbus' "
                "(see docs/licensing.md); the port opens as soon as it arrives.",
                where,
                decision.reason,
            )
        elif change == "withdrawn":
            log.warning("Modbus TCP port %s closing: %s", where, decision.reason)

    return report


async def watch_directory(redis: Redis, units: Units) -> None:
    """Keep `units` current with the directory of meters (which is the default meter)."""
    directory = MeterDirectory(redis)
    backoff = Backoff()
    while True:
        try:
            units.set_directory(await directory.records())
        except REDIS_DOWN as error:
            await wait_for_redis(error, backoff)
            continue
        backoff.reset()
        await asyncio.sleep(REFRESH_S)


async def serve_while_licensed(
    settings: ModbusSettings,
    store: RegisterStore | Units,
    entitlements: EntitlementSource,
    state: PortState | None = None,
) -> None:
    """The port is open exactly while a license grants Modbus (`shared.gate.while_granted`)."""
    where = f"{settings.modbus_host}:{settings.modbus_port}"
    port = state or PortState()

    async def serve() -> None:
        server = await _open(settings, store)
        try:
            LICENSED.set(1)
            port.set(True)
            log.info("Modbus TCP listening on %s (%s)", where, entitlements.decide(FEATURE).reason)
            await asyncio.Event().wait()  # until the license goes (or the service stops)
        finally:
            await server.stop()
            LICENSED.set(0)
            port.set(False)

    await while_granted(entitlements, FEATURE, serve, report=reporter(where), grace=STARTUP_GRACE_S)


async def _open(settings: ModbusSettings, store: RegisterStore | Units) -> HanportModbusServer:
    backoff = Backoff(maximum=30.0)
    while True:
        server = HanportModbusServer(
            store, settings.modbus_host, settings.modbus_port, limits=Limits.of(settings)
        )
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
    """Run until cancelled. `entitlements` defaults to the real, signature-checking one. `store`
    is the default meter's registers (unit ids not in HANPORT_MODBUS_UNITS); every meter's
    stream is followed (`Units`)."""
    serial = await wait_for_serial(settings.serial, settings.license_dir, redis)
    store = store or make_store(settings, serial)
    default = store
    DATA_AGE.set_function(lambda: float("nan") if (age := default.age()) is None else age)
    units = Units.of(settings, store)
    try:  # the meters with streams of their own, before the first reading is taken
        units.set_directory(await MeterDirectory(redis).records())
    except REDIS_DOWN as error:
        log.warning("cannot read the meter directory yet (%s); following it", error)
    streams = MeterStreams(redis, settings.stream)
    works: dict[str, Work] = {
        "stream follower": Follower(streams, units.update, NEWEST_ONLY).run,
        "meter directory": lambda: watch_directory(redis, units),
        # energy accounting's registers (holding 1200..) of each unit's meter
        "accounting registers": lambda: refresh_accounting(
            redis,
            lambda: [
                (units.default_name, default.accounting),
                *((meter, unit.accounting) for meter, unit in units.meters.values()),
            ],
            settings.default_meter,
        ),
    }
    if entitlements is None:
        real = Entitlements(redis, settings)
        works["entitlements"] = real.run
        entitlements = real
    gated = entitlements
    units.decide = lambda: gated.decide(FEATURE)
    works["modbus port"] = lambda: serve_while_licensed(settings, units, gated, state)
    await run_supervised(works)
