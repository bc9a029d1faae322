"""Line protocol, pure: the fast path (one JSON encode per reading, a template per shape) writes
exactly what the general one-value-at-a-time path writes, for any reading."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from services.export.sinks.lineprotocol import (
    body,
    reading_line,
    reading_line_bytes,
    series_prefix,
)
from shared.reading import Reading

from .support import BOX, T0, reading

PREFIX = series_prefix(BOX, "main")


def parsed(line: str | bytes | None) -> tuple[str, dict[str, float], int] | None:
    """(series, {field: value}, time) of a line: number texts may differ (`1e-05`,
    `0.00001`), their values may not."""
    if line is None:
        return None
    text = line.decode() if isinstance(line, bytes) else line
    series, fields, ts = text.split(" ")
    values = {}
    for field in fields.split(","):
        name, number = field.split("=")
        values[name] = float(number)
    return series, values, int(ts)


def test_a_full_reading_line() -> None:
    r = reading(3)
    line = reading_line_bytes(r, PREFIX)
    assert line == (
        b"hanport,box=HPTEST0001,meter=main ic=1000.003,p=503.0,p_l1=200.0,p_l2=303.0,"
        b"pi=503.0,pi_l1=200.0,pi_l2=303.0,u_l1=230.5,u_l2=231.0,i_l1=1.25,i_l2=2.5 "
        + str(T0 + 3000).encode()
    )
    assert parsed(line) == parsed(reading_line(r, PREFIX))


def test_not_a_number_infinity_and_absent_values_are_left_out() -> None:
    r = Reading(ts=T0, received=T0, ic=math.nan, ec=math.inf, ric=-math.inf, rec=5.5)
    assert reading_line_bytes(r, PREFIX) == f"{PREFIX} rec=5.5 {T0}".encode()
    nothing = Reading(ts=T0, received=T0, ic=math.nan)
    assert reading_line_bytes(nothing, PREFIX) is None  # line protocol needs a field


def test_an_array_of_another_length_takes_the_general_path() -> None:
    r = Reading(ts=T0, received=T0, p=[1.0, 2.0], u=[230.0, 231.0, 232.0, 233.0])
    assert reading_line_bytes(r, PREFIX) == (
        f"{PREFIX} p=1.0,p_l1=2.0,u_l1=230.0,u_l2=231.0,u_l3=232.0 {T0}".encode()
    )


def test_tags_are_escaped_and_sub_meters_follow_their_reading() -> None:
    r = reading(0, meter="heat pump,2")
    lines = body([r], "box=1").split(b"\n")
    assert lines[0].startswith(b"hanport,box=box\\=1,meter=heat\\ pump\\,2 ic=1000.0,")
    assert lines[1] == (
        b"hanport_submeter,box=box\\=1,channel=1,device=G1,meter=heat\\ pump\\,2,unit=m3 "
        b"value=10.0,device_type=3i " + str(T0).encode()
    )


numbers = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from([0.0, -0.0, 1e-05, 1e16, 1e22, 0.1 + 0.2]),
)


def arrays(size: int) -> st.SearchStrategy[list[float | int | None]]:
    usual = st.lists(numbers, min_size=size, max_size=size)
    return st.one_of(usual, usual, st.lists(numbers, max_size=5))  # sometimes another length


@st.composite
def any_readings(draw: st.DrawFn) -> Reading:
    """Readings of every shape: values absent, NaN, infinite, integers, tiny and huge, arrays of
    the catalogue's lengths and, now and then, of others."""
    ic, ec, ric, rec, frequency = draw(st.lists(numbers, min_size=5, max_size=5))
    p, pi, pe, r = draw(st.lists(arrays(4), min_size=4, max_size=4))
    u, i = draw(st.lists(arrays(3), min_size=2, max_size=2))
    ts, received = draw(st.lists(st.integers(0, 4_102_444_800_000), min_size=2, max_size=2))
    return Reading(
        ts=ts, received=received, ic=ic, ec=ec, ric=ric, rec=rec, frequency=frequency,
        p=p, pi=pi, pe=pe, r=r, u=u, i=i,
    )  # fmt: skip


@given(any_readings())
def test_the_fast_path_writes_what_the_general_path_writes(r: Reading) -> None:
    assert parsed(reading_line_bytes(r, PREFIX)) == parsed(reading_line(r, PREFIX))
