"""SQL rows, pure: the COPY text the PostgreSQL sink sends holds exactly the rows `reading_row`
makes, for any reading (its fast path, one JSON encode a reading, against the general one)."""

from __future__ import annotations

import math
from datetime import datetime

from hypothesis import given

from services.export.sinks.sql import (
    READING_COLUMNS,
    VALUE_COLUMNS,
    copy_line,
    reading_row,
    readings_copy_text,
    time_text,
)
from shared.reading import Reading

from .support import BOX, T0, reading
from .test_lineprotocol import any_readings

TIMES = {READING_COLUMNS.index("time"), READING_COLUMNS.index("received")}
FIRST_VALUE = READING_COLUMNS.index(VALUE_COLUMNS[0])


def parsed(line: bytes) -> list[object]:
    """A COPY text line's fields: None for `\\N`, times as datetimes, numbers as floats."""
    fields: list[object] = []
    for n, text in enumerate(line.decode().rstrip("\n").split("\t")):
        if text == "\\N":
            fields.append(None)
        elif n in TIMES:
            fields.append(datetime.fromisoformat(text))
        elif n >= FIRST_VALUE:
            fields.append(float(text))
        else:
            fields.append(text)
    return fields


def test_a_reading_as_copy_text() -> None:
    text = readings_copy_text([reading(3), reading(4, meter="heat\tpump")], BOX)
    first, second, end = text.split(b"\n")
    assert end == b""
    assert first.startswith(
        b"HPTEST0001\tmain\t2025-12-01 00:00:03.000+00\t2025-12-01 00:00:03.150+00\t1000.003\t"
        b"\\N\t\\N\t\\N\t503.0\t200.0\t303.0\t\\N\t"
    )
    assert second.startswith(b"HPTEST0001\theat\\tpump\t")  # text escaped
    assert len(first.split(b"\t")) == len(READING_COLUMNS)


def test_times_before_and_after_a_minute_and_the_epoch() -> None:
    assert time_text(T0 + 59_999) == b"2025-12-01 00:00:59.999+00"
    assert time_text(T0 + 60_000) == b"2025-12-01 00:01:00.000+00"
    assert time_text(-1) == b"1969-12-31 23:59:59.999+00"


@given(any_readings())
def test_the_copy_text_holds_what_reading_row_makes(r: Reading) -> None:
    fast = parsed(readings_copy_text([r], BOX))
    general = parsed(copy_line(reading_row(r, BOX)))
    assert fast == general
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in fast)
