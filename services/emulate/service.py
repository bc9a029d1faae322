"""The emulation service: follows the readings into `Latest` and runs each configured device
(personality) while a license grants its feature.

Consumes every meter's readings stream (`shared.follow.Follower` over
`shared.meter_streams.MeterStreams`, the newest reading per meter of every XREAD's batch), the raw stream (HomeWizard's `/api/v1/telegram`) and the `shelly` /
`homewizard` / `sma` entitlements (`shared.gate.while_granted`); produces the Shelly Pro 3EM
(HTTP, WebSocket, UDP JSON-RPC, mDNS), the HomeWizard P1 meter (HTTP API v1, mDNS) and the SMA
Energy Meter (Speedwire datagrams, services/emulate/sma). Without its
entitlement a device is silent (its routes 404, its UDP ports closed, no announcement; an HTTP
port no device uses is closed), the log says why and `hanport_emulate_licensed` is 0.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from redis.asyncio import Redis

from shared.entitlements import Decision, Entitlements, EntitlementSource, Feature, MeterFilter
from shared.follow import NEWEST_ONLY, Follower
from shared.gate import Change, Report, while_granted
from shared.identity import wait_for_serial
from shared.meter_streams import MeterStreams
from shared.reading import Reading
from shared.stream import ReadingStream
from shared.supervise import Work, run_supervised

from . import homewizard, shelly
from .device import Identity
from .homewizard_io import Telegrams
from .homewizard_io import add_routes as homewizard_routes
from .latest import Choice, Latest
from .mdns import Announcement, Announcer, host_addresses
from .metrics import LICENSED
from .settings import EmulateSettings
from .shelly_io import add_routes as shelly_routes
from .shelly_io import open_udp
from .sma import run_sma
from .web import Port

log = logging.getLogger(__name__)
STARTUP_GRACE_S = 3.0


class Serving:
    """Which devices answer now; events to await a change (tests, benchmarks)."""

    def __init__(self) -> None:
        self.opened: dict[str, asyncio.Event] = {}
        self.closed: dict[str, asyncio.Event] = {}

    def _events(self, name: str) -> tuple[asyncio.Event, asyncio.Event]:
        if name not in self.opened:
            self.opened[name] = asyncio.Event()
            self.closed[name] = asyncio.Event()
            self.closed[name].set()
        return self.opened[name], self.closed[name]

    def set(self, name: str, is_open: bool) -> None:
        opened, closed = self._events(name)
        (closed if is_open else opened).clear()
        (opened if is_open else closed).set()

    async def wait(self, name: str, is_open: bool = True) -> None:
        opened, closed = self._events(name)
        await (opened if is_open else closed).wait()


def hanport_version() -> str:
    try:
        return version("hanport")
    except PackageNotFoundError:
        return "dev"


def reporter(name: str, what: str) -> Report:
    def report(change: Change, decision: Decision) -> None:
        if change == "refused":
            LICENSED.labels(name).set(0)
            log.warning(
                "%s stays silent: %s. Install a license that grants '%s' (see "
                "docs/licensing.md); it starts answering as soon as it arrives.",
                what,
                decision.reason,
                name,
            )
        elif change == "withdrawn":
            log.warning("%s going silent: %s", what, decision.reason)

    return report


Context = Callable[[], AbstractAsyncContextManager[object]]
# a part of a device (a port, its announcements) and what to tell the user when it cannot open
Part = tuple[Context, str]


def gated(
    entitlements: EntitlementSource,
    name: Feature,
    what: str,
    parts: list[Part],
    serving: Serving,
) -> Work:
    """A device's work: its parts (ports, announcements) open while `name` is granted."""

    async def work() -> None:
        async with AsyncExitStack() as stack:
            for part, where in parts:
                try:
                    await stack.enter_async_context(part())
                except OSError as error:
                    log.error(
                        "%s: cannot open %s (%s); is another program using it? Retrying soon",
                        what,
                        where,
                        error,
                    )
                    raise
            LICENSED.labels(name).set(1)
            serving.set(name, True)
            log.info("%s answering (%s)", what, entitlements.decide(name).reason)
            try:
                await asyncio.Event().wait()
            finally:
                LICENSED.labels(name).set(0)
                serving.set(name, False)

    def run() -> Awaitable[None]:
        return while_granted(
            entitlements, name, work, report=reporter(name, what), grace=STARTUP_GRACE_S
        )

    return run


def _udp(settings: EmulateSettings, port: int, choice: Choice, device: shelly.Device) -> Context:
    @asynccontextmanager
    async def context() -> AsyncIterator[object]:
        transport = await open_udp(settings.emulate_host, port, choice, device)
        try:
            yield transport
        finally:
            transport.close()

    return context


async def run_service(
    settings: EmulateSettings,
    redis: Redis,
    *,
    entitlements: EntitlementSource | None = None,
    latest: Latest | None = None,
    serving: Serving | None = None,
    extra: Callable[[Identity, Latest, EntitlementSource], dict[str, Work]] | None = None,
) -> None:
    """Run until cancelled. `entitlements` defaults to the real, signature-checking one;
    `extra` adds the works of further personalities (the SMA sender)."""
    serial = await wait_for_serial(settings.serial, settings.license_dir, redis)
    identity = Identity(serial, hanport_version())
    latest = latest or Latest(settings.emulate_stale_after)
    serving = serving or Serving()
    works: dict[str, Work] = {
        "stream follower": Follower(
            MeterStreams(redis, settings.stream), latest.update, NEWEST_ONLY
        ).run,
        "classic meter": lambda: latest.follow_classic(ReadingStream(redis, settings.stream)),
    }
    if entitlements is None:
        real = Entitlements(redis, settings)
        works["entitlements"] = real.run
        entitlements = real
    ports: dict[int, Port] = {}

    def port(number: int) -> Port:
        if number not in ports:
            ports[number] = Port(settings.emulate_host, number, settings.emulate_max_request_bytes)
        return ports[number]

    def choice(meter: str | None, feature: Feature) -> Choice:
        licensed = MeterFilter(feature)
        gate = entitlements

        def allowed(name: str, reading: Reading) -> bool:
            return licensed.serves(gate.decide(feature), name, reading.meter_id)

        return Choice(latest, meter, settings.default_meter, settings.clients, allowed)

    announcer = Announcer(host_addresses(settings.emulate_host))

    def announce(items: list[Announcement]) -> list[Part]:
        if not settings.emulate_mdns:
            return []
        return [(lambda: announcer.announcing(items), "mDNS (set HANPORT_EMULATE_MDNS=false)")]

    personalities = settings.personalities
    if "shelly" in personalities:
        device = shelly.Device(identity)
        chosen = choice(settings.shelly_meter, "shelly")
        http = port(settings.shelly_http_port)
        shelly_routes(http, chosen, device)
        text = {"gen": "2", "app": shelly.APP, "ver": shelly.VERSION, "id": device.id}
        host = f"{device.id}.local."
        parts: list[Part] = [
            (lambda: http.serving("shelly"), f"HTTP port {http.port} (HANPORT_SHELLY_HTTP_PORT)")
        ]
        parts += [
            (_udp(settings, udp, chosen, device), f"UDP port {udp} (HANPORT_SHELLY_UDP_PORTS)")
            for udp in settings.udp_ports
        ]
        parts += announce(
            [
                Announcement("_shelly._tcp.local.", device.instance, http.port, text, host),
                Announcement("_http._tcp.local.", device.instance, http.port, text, host),
            ]
        )
        where = f"HTTP :{http.port}, UDP {settings.udp_ports or 'off'}"
        works["shelly"] = gated(entitlements, "shelly", f"Shelly Pro 3EM ({where})", parts, serving)
    if "homewizard" in personalities:
        hw = homewizard.Device(identity)
        chosen = choice(settings.homewizard_meter, "homewizard")
        hw_http = port(settings.homewizard_port)
        homewizard_routes(
            hw_http, chosen, hw, Telegrams(redis, settings.stream, settings.raw_stream)
        )
        hw_text = {"api_enabled": "1", "path": "/api/v1", "serial": hw.serial,
                   "product_name": homewizard.PRODUCT_NAME,
                   "product_type": homewizard.PRODUCT_TYPE}  # fmt: skip
        hw_parts: list[Part] = [
            (lambda: hw_http.serving("homewizard"),
             f"HTTP port {hw_http.port} (HANPORT_HOMEWIZARD_PORT)")
        ]  # fmt: skip
        hw_parts += announce(
            [
                Announcement(
                    "_hwenergy._tcp.local.", hw.instance, hw_http.port, hw_text,
                    f"{hw.instance}.local.",
                )
            ]
        )  # fmt: skip
        works["homewizard"] = gated(
            entitlements, "homewizard", f"HomeWizard P1 meter (HTTP :{hw_http.port})",
            hw_parts, serving,
        )  # fmt: skip
    if "sma" in personalities:
        sma_choice = choice(settings.sma_meter, "sma")

        def newest() -> Reading | None:
            """The chosen meter's newest reading (the sender judges its age itself), or None
            when the license does not serve that meter."""
            meter = sma_choice.meter_for()
            reading = None if meter is None else latest.get(meter)
            if reading is None or meter is None or sma_choice.allowed is None:
                return reading
            return reading if sma_choice.allowed(meter, reading) else None

        async def send() -> None:
            LICENSED.labels("sma").set(1)
            serving.set("sma", True)
            try:
                await run_sma(settings, newest, identity.serial)
            finally:
                LICENSED.labels("sma").set(0)
                serving.set("sma", False)

        sma_gate = entitlements
        works["sma"] = lambda: while_granted(
            sma_gate, "sma", send, report=reporter("sma", "SMA Energy Meter"),
            grace=STARTUP_GRACE_S,
        )  # fmt: skip
    if extra is not None:
        works.update(extra(identity, latest, entitlements))
    await run_supervised(works)
