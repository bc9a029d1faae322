"""Readings as SQL rows, and the schema the PostgreSQL sink creates and migrates: pure, no I/O
(the PostgreSQL sink and the fleet hub's workers share it).

Tables (docs/export.md):
- `hanport_readings`: one row per reading: `box` (the reader's serial), `meter`
  (`shared.meters.meter_of`), `time` (the reading's `ts`), `received`, then one `double
  precision` column per number, named as in line protocol (`ic`, `p`, `p_l1`, `u_l1`, ...;
  `lineprotocol.EXPORTED`); NULL where the meter sent nothing.
- `hanport_submeters`: one row per M-Bus sub-meter value: `box`, `meter`, `channel`, `time`
  (its own, else the reading's), `device`, `device_type`, `value`, `unit`.
- `hanport_schema`: the migrations applied (`MIGRATIONS`, by version).

Both data tables are partitioned by month of `time` (UTC; `partition_ddl` makes one, the sink
before each batch that needs it) and keyed by (box, meter[, channel], time): written with
`ON CONFLICT DO NOTHING`, a batch written again stores nothing twice.
"""

from __future__ import annotations

import functools
import math
import operator
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from shared.meters import meter_of
from shared.reading import SubMeter

from .entries import AnyReading
from .intervals import DDL as INTERVALS_DDL
from .lineprotocol import (
    ENCODE,
    EXPORTED,
    VALUES,
    all_of_shape,
    export_name,
    flat_values,
    value_texts,
)

READINGS = "hanport_readings"
SUBMETERS = "hanport_submeters"
SCHEMA = "hanport_schema"

# (column, its SQL type, the Value it holds) per number; the key columns come first
VALUE_COLUMNS: tuple[str, ...] = tuple(export_name(v) for v in EXPORTED)
READING_COLUMNS: tuple[str, ...] = ("box", "meter", "time", "received", *VALUE_COLUMNS)
SUBMETER_COLUMNS: tuple[str, ...] = (
    "box", "meter", "channel", "time", "device", "device_type", "value", "unit",
)  # fmt: skip

_values_sql = ",\n  ".join(f"{name} double precision" for name in VALUE_COLUMNS)

# (version, statements): applied in order, each version once, recorded in `hanport_schema`. A
# new column is a new version (`ALTER TABLE ... ADD COLUMN IF NOT EXISTS`), never an edit.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            f"""CREATE TABLE IF NOT EXISTS {READINGS} (
  box text NOT NULL,
  meter text NOT NULL,
  time timestamptz NOT NULL,
  received timestamptz,
  {_values_sql},
  PRIMARY KEY (box, meter, time)
) PARTITION BY RANGE (time)""",
            f"""CREATE TABLE IF NOT EXISTS {SUBMETERS} (
  box text NOT NULL,
  meter text NOT NULL,
  channel integer NOT NULL,
  time timestamptz NOT NULL,
  device text,
  device_type integer,
  value double precision,
  unit text,
  PRIMARY KEY (box, meter, channel, time)
) PARTITION BY RANGE (time)""",
        ),
    ),
    (2, (INTERVALS_DDL,)),  # the accounting service's intervals (sinks/intervals.py)
)
SCHEMA_DDL = f"""CREATE TABLE IF NOT EXISTS {SCHEMA} (
  version integer PRIMARY KEY,
  applied timestamptz NOT NULL DEFAULT now()
)"""
PARTITIONED = (READINGS, SUBMETERS)


def to_time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def month_of(ms: int) -> tuple[int, int]:
    """(year, month) in UTC of a time in ms: the partition a row goes to."""
    moment = to_time(ms)
    return moment.year, moment.month


def partition_ddl(table: str, year: int, month: int) -> str:
    """The statement creating `table`'s partition for one month (UTC), if missing."""
    after = (year + 1, 1) if month == 12 else (year, month + 1)
    return (
        f"CREATE TABLE IF NOT EXISTS {table}_{year:04d}_{month:02d} PARTITION OF {table} "
        f"FOR VALUES FROM ('{year:04d}-{month:02d}-01 00:00:00+00') "
        f"TO ('{after[0]:04d}-{after[1]:02d}-01 00:00:00+00')"
    )


_present = functools.partial(operator.is_not, None)


def reading_row(reading: AnyReading, box: str, meter: str | None = None) -> tuple[Any, ...]:
    """The reading's row of `hanport_readings`, in `READING_COLUMNS` order."""
    received = to_time(reading.received) if reading.received else None
    values = flat_values(reading)
    # NaN or infinity makes the sum so (a sum too large for a float too: the careful way then)
    if not math.isfinite(sum(filter(_present, values))):  # NaN, inf: NULL, as absent
        values = [v if v is not None and math.isfinite(v) else None for v in values]
    return (box, meter or meter_of(reading), to_time(reading.ts), received, *values)


def submeter_row(submeter: SubMeter, reading: AnyReading, box: str) -> tuple[Any, ...] | None:
    """A sub-meter's row of `hanport_submeters`, None when it sent no value."""
    if submeter.value is None:
        return None
    return (
        box,
        meter_of(reading),
        submeter.channel,
        to_time(submeter.ts or reading.ts),
        submeter.id,
        submeter.device_type,
        float(submeter.value),
        submeter.unit,
    )


def months(readings: Sequence[AnyReading]) -> set[tuple[int, int]]:
    """The months (UTC) the rows of `readings` fall in: the partitions a batch needs."""
    days = {r.ts // 86_400_000 for r in readings}  # (a day lies in one month: fewer dates)
    out = {month_of(day * 86_400_000) for day in days}
    out |= {month_of(s.ts) for r in readings for s in r.submeters if s.ts}
    return out


# --- COPY's text format ---------------------------------------------------------------------
# A batch's rows of `hanport_readings` as one text for COPY (tab-separated, `\N` for NULL),
# made from `lineprotocol.value_texts` (one JSON encode a reading): the text and its COPY take
# 4.6 µs of the export's CPU a row, `reading_row` and psycopg's `write_row` of it took 10.6 to 11
# (docs/performance.md, Export).

_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_field(value: Any) -> str:
    """One value in COPY's text format: `\\N` for NULL (and NaN, infinity), text escaped."""
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "\\N"
    return str(value).translate(_COPY_ESCAPES)


def copy_line(row: tuple[Any, ...]) -> bytes:
    """A row (`reading_row`, `submeter_row`) as a line of COPY's text format."""
    return ("\t".join(map(copy_field, row)) + "\n").encode()


@functools.lru_cache(maxsize=4096)
def _minute_text(minute: int) -> str:
    """`2025-12-01 00:01:` of a minute since the epoch, in UTC."""
    return time.strftime("%Y-%m-%d %H:%M:", time.gmtime(minute * 60))


_SECONDS = tuple(f"{second:02d}." for second in range(60))
_MILLISECONDS = tuple(f"{ms:03d}+00" for ms in range(1000))


def time_str(ms: int) -> str:
    """A time in ms as `timestamptz` text: `2025-12-01 00:01:02.345+00` (0.37 µs, from texts
    made once; formatting the numbers took 0.87)."""
    minute, rest = divmod(ms, 60_000)
    second, milli = divmod(rest, 1000)
    return _minute_text(minute) + _SECONDS[second] + _MILLISECONDS[milli]


def time_text(ms: int) -> bytes:
    """`time_str` as bytes."""
    return time_str(ms).encode()


_COMMA_TO_TAB = bytes.maketrans(b",", b"\t")
_ROW_GAP = b"]],["  # between two rows' JSON: `...,50.0]],["2025-...`: nowhere inside a row
_ROW_MARK = b"\x00"  # (JSON text never holds it: the encoder escapes control characters)


def same_shape_copy_text(readings: Sequence[AnyReading], key: bytes) -> bytes | None:
    """The rows of readings of one meter (`key`: its `box\tmeter\t` in COPY text) that all have
    the shape of the first (the same values present: `value_texts`' fast path), made at once:
    one encode of every row's times and values, `["2025-12-01 00:00:01.000+00",null,[47.5,
    ...]]`, then its commas made tabs and its nulls `\\N`; None when they are not all of one
    shape. 2.4 µs a row where each row made apart took 5.7 (docs/performance.md, Export)."""
    if value_texts(readings[0]) is None:  # a shape of other array lengths, other values
        return None
    rows = [
        (time_str(r.ts), time_str(r.received) if r.received else None, VALUES(r)) for r in readings
    ]
    text = ENCODE(rows)
    if not all_of_shape(text, ENCODE(rows[0]), len(rows)):
        return None
    text = text[2:-3].replace(_ROW_GAP, _ROW_MARK)  # (the list's `[[` and `]]]` gone)
    text = text.translate(_COMMA_TO_TAB, b'[]"').replace(b"null", b"\\N")
    return key + text.replace(_ROW_MARK, b"\n" + key) + b"\n"


def readings_copy_text(readings: Sequence[AnyReading], box: str) -> bytes:
    """The rows of `readings` in `hanport_readings` (`READING_COLUMNS`), as `reading_row` makes
    them, in COPY's text format: a meter's run of one shape at once (`same_shape_copy_text`),
    else row by row."""
    if not readings:
        return b""
    meters = {meter_of(reading) for reading in readings}
    if len(meters) == 1:
        run = same_shape_copy_text(
            readings, f"{copy_field(box)}\t{copy_field(meters.pop())}\t".encode()
        )
        if run is not None:
            return run
    out: list[bytes] = []
    keys: dict[str, bytes] = {}  # `box\tmeter\t` of each meter
    for reading in readings:
        texts = value_texts(reading)
        if texts is None:  # another shape than `Reading`'s: the general way
            out.append(copy_line(reading_row(reading, box)))
            continue
        meter = meter_of(reading)
        key = keys.get(meter)
        if key is None:
            key = keys[meter] = f"{copy_field(box)}\t{copy_field(meter)}\t".encode()
        values = texts[: texts.rindex(b",")]  # (the time is last)
        values = values.replace(b"null", b"\\N").replace(b",", b"\t")
        received = time_text(reading.received) if reading.received else b"\\N"
        out.append(b"%b%b\t%b\t%b\n" % (key, time_text(reading.ts), received, values))
    return b"".join(out)
