"""What a meter port speaks: sample bytes in, protocol (and for `baud=auto`, line settings) out.

- `identify(sample)`: the protocol whose decoder finds a valid frame in the bytes, tried in the
  order their signatures appear: `/XXX5` = P1, `7E A?` = HDLC, `68 L L 68` = M-Bus, `DB 08` =
  raw general-glo-ciphering ("dlms"). A frame that fails only for its key (key_error,
  auth_error) still proves the protocol.
- `make_decoder(protocol, ...)`: the incremental decoder for a protocol name.
- `AutoDecoder`: the decoder for `HANPORT_METER_PROTOCOL=auto`: holds the first bytes until
  `identify` names the protocol, then hands them and everything after to that protocol's decoder.
- `detect_line(sample_line)`: walks `LINE_SETTINGS` (115200 8N1, 2400 8E1, 9600 8E1, ...) and
  answers the first setting whose bytes hold valid frames; `sample_serial` reads a pyserial port
  with one setting; `AutoSerialSource` is the ingest source for `serial://...?baud=auto`.
Results are logged and exported as Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import termios
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from prometheus_client import Counter, Gauge

from .ciphering import Keys
from .decoder import Decoded, DecodeError, Decoder

log = logging.getLogger(__name__)

PROTOCOLS = ("p1", "hdlc", "mbus", "dlms")
SIGNATURES: dict[str, re.Pattern[bytes]] = {
    "p1": re.compile(rb"/[A-Za-z]{3}[0-9]"),
    "hdlc": re.compile(rb"\x7e[\xa0-\xaf]"),
    "mbus": re.compile(rb"\x68(.)\1\x68", re.DOTALL),
    "dlms": re.compile(rb"\xdb\x08"),
}
# Errors that still prove the protocol: a frame was found and only its key failed; a whole P1
# telegram (`/` ... `!XXXX`) whose CRC did not match is readable text, so the line is right.
_PROOF = ("key_error", "auth_error")
_P1_PROOF = ("key_error", "auth_error", "crc_error")


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

PROBES = Counter(
    "hanport_ingest_line_probes_total",
    "Line settings tried by baud=auto detection, by result (found, nothing).",
    ["setting", "result"],
)
PROTOCOL = Gauge(
    "hanport_ingest_protocol_detected",
    "1 for the protocol automatic detection found on the meter port.",
    ["protocol"],
)
DETECTED = Gauge(
    "hanport_ingest_line_detected",
    "1 for the line settings and protocol that auto-detection found.",
    ["setting", "protocol"],
)


def make_decoder(
    protocol: str, *, keys: Keys | None = None, tz: ZoneInfo | str | None = None
) -> Decoder:
    """The incremental decoder for `protocol` (one of `PROTOCOLS`)."""
    if protocol == "p1":
        from .p1 import P1Decoder

        return P1Decoder() if tz is None else P1Decoder(tz=tz)
    from .dlms import DlmsDecoder

    framing = {"hdlc": "hdlc", "mbus": "mbus", "dlms": "apdu"}.get(protocol)
    if framing is None:
        raise ValueError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    return DlmsDecoder(framing, keys=keys, tz=tz)  # type: ignore[arg-type]


def candidates(sample: bytes) -> list[str]:
    """Protocols whose signature occurs in `sample`, earliest first."""
    found = [(m.start(), name) for name, rx in SIGNATURES.items() if (m := rx.search(sample))]
    return [name for _, name in sorted(found)]


class Prober:
    """Feeds a growing sample to a decoder per signature found; `feed` answers the protocol
    once one of them decodes a valid frame."""

    def __init__(self, *, keys: Keys | None = None, tz: ZoneInfo | str | None = None) -> None:
        self.keys = keys or Keys()
        self.tz = tz
        self._sample = bytearray()
        self._decoders: dict[str, Decoder] = {}
        self.port: Any = None  # the open port, left open by `sample_serial` when it found one

    @property
    def sample(self) -> bytes:
        """Every byte fed so far: feed it to the real decoder first, so nothing is lost."""
        return bytes(self._sample)

    def feed(self, data: bytes) -> str | None:
        self._sample += data
        for name in candidates(bytes(self._sample)):
            decoder = self._decoders.get(name)
            if decoder is None:
                decoder = self._decoders[name] = make_decoder(name, keys=self.keys, tz=self.tz)
                chunk = bytes(self._sample)
            else:
                chunk = data
            for item in decoder.feed(chunk, 0):
                proof = _P1_PROOF if name == "p1" else _PROOF
                if isinstance(item, Decoded) or (
                    isinstance(item, DecodeError) and item.reason in proof
                ):
                    return name
        return None


class AutoDecoder:
    """A `decoder.Decoder` that first finds the protocol, then delegates to its decoder.

    `factory(protocol)` makes the real decoder (with the service's options). Nothing is lost:
    the bytes held while detecting are fed to it first. Without any valid frame in `max_sample`
    bytes, it reports one `parse_error` saying what to check and starts over."""

    def __init__(
        self,
        factory: Callable[[str], Decoder],
        *,
        keys: Keys | None = None,
        max_sample: int = 65536,
    ) -> None:
        self.protocol = "auto"
        self.factory = factory
        self.keys = keys
        self.max_sample = max_sample
        self.decoder: Decoder | None = None
        self._prober = Prober(keys=keys)
        self._offset = 0

    @property
    def skipped(self) -> int:
        return int(getattr(self.decoder, "skipped", 0))

    def feed(self, data: bytes, received_ms: int) -> list[Decoded | DecodeError]:
        if self.decoder is not None:
            return self.decoder.feed(data, received_ms)
        found = self._prober.feed(data)
        if found is None:
            held = len(self._prober.sample)
            if held <= self.max_sample:
                return []
            self._prober = Prober(keys=self.keys)
            offset, self._offset = self._offset, self._offset + held
            return [
                DecodeError(
                    "parse_error",
                    f"no P1 telegram, HDLC, M-Bus or DLMS frame in {held} bytes: check the "
                    "port's line settings (serial://...?baud=auto finds them) and the wiring",
                    offset=offset,
                )
            ]
        log.info("meter speaks %s", found)
        PROTOCOL.labels(found).set(1)
        self.protocol = found
        self.decoder = self.factory(found)
        return self.decoder.feed(self._prober.sample, received_ms)

    def flush(self, received_ms: int) -> list[Decoded | DecodeError]:
        """End of input. Still undecided: the protocol whose signature came first reads what
        was held, so a cut-off or damaged last frame is reported as what it is."""
        out: list[Decoded | DecodeError] = []
        if self.decoder is None:
            sample = self._prober.sample
            found = candidates(sample)
            if not found:
                return []
            self.decoder = self.factory(found[0])
            out = self.decoder.feed(sample, received_ms)
        flush = getattr(self.decoder, "flush", None)
        return out + (list(flush(received_ms)) if flush is not None else [])


def identify(sample: bytes, *, keys: Keys | None = None) -> str | None:
    """The protocol of `sample`, or None when no decoder finds a valid frame in it."""
    return Prober(keys=keys).feed(sample)


SampleLine = Callable[[LineSetting, Prober], Awaitable[str | None]]


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
        protocol = await sample_line(setting, Prober(keys=keys))
        PROBES.labels(str(setting), "found" if protocol else "nothing").inc()
        if protocol:
            DETECTED.labels(str(setting), protocol).set(1)
            log.info("port %s speaks %s at %s", port or "?", protocol, setting)
            return setting, protocol
        log.info("port %s: no valid frames at %s", port or "?", setting)
    log.warning("port %s: no line setting gave valid frames", port or "?")
    return None


def sample_serial(
    url: str, setting: LineSetting, prober: Prober, seconds: float, *, chunk: int = 4096
) -> str | None:
    """Blocking: read `url` (pyserial URL or device) at `setting` for up to `seconds`, feeding
    the prober; run it in a thread (`asyncio.to_thread`). When a protocol is found the port
    stays open in `prober.port` for the caller to read on (no reopen, no bytes lost)."""
    import serial

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
    """The ingest source for `serial://DEVICE?baud=auto`: finds the line settings with
    `detect_line`, then reads on at them from the port detection left open, starting with the
    bytes detection already read. Adapter lost or nothing found: tries again with backoff."""

    spec: Any  # sources.SourceSpec
    keys: Keys | None = None
    sample_seconds: float | None = None  # None: DETECT_SECONDS
    settings: tuple[LineSetting, ...] = LINE_SETTINGS

    async def _sample(
        self, probers: list[Prober], setting: LineSetting, prober: Prober
    ) -> str | None:
        probers.append(prober)
        seconds = self.sample_seconds if self.sample_seconds is not None else DETECT_SECONDS
        return await asyncio.to_thread(sample_serial, self.spec.path, setting, prober, seconds)

    async def chunks(self) -> AsyncIterator[bytes]:
        import serial

        from shared.backoff import Backoff

        from .sources import SerialSource

        backoff = Backoff()
        path = self.spec.path
        while True:
            probers: list[Prober] = []

            try:
                found = await detect_line(
                    functools.partial(self._sample, probers),
                    keys=self.keys,
                    settings=self.settings,
                    port=path,
                )
            except (serial.SerialException, OSError, ValueError, termios.error) as error:
                delay = backoff.next_delay()
                log.warning("serial port %s: %s; next try in %.1f s", path, error, delay)
                await asyncio.sleep(delay)
                continue
            if found is None:
                await asyncio.sleep(backoff.next_delay())
                continue
            port = probers[-1].port
            try:
                yield probers[-1].sample
                async for data in SerialSource(self.spec)._read(port):
                    backoff.reset()
                    yield data
            except (serial.SerialException, OSError, termios.error) as error:
                delay = backoff.next_delay()
                log.warning(
                    "serial port %s lost: %s; detecting again in %.1f s", path, error, delay
                )
                await asyncio.sleep(delay)
            finally:
                port.close()
