"""A batch as the export reads it (`Entries`, `Exported`: the numbers kept as the stream's JSON
text), pure: bad entries left out and named; the line protocol and COPY text made of a whole
run at once hold exactly what the general path makes of each full `Reading`."""

from __future__ import annotations

import math

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from services.export.sinks.entries import Entries, Exported
from services.export.sinks.lineprotocol import (
    EXPORTED,
    body,
    reading_line,
    same_shape_lines,
    series_prefix,
    submeter_line,
)
from services.export.sinks.sql import copy_line, reading_row, readings_copy_text
from shared.meters import meter_of
from shared.metrics import STREAM_BAD_ENTRIES
from shared.reading import Reading, SubMeter, encode_reading

from .support import BOX, reading
from .test_lineprotocol import any_readings, parsed
from .test_sql import parsed as parsed_row

PREFIX = series_prefix(BOX, "main")
finite = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**6), max_value=10**6),
)


def read(readings: list[Reading]) -> Entries:
    """The readings as the export reads them from the stream."""
    return Entries.decode([(f"{n + 1}-0", encode_reading(r)) for n, r in enumerate(readings)], [])


def test_exported_holds_every_number_the_export_writes() -> None:
    """`Exported` names its numbers itself: they are the field catalogue's exported keys."""
    numbers = [f.name for f in msgspec.structs.fields(Exported) if f.type is msgspec.Raw]
    assert numbers == list(dict.fromkeys(v.field.key for v in EXPORTED))


def test_entries_that_do_not_decode_are_left_out_and_named() -> None:
    before = STREAM_BAD_ENTRIES._value.get()
    bad: list[str] = []
    entries = Entries.decode(
        [
            ("1-0", encode_reading(reading(1))),
            ("2-0", b'{"ts": "not a time"}'),
            ("3-0", None),  # no `reading` field
            ("4-0", b"{not json"),
            ("5-0", encode_reading(reading(5))),
        ],
        bad,
    )
    assert bad == ["3-0", "2-0", "4-0"]
    assert STREAM_BAD_ENTRIES._value.get() - before == 3
    assert entries.ids == ["1-0", "5-0"]
    assert [r.ts for r in entries.readings] == [reading(1).ts, reading(5).ts]
    assert entries[1] == ("5-0", encode_reading(reading(5)))  # what a dead letter keeps
    half = entries[1:]
    assert (half.ids, half.payloads, len(half)) == (["5-0"], [encode_reading(reading(5))], 1)


def test_a_meters_run_is_made_at_once_as_each_line_apart() -> None:
    readings = [reading(n) for n in range(250)]
    entries = read(readings)
    run = same_shape_lines(entries.readings, PREFIX)
    assert run is not None  # (the fast path taken)
    assert run.split(b"\n") == [reading_line(r, PREFIX).encode() for r in readings]  # type: ignore[union-attr]
    rows = readings_copy_text(entries.readings, BOX).split(b"\n")
    assert rows[-1] == b""
    assert [parsed_row(row) for row in rows[:-1]] == [
        parsed_row(copy_line(reading_row(r, BOX))) for r in readings
    ]


@st.composite
def runs_of_one_shape(draw: st.DrawFn) -> list[Reading]:
    """A few readings with the values of the first present (other numbers), now and then one of
    another shape among them."""
    drawn = draw(any_readings())
    first = msgspec.structs.replace(  # arrays of the catalogue's lengths
        drawn,
        **{k: (getattr(drawn, k) + [None] * 4)[:4] for k in ("p", "pi", "pe", "r")},
        **{k: (getattr(drawn, k) + [None] * 3)[:3] for k in ("u", "i")},
    )
    runs = [first]

    def other(value: float | None) -> float | None:  # absent stays absent, a number another
        return None if value is None or not math.isfinite(value) else draw(finite)

    for n in range(draw(st.integers(0, 5))):
        if draw(st.integers(0, 5)) == 0:
            runs.append(draw(any_readings()))
            continue
        changed = {
            key: [other(v) for v in value] if isinstance(value, list) else other(value)
            for key, value in msgspec.structs.asdict(first).items()
            if key in ("ic", "ec", "ric", "rec", "frequency", "p", "pi", "pe", "r", "u", "i")
        }
        runs.append(msgspec.structs.replace(first, ts=first.ts + n + 1, **changed))
    for r in runs:  # now and then a gas meter behind it
        if draw(st.booleans()):
            r.submeters = [SubMeter(channel=1, value=draw(finite), unit="m3", ts=r.ts - 5000)]
    return runs


@given(runs_of_one_shape())
def test_lines_of_a_read_batch_hold_what_each_full_reading_makes(readings: list[Reading]) -> None:
    made = [parsed(line) for line in body(read(readings).readings, BOX).split(b"\n") if line]
    general = [parsed(reading_line(r, series_prefix(BOX, meter_of(r)))) for r in readings]
    general += [
        parsed(submeter_line(s, r, BOX, meter_of(r))) for r in readings for s in r.submeters
    ]  # (a run's sub-meter lines come after the run's lines: the order is no store's concern)
    assert sorted(made, key=repr) == sorted((g for g in general if g is not None), key=repr)


@given(runs_of_one_shape())
def test_rows_of_a_read_batch_hold_what_reading_row_makes(readings: list[Reading]) -> None:
    text = readings_copy_text(read(readings).readings, BOX)
    made = [parsed_row(line) for line in text.split(b"\n")[:-1]]
    assert made == [parsed_row(copy_line(reading_row(r, BOX))) for r in readings]
    assert not any(isinstance(v, float) and not math.isfinite(v) for row in made for v in row)
