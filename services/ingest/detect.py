"""What a meter port speaks: sample bytes in, protocol (and for `baud=auto`, line settings) out.

- `identify(sample)`: the protocol whose decoder finds a valid frame in the bytes, tried in the
  order their signatures appear: `/XXX5` = P1, `7E A?` = HDLC, `68 L L 68` = M-Bus, `DB 08` =
  raw general-glo-ciphering ("dlms"). A frame that fails only for its key (key_error,
  auth_error) still proves the protocol.
- `make_decoder(protocol, ...)`: the incremental decoder for a protocol name.
- `detect_line(sample_line)`: walks `LINE_SETTINGS` (115200 8N1, 2400 8E1, 9600 8E1, ...) and
  answers the first setting whose bytes hold valid frames; `sample_serial` reads a pyserial port
  with one setting. Results are logged and exported as Prometheus metrics.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
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

PROBES = Counter(
    "hanport_ingest_line_probes_total",
    "Line settings tried by baud=auto detection, by result (found, nothing).",
    ["setting", "result"],
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
