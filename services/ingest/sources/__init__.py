"""Where meter bytes come from: `open_source` turns a `spec.SourceSpec` into the `spec.Source`
that reads it: the simulator, a serial port (fixed or detected line settings), TCP or a file.

Serial and TCP sources never end: a lost port or connection is reopened with backoff (counted in
`hanport_ingest_source_reconnects_total`). A file source ends after the last byte.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from ..codec.p1.clock import DEFAULT_TIMEZONE
from .capture_file import FileSource
from .line_settings import AutoSerialSource
from .serial_port import SerialSource
from .simulator import SimulatorSource
from .spec import Source, SourceSpec
from .tcp import TcpSource


def open_source(
    spec: SourceSpec,
    *,
    simulator_interval: float = 1.0,
    tz: ZoneInfo | str = DEFAULT_TIMEZONE,
    idle_timeout: float = 60.0,
) -> Source:
    """The source for `spec`."""
    if spec.kind == "serial" and spec.baud == 0:
        return AutoSerialSource(spec)
    if spec.kind == "serial":
        return SerialSource(spec)
    if spec.kind == "tcp":
        return TcpSource(spec, idle_timeout=idle_timeout)
    if spec.kind == "file":
        return FileSource(spec, tz=tz)
    return SimulatorSource(spec, interval=simulator_interval, tz=tz)
