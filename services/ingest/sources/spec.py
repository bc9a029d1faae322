"""What `HANPORT_SOURCE` says: the text parsed into a `SourceSpec`, and the `Source` shape every
source has (an async stream of raw byte chunks; no decoding, so any decoder reads any source):

    simulator                                    the built-in meter (default)
    /dev/ttyUSB0                                 a bare device path: serial, line settings
                                                 detected (`sources/line_settings.py`)
    serial:///dev/ttyUSB0?baud=2400&parity=E&bytesize=8&stopbits=1
                                                 fixed line settings (default 115200 8N1;
                                                 `baud=auto` detects, as a bare path does)
    tcp://host:port                              ser2net, network P1 dongles
    file:///path/capture.txt?pace=recorded|fast  replay a capture

`sources.open_source` opens a spec.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import parse_qs, urlsplit

import serial

ALLOWED = (
    "simulator, a device path such as /dev/ttyUSB0 (line settings detected), "
    "serial:///dev/ttyUSB0?baud=2400&parity=E&bytesize=8&stopbits=1 (fixed line settings), "
    "tcp://host:port, or file:///path?pace=recorded|fast"
)
PARITIES = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}


@dataclass(frozen=True)
class SourceSpec:
    """A parsed `HANPORT_SOURCE`."""

    kind: Literal["simulator", "serial", "tcp", "file"]
    path: str = ""
    host: str = ""
    port: int = 0
    baud: int = 115200  # 0: detect the line settings (line_settings.AutoSerialSource)
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
        return SourceSpec("serial", path=text, baud=0)
    parts = urlsplit(text)
    query = parse_qs(parts.query)
    if parts.scheme == "serial":
        path = parts.path or parts.netloc
        if not path:
            raise ValueError(f"no device in {text!r}; expected {ALLOWED}")
        try:
            baud_text = _one(query, "baud", "115200")
            baud = 0 if baud_text == "auto" else int(baud_text)  # 0: detect (line_settings.py)
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
