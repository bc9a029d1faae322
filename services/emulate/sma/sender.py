"""The SMA Energy Meter's sender: the newest reading as a Speedwire datagram, every interval.

Consumes the newest `Reading` of the chosen meter (`latest()`, None before the first) and the
`HANPORT_SMA_*` settings; produces UDP datagrams (services/emulate/sma/speedwire.py) multicast
to 239.12.255.254:9522 and sent to each HANPORT_SMA_UNICAST address, every HANPORT_SMA_INTERVAL
seconds, as a real SMA Energy Meter does.

Stale data is never sent as fresh: while the newest reading is missing or older than
HANPORT_EMULATE_STALE_AFTER the meter falls silent, which is how a real one fails and how its
clients notice (SMA inverters and Sunny Island report the meter's communication lost and fall
back to their configured behaviour; evcc answers "update timeout" after 10 s without a
datagram). It speaks again with the next fresh reading.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import time
from collections.abc import Callable

from shared.meters import meter_of
from shared.reading import Reading
from shared.stale import stale_reason

from . import metrics
from .settings import SmaSettings, Target
from .speedwire import MULTICAST_GROUP, encode

log = logging.getLogger("services.emulate.sma")

SERIAL_BASE = 3_900_000_000  # derived serials: 3900000000-3999999999 (10 digits, as SMA's)
SERIAL_SPAN = 100_000_000


def derived_serial(box_serial: str | None, meter: str) -> int:
    """A stable Energy Meter serial for this reader and meter (several meters: several serials)."""
    digest = hashlib.blake2b(f"{box_serial or ''}/{meter}".encode(), digest_size=8).digest()
    return SERIAL_BASE + int.from_bytes(digest, "big") % SERIAL_SPAN


def destinations(settings: SmaSettings) -> list[Target]:
    """Where each datagram goes; ValueError saying what to set when that is nowhere."""
    out: list[Target] = [(MULTICAST_GROUP, settings.sma_port)] if settings.sma_multicast else []
    out += settings.sma_targets
    if not out:
        raise ValueError(
            "HANPORT_SMA_MULTICAST=false and HANPORT_SMA_UNICAST is empty: the SMA Energy Meter "
            "would send to no one; set HANPORT_SMA_UNICAST=<inverter address> or turn "
            "multicast back on"
        )
    return out


def open_socket(settings: SmaSettings) -> socket.socket:
    """An IPv4 UDP socket for multicast (TTL, loopback to this host, chosen interface)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, settings.sma_multicast_ttl)
        # receivers on this host (evcc, Home Assistant in host networking) hear it too
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        if settings.sma_interface:
            try:
                sock.setsockopt(
                    socket.IPPROTO_IP,
                    socket.IP_MULTICAST_IF,
                    socket.inet_aton(settings.sma_interface),
                )
            except OSError as error:
                raise ValueError(
                    f"HANPORT_SMA_INTERFACE={settings.sma_interface}: no interface of this "
                    f"host has that address ({error.strerror}); give one of its own IPv4 "
                    "addresses, or leave it unset"
                ) from None
    except BaseException:
        sock.close()
        raise
    return sock


class _Protocol(asyncio.DatagramProtocol):
    """Counts and logs what the network refuses (the transport reports it here), and knows
    when the socket's queue is full (the transport pauses writing past its high-water mark,
    64 KiB): datagrams are then dropped and counted, the queue never grows beyond it."""

    def __init__(self) -> None:
        self.failing = False  # logged already; quiet until a round goes without errors
        self.errors = 0
        self.paused = False

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def error_received(self, exc: Exception) -> None:
        metrics.ERRORS.labels("send").inc()
        self.errors += 1
        if not self.failing:
            log.warning(
                "SMA Energy Meter: a datagram was not sent (%s); check HANPORT_SMA_UNICAST, "
                "HANPORT_SMA_INTERFACE and the network (counted in "
                "hanport_emulate_sma_errors_total)",
                exc,
            )
        self.failing = True


class _Rounds:
    """What the sender does each interval, and what it remembers between intervals (so each
    change is logged once)."""

    def __init__(
        self,
        settings: SmaSettings,
        transport: asyncio.DatagramTransport,
        protocol: _Protocol,
        box_serial: str | None,
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.protocol = protocol
        self.box_serial = box_serial
        self.targets = destinations(settings)
        self.kinds = [
            "multicast" if host == MULTICAST_GROUP else "unicast" for host, _ in self.targets
        ]
        self.silent: str | None = None  # why the meter is silent, None while sending
        self.announced: int | None = None  # the serial last logged
        self.unusable: Reading | None = None  # the last reading that failed to encode

    def run(self, reading: Reading | None, now: float) -> None:
        """One interval: send `reading`, or nothing when it is stale or missing."""
        why = stale_reason(reading, self.settings.emulate_stale_after, now)
        if why is not None or reading is None:
            self.fall_silent(why[0] if why else "no reading")
            return
        if self.silent is not None:
            log.info("SMA Energy Meter: sending again (fresh reading)")
        self.silent = None
        metrics.SILENT.set(0)
        data = self.datagram(reading, now)
        if data is not None:
            self.send(data)

    def fall_silent(self, why: str) -> None:
        if self.silent is None:
            log.warning(
                "SMA Energy Meter: silent, %s; SMA devices will report the meter unavailable "
                "until a fresh reading arrives",
                why,
            )
        self.silent = why
        metrics.SILENT.set(1)

    def datagram(self, reading: Reading, now: float) -> bytes | None:
        meter = meter_of(reading)
        serial = self.settings.sma_serial or derived_serial(self.box_serial, meter)
        if serial != self.announced:  # what the user pairs the inverter with
            log.info("SMA Energy Meter: serial %d, serving meter %s", serial, meter)
            self.announced = serial
        try:
            return encode(reading, serial, int(now * 1000))
        except (IndexError, TypeError, ValueError, OverflowError) as error:
            # a reading of the wrong shape (arrays too short, text for a number): skipped and
            # counted, the sender goes on with the next one
            metrics.ERRORS.labels("encode").inc()
            if reading is not self.unusable:
                log.error(
                    "SMA Energy Meter: a reading of meter %s could not be encoded (%r); it is "
                    "skipped (counted in hanport_emulate_sma_errors_total)",
                    meter,
                    error,
                )
                self.unusable = reading
            return None

    def send(self, data: bytes) -> None:
        errors = self.protocol.errors
        for target, kind in zip(self.targets, self.kinds, strict=True):
            if self.protocol.paused:
                metrics.ERRORS.labels("backlog").inc()
                continue
            self.transport.sendto(data, target)
            metrics.DATAGRAMS.labels(kind).inc()
        if self.protocol.errors == errors:
            self.protocol.failing = False


async def run_sma(
    settings: SmaSettings,
    latest: Callable[[], Reading | None],
    box_serial: str | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    """Send the emulated SMA Energy Meter's datagrams until cancelled.

    `latest()` gives the newest reading of the meter to serve (None before the first);
    `box_serial` (the reader's serial) seeds the Energy Meter serial unless HANPORT_SMA_SERIAL
    sets it; `clock` is seconds since the epoch (tests pass their own). Bad settings raise
    ValueError saying what to set, before anything is sent."""
    destinations(settings)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Protocol, sock=open_socket(settings))
    try:
        rounds = _Rounds(settings, transport, protocol, box_serial)
        log.info(
            "SMA Energy Meter: sending every %g s to %s",
            settings.sma_interval,
            ", ".join(f"{host}:{port}" for host, port in rounds.targets),
        )
        due = loop.time()
        while True:
            rounds.run(latest(), clock())
            due = max(due + settings.sma_interval, loop.time())
            await asyncio.sleep(due - loop.time())
    finally:
        transport.close()
