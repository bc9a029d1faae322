"""The accounting service's energy intervals as line protocol and SQL rows: pure, no I/O.

The accounting service keeps, per meter and resolution (`15m`, `1h`, `1d`, `1mo`), a sorted set
`hanport:{<meter>}:accounting:<resolution>` scored by each interval's start (ms), each member
`<start>|<import>|<export>|<reactive import>|<reactive export>|<estimated 0/1>` (kWh, kvarh;
services/accounting/store.py). An interval can still change after it ended (a gap spread over
it), so an export writes it again whenever its member changes: line protocol overwrites the
point, SQL updates the row.

- line protocol: measurement `hanport_energy`, tags `box`, `meter`, `resolution`; fields
  `import`, `export`, `reactive_import`, `reactive_export` (floats) and `estimated` (boolean);
  time = the interval's start in ms.
- SQL: table `hanport_intervals`, key (box, meter, resolution, start).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .lineprotocol import escape_tag

MEASUREMENT = "hanport_energy"
TABLE = "hanport_intervals"
RESOLUTIONS = ("15m", "1h", "1d", "1mo")
METERS_KEY = "hanport:accounting:meters"


def intervals_key(meter: str, resolution: str) -> str:
    return "hanport:{" + meter + "}:accounting:" + resolution


@dataclass(frozen=True)
class Interval:
    """One accounting interval of one meter."""

    meter: str
    resolution: str
    start_ms: int
    imported: float
    exported: float
    reactive_imported: float
    reactive_exported: float
    estimated: bool


def parse_member(meter: str, resolution: str, member: bytes | str) -> Interval:
    """An interval from its sorted-set member; ValueError when it does not parse."""
    text = member.decode() if isinstance(member, bytes) else member
    parts = text.split("|")
    if len(parts) != 6:
        raise ValueError(f"an accounting interval has 6 parts, got {text!r}")
    imported, exported, reactive_imported, reactive_exported = (float(v) for v in parts[1:5])
    return Interval(
        meter,
        resolution,
        int(parts[0]),
        imported,
        exported,
        reactive_imported,
        reactive_exported,
        estimated=parts[5] == "1",
    )


def interval_line(interval: Interval, box: str) -> str:
    tags = (
        f"{MEASUREMENT},box={escape_tag(box)},meter={escape_tag(interval.meter)},"
        f"resolution={escape_tag(interval.resolution)}"
    )
    fields = (
        f"import={interval.imported!r},export={interval.exported!r},"
        f"reactive_import={interval.reactive_imported!r},"
        f"reactive_export={interval.reactive_exported!r},"
        f"estimated={'true' if interval.estimated else 'false'}"
    )
    return f"{tags} {fields} {interval.start_ms}"


def intervals_body(intervals: list[Interval], box: str) -> bytes:
    return "\n".join(interval_line(i, box) for i in intervals).encode()


COLUMNS = (
    "box", "meter", "resolution", "start",
    "import", "export", "reactive_import", "reactive_export", "estimated",
)  # fmt: skip
DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
  box text NOT NULL,
  meter text NOT NULL,
  resolution text NOT NULL,
  start timestamptz NOT NULL,
  import double precision,
  export double precision,
  reactive_import double precision,
  reactive_export double precision,
  estimated boolean NOT NULL DEFAULT false,
  PRIMARY KEY (box, meter, resolution, start)
)"""
_updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in COLUMNS[4:])
UPSERT = (
    f"INSERT INTO {TABLE} ({', '.join(f'{chr(34)}{c}{chr(34)}' for c in COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(COLUMNS))}) "
    f"ON CONFLICT (box, meter, resolution, start) DO UPDATE SET {_updates}"
)


def to_time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def interval_row(interval: Interval, box: str) -> tuple[Any, ...]:
    return (
        box,
        interval.meter,
        interval.resolution,
        to_time(interval.start_ms),
        interval.imported,
        interval.exported,
        interval.reactive_imported,
        interval.reactive_exported,
        interval.estimated,
    )
