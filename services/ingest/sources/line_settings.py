"""Line settings of a serial meter port found by listening (`HANPORT_SOURCE=/dev/ttyUSB0`, a bare
device path, or `serial://DEVICE?baud=auto`).

- `detect_line(sample_line)`: walks `LINE_SETTINGS` (115200 8N1, 2400 8E1, 9600 8E1, ...) and
  answers the first setting whose bytes hold valid frames, and the protocol;
- `sample_serial`: reads a pyserial port at one setting, feeding a `PortProber`;
- `AutoSerialSource`: the ingest source for a bare device path or `serial://...?baud=auto`.
Results are logged and exported as Prometheus metrics (`metrics.LINE_PROBES`, `LINE_DETECTED`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import termios
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import serial

from shared.backoff import Backoff

from ..codec.dlms.ciphering import Keys
from ..codec.factory import DecoderOptions, make_decoder
from ..codec.identify import Prober
from ..metrics import LINE_DETECTED, LINE_PROBES
from .serial_port import SerialSource
from .spec import SourceSpec
from .status import SourceStatus

log = logging.getLogger(__name__)


class LineSetting(NamedTuple):
    baud: int
    bytesize: int
    parity: str  # "N", "E", "O"
    stopbits: int

    def __str__(self) -> str:
        return f"{self.baud} {self.bytesize}{self.parity}{self.stopbits}"


# Most common first: DSMR 4/5 P1, then the Nordic/Austrian DLMS ports, then the rest.
LINE_SETTINGS: tuple[LineSetting, ...] = (
    LineSetting(115200, 8, "N", 1),
    LineSetting(2400, 8, "E", 1),
    LineSetting(9600, 8, "E", 1),
    LineSetting(9600, 8, "N", 1),
    LineSetting(115200, 8, "E", 1),
    LineSetting(2400, 8, "N", 1),
    LineSetting(9600, 7, "E", 1),  # DSMR 2.2/3 P1
    LineSetting(19200, 8, "E", 1),
    LineSetting(38400, 8, "N", 1),
)


DETECT_SECONDS = 12.0  # how long to listen at each line setting: meters send every 1-10 s


class PortProber(Prober):
    """A `codec.identify.Prober` that also keeps the port it sampled: `sample_serial` leaves a
    port open here when its bytes named the protocol, for the source to read on."""

    def __init__(self, keys: Keys | None = None) -> None:
        super().__init__(lambda name: make_decoder(DecoderOptions(protocol=name, keys=keys)))
        self.port: Any = None


SampleLine = Callable[[LineSetting, PortProber], Awaitable[str | None]]


async def detect_line(
    sample_line: SampleLine,
    *,
    keys: Keys | None = None,
    settings: tuple[LineSetting, ...] = LINE_SETTINGS,
    port: str = "",
) -> tuple[LineSetting, str] | None:
    """The first line setting whose bytes hold valid frames, and the protocol; None if none.

    `sample_line(setting, prober)` opens the port with `setting`, feeds what it reads to the
    prober until it answers a protocol or its sampling time is up, and returns the answer."""
    for setting in settings:
        protocol = await sample_line(setting, PortProber(keys))
        LINE_PROBES.labels(str(setting), "found" if protocol else "nothing").inc()
        if protocol:
            LINE_DETECTED.labels(str(setting), protocol).set(1)
            log.info("port %s speaks %s at %s", port or "?", protocol, setting)
            return setting, protocol
        log.info("port %s: no valid frames at %s", port or "?", setting)
    log.warning("port %s: no line setting gave valid frames", port or "?")
    return None


def sample_serial(
    url: str, setting: LineSetting, prober: PortProber, seconds: float, *, chunk: int = 4096
) -> str | None:
    """Blocking: read `url` (pyserial URL or device) at `setting` for up to `seconds`, feeding
    the prober; run it in a thread (`asyncio.to_thread`). When a protocol is found the port
    stays open in `prober.port` for the caller to read on (no reopen, no bytes lost)."""
    options: dict[str, Any] = {
        "baudrate": setting.baud,
        "bytesize": setting.bytesize,
        "parity": setting.parity,
        "stopbits": setting.stopbits,
        "timeout": 0.1,
    }
    deadline = time.monotonic() + seconds
    port = serial.serial_for_url(url, **options)
    try:
        port.reset_input_buffer()
        while time.monotonic() < deadline:
            data = port.read(chunk)
            if data:
                found = prober.feed(data)
                if found:
                    prober.port = port
                    return found
    finally:
        if prober.port is not port:
            port.close()
    return None


@dataclass
class AutoSerialSource:
    """The ingest source for a bare device path or `serial://DEVICE?baud=auto`: finds the line settings with
    `detect_line`, then reads on at them from the port detection left open, starting with the
    bytes detection already read. Adapter lost or nothing found: tries again with backoff."""

    spec: SourceSpec
    keys: Keys | None = None
    sample_seconds: float | None = None  # None: DETECT_SECONDS
    settings: tuple[LineSetting, ...] = LINE_SETTINGS
    status: SourceStatus = field(default_factory=SourceStatus)

    async def _sample(
        self, probers: list[PortProber], setting: LineSetting, prober: PortProber
    ) -> str | None:
        probers.append(prober)
        seconds = self.sample_seconds if self.sample_seconds is not None else DETECT_SECONDS
        found = await asyncio.to_thread(sample_serial, self.spec.path, setting, prober, seconds)
        self.status.open()  # it opened (else sample_serial raised)
        if not found:
            self.status.probed += len(prober.sample)
        return found

    async def chunks(self) -> AsyncIterator[bytes]:
        backoff = Backoff()
        path = self.spec.path
        while True:
            probers: list[PortProber] = []
            self.status.line = ""
            try:
                found = await detect_line(
                    functools.partial(self._sample, probers),
                    keys=self.keys,
                    settings=self.settings,
                    port=path,
                )
            except (serial.SerialException, OSError, ValueError, termios.error) as error:
                self.status.failed(error)
                delay = backoff.next_delay()
                log.warning("serial port %s: %s; next try in %.1f s", path, error, delay)
                await asyncio.sleep(delay)
                continue
            if found is None:
                self.status.fruitless += 1
                await asyncio.sleep(backoff.next_delay())
                continue
            port = probers[-1].port
            self.status.line = str(found[0])
            try:
                yield probers[-1].sample
                async for data in SerialSource(self.spec)._read(port):
                    backoff.reset()
                    yield data
            except (serial.SerialException, OSError, termios.error) as error:
                self.status.failed(error)
                delay = backoff.next_delay()
                log.warning(
                    "serial port %s lost: %s; detecting again in %.1f s", path, error, delay
                )
                await asyncio.sleep(delay)
            finally:
                port.close()
