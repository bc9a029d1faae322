"""Where meter bytes come from: `HANPORT_SOURCE` parsed into a `SourceSpec`, opened as a `Source`.

Consumes a source text; produces an async stream of raw byte chunks (no decoding here, so any
decoder, P1 or binary, can read any source):

    simulator                                    the built-in meter (default)
    serial:///dev/ttyUSB0?baud=115200&parity=N&bytesize=8&stopbits=1
    /dev/ttyUSB0                                 a bare device path: serial, 115200 8N1
    tcp://host:port                              ser2net, network P1 dongles
    file:///path/capture.txt?pace=recorded|fast  replay a capture

Serial and TCP sources never end: a lost port or connection is reopened with backoff (counted in
`hanport_ingest_source_reconnects_total`). A file source ends after the last byte.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import serial

from shared.backoff import Backoff
from shared.cancellation import raise_if_cancelling

from .metrics import SOURCE_CONNECTED, SOURCE_RECONNECTS
from .p1 import DEFAULT_TIMEZONE, parse_timestamp, timezone
from .simulator import MeterSimulator

log = logging.getLogger(__name__)

ALLOWED = (
    "simulator, serial:///dev/ttyUSB0?baud=115200&parity=N&bytesize=8&stopbits=1, "
    "a device path such as /dev/ttyUSB0, tcp://host:port, or file:///path?pace=recorded|fast"
)
PARITIES = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
READ_SIZE = 65536


@dataclass(frozen=True)
class SourceSpec:
    """A parsed `HANPORT_SOURCE`."""

    kind: Literal["simulator", "serial", "tcp", "file"]
    path: str = ""
    host: str = ""
    port: int = 0
    baud: int = 115200
    parity: str = "N"
    bytesize: int = 8
    stopbits: float = 1
    pace: Literal["recorded", "fast"] = "recorded"

    def describe(self) -> str:
        if self.kind == "serial" and self.baud == 0:
            return f"serial {self.path} (line settings detected)"
        if self.kind == "serial":
            return f"serial {self.path} {self.baud} {self.bytesize}{self.parity}{self.stopbits:g}"
        if self.kind == "tcp":
            return f"tcp {self.host}:{self.port}"
        if self.kind == "file":
            return f"file {self.path} ({self.pace})"
        return "simulator"


def _one(query: dict[str, list[str]], name: str, default: str) -> str:
    values = query.get(name)
    return values[-1] if values else default


def parse_source(text: str) -> SourceSpec:
    """`HANPORT_SOURCE` to a `SourceSpec`; raises ValueError saying what is allowed."""
    text = text.strip()
    if text in ("", "simulator"):
        return SourceSpec("simulator")
    if text.startswith("/"):
        return SourceSpec("serial", path=text)
    parts = urlsplit(text)
    query = parse_qs(parts.query)
    if parts.scheme == "serial":
        path = parts.path or parts.netloc
        if not path:
            raise ValueError(f"no device in {text!r}; expected {ALLOWED}")
        try:
            baud_text = _one(query, "baud", "115200")
            baud = 0 if baud_text == "auto" else int(baud_text)  # 0: detect (detect.py)
            bytesize = int(_one(query, "bytesize", "8"))
            stopbits = float(_one(query, "stopbits", "1"))
        except ValueError:
            raise ValueError(f"baud, bytesize and stopbits must be numbers in {text!r}") from None
        parity = _one(query, "parity", "N").upper()
        if parity not in PARITIES:
            raise ValueError(f"parity must be N, E or O, not {parity!r}")
        if bytesize not in (5, 6, 7, 8) or stopbits not in (1, 1.5, 2) or baud < 0:
            raise ValueError("bytesize must be 5-8, stopbits 1, 1.5 or 2, baud positive or auto")
        return SourceSpec(
            "serial", path=path, baud=baud, parity=parity, bytesize=bytesize, stopbits=stopbits
        )
    if parts.scheme == "tcp":
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or not port:
            raise ValueError(f"expected tcp://host:port, not {text!r}")
        return SourceSpec("tcp", host=parts.hostname, port=port)
    if parts.scheme == "file":
        path = (parts.netloc + parts.path) if parts.netloc not in ("", "localhost") else parts.path
        pace = _one(query, "pace", "recorded")
        if not path:
            raise ValueError(f"no file in {text!r}; expected file:///path?pace=recorded|fast")
        if pace not in ("recorded", "fast"):
            raise ValueError(f"pace must be recorded or fast, not {pace!r}")
        return SourceSpec("file", path=path, pace="fast" if pace == "fast" else "recorded")
    raise ValueError(f"unknown source {text!r}; expected {ALLOWED}")


class Source(Protocol):
    spec: SourceSpec

    def chunks(self) -> AsyncIterator[bytes]:
        """Raw bytes as they arrive, for ever (a file: until its end)."""
        ...


@dataclass
class SimulatorSource:
    """The built-in meter: one telegram every `interval` seconds, stamped with the wall clock."""

    spec: SourceSpec
    interval: float = 1.0
    tz: ZoneInfo | str = DEFAULT_TIMEZONE

    async def chunks(self) -> AsyncIterator[bytes]:
        simulator = MeterSimulator(tz=self.tz)
        SOURCE_CONNECTED.set(1)
        start = time.monotonic()
        tick = 0
        while True:
            yield simulator.telegram(int(time.time() * 1000))
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * self.interval - time.monotonic()))


def _lost(what: str, error: BaseException, backoff: Backoff) -> float:
    SOURCE_CONNECTED.set(0)
    delay = backoff.next_delay()
    if backoff.attempts == 1:
        log.warning("%s: %s; reopening with backoff", what, error or type(error).__name__)
    else:
        log.info("%s still unavailable (%s); next try in %.1f s", what, error, delay)
    return delay


def _opened(spec: SourceSpec, *, reopened: bool) -> None:
    SOURCE_CONNECTED.set(1)
    if reopened:
        SOURCE_RECONNECTS.inc()
    log.info("reading %s", spec.describe())


@dataclass
class SerialSource:
    """A serial port through pyserial; reopened with backoff when the adapter goes away."""

    spec: SourceSpec

    def open(self) -> serial.Serial:
        spec = self.spec
        return serial.Serial(
            spec.path,
            baudrate=spec.baud,
            bytesize=spec.bytesize,
            parity=PARITIES[spec.parity],
            stopbits=spec.stopbits,
            timeout=0,  # non-blocking: the event loop says when there is something to read
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        backoff = Backoff()
        first = True
        while True:
            try:
                port = self.open()
            except (serial.SerialException, OSError, ValueError) as error:
                await asyncio.sleep(_lost(f"serial port {self.spec.path}", error, backoff))
                continue
            _opened(self.spec, reopened=not first)
            first = False
            try:
                async for data in self._read(port):
                    backoff.reset()
                    yield data
            except (serial.SerialException, OSError) as error:
                await asyncio.sleep(_lost(f"serial port {self.spec.path}", error, backoff))
            finally:
                port.close()

    async def _read(self, port: serial.Serial) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        fd = port.fileno()
        loop.add_reader(fd, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                data = port.read(max(port.in_waiting, 1))
                if data:
                    yield data
        finally:
            loop.remove_reader(fd)


@dataclass
class TcpSource:
    """A TCP byte stream (ser2net, network P1 dongles); reconnects with backoff, and also when
    nothing arrives for `idle_timeout` seconds (a silently dead connection)."""

    spec: SourceSpec
    idle_timeout: float = 60.0
    connect_timeout: float = 10.0

    async def chunks(self) -> AsyncIterator[bytes]:
        backoff = Backoff()
        first = True
        what = f"tcp source {self.spec.host}:{self.spec.port}"
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.spec.host, self.spec.port),
                    self.connect_timeout,
                )
            except (OSError, TimeoutError) as error:
                await asyncio.sleep(_lost(what, error, backoff))
                continue
            _opened(self.spec, reopened=not first)
            first = False
            try:
                while True:
                    try:
                        data = await asyncio.wait_for(reader.read(READ_SIZE), self.idle_timeout)
                    except TimeoutError:
                        raise ConnectionError(
                            f"nothing received for {self.idle_timeout:g} s"
                        ) from None
                    raise_if_cancelling()  # wait_for (3.11) can drop a cancel that meets data
                    if not data:
                        raise ConnectionError("closed by the other end")
                    backoff.reset()
                    yield data
            except (OSError, ConnectionError) as error:
                await asyncio.sleep(_lost(what, error, backoff))
            finally:
                writer.close()


_CLOCK = re.compile(rb"0-0:1\.0\.0\(([^)\r\n]*)\)")
_TELEGRAM_START = re.compile(rb"(?:^|\n)/")


@dataclass
class FileSource:
    """A capture replayed as fast as possible or at its recorded pace: the gaps between the
    meter clocks of successive telegrams (`default_gap` seconds when a telegram has none)."""

    spec: SourceSpec
    tz: ZoneInfo | str = DEFAULT_TIMEZONE
    default_gap: float = 1.0
    max_gap: float = 60.0

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            data = await asyncio.to_thread(Path(self.spec.path).read_bytes)
        except OSError as error:
            log.error("cannot read the capture %s: %s", self.spec.path, error.strerror or error)
            return
        SOURCE_CONNECTED.set(1)
        if self.spec.pace == "fast":
            for start in range(0, len(data), READ_SIZE):
                yield data[start : start + READ_SIZE]
            return
        zone = timezone(self.tz) if isinstance(self.tz, str) else self.tz
        starts = [m.end() - 1 for m in _TELEGRAM_START.finditer(data)] or [0]
        if starts[0] != 0:
            starts.insert(0, 0)
        previous: int | None = None
        for index, start in enumerate(starts):
            piece = data[start : starts[index + 1] if index + 1 < len(starts) else len(data)]
            clock = _CLOCK.search(piece)
            moment = parse_timestamp(clock.group(1).decode("latin-1"), zone) if clock else None
            if index:
                gap = self.default_gap
                if moment is not None and previous is not None:
                    gap = min(max((moment - previous) / 1000, 0.0), self.max_gap)
                await asyncio.sleep(gap)
            previous = moment
            yield piece


def open_source(
    spec: SourceSpec,
    *,
    simulator_interval: float = 1.0,
    tz: ZoneInfo | str = DEFAULT_TIMEZONE,
    idle_timeout: float = 60.0,
) -> Source:
    """The source for `spec`."""
    if spec.kind == "serial" and spec.baud == 0:
        from .detect import AutoSerialSource

        return AutoSerialSource(spec)
    if spec.kind == "serial":
        return SerialSource(spec)
    if spec.kind == "tcp":
        return TcpSource(spec, idle_timeout=idle_timeout)
    if spec.kind == "file":
        return FileSource(spec, tz=tz)
    return SimulatorSource(spec, interval=simulator_interval, tz=tz)
