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


async def run_sma(
    settings: SmaSettings,
    latest: Callable[[], Reading | None],
    box_serial: str | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    """Send the emulated SMA Energy Meter's datagrams until cancelled.

    `latest()` gives the newest reading of the meter to serve (None before the first);
    `box_serial` (the reader's serial) seeds the Energy Meter serial unless HANPORT_SMA_SERIAL
    sets it; `clock` is seconds since the epoch (tests pass their own)."""
    targets = destinations(settings)
    loop = asyncio.get_running_loop()
    sock = open_socket(settings)
    transport, protocol = await loop.create_datagram_endpoint(_Protocol, sock=sock)
    kinds = ["multicast" if host == MULTICAST_GROUP else "unicast" for host, _ in targets]
    log.info(
        "SMA Energy Meter: sending every %g s to %s",
        settings.sma_interval,
        ", ".join(f"{host}:{port}" for host, port in targets),
    )
    silent: str | None = None
    announced: int | None = None
    due = loop.time()
    try:
        while True:
            reading = latest()
            why = stale_reason(reading, settings.emulate_stale_after, clock())
            if why is not None or reading is None:
                if silent is None:
                    log.warning(
                        "SMA Energy Meter: silent, %s; SMA devices will report the meter "
                        "unavailable until a fresh reading arrives",
                        why[0] if why else "no reading",
                    )
                silent = why[0] if why else "no reading"
                metrics.SILENT.set(1)
            else:
                if silent is not None:
                    log.info("SMA Energy Meter: sending again (fresh reading)")
                silent = None
                metrics.SILENT.set(0)
                meter = meter_of(reading)
                serial = settings.sma_serial or derived_serial(box_serial, meter)
                if serial != announced:  # what the user pairs the inverter with
                    log.info("SMA Energy Meter: serial %d, serving meter %s", serial, meter)
                    announced = serial
                data = encode(reading, serial, int(clock() * 1000))
                errors = protocol.errors
                for target, kind in zip(targets, kinds, strict=True):
                    if protocol.paused:
                        metrics.ERRORS.labels("backlog").inc()
                        continue
                    transport.sendto(data, target)
                    metrics.DATAGRAMS.labels(kind).inc()
                if protocol.errors == errors:
                    protocol.failing = False
            due = max(due + settings.sma_interval, loop.time())
            await asyncio.sleep(due - loop.time())
    finally:
        transport.close()
