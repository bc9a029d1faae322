"""The line protocol's `interleave` (services/export/sinks/_interleave.c and its Python twin,
`lineprotocol.interleave_python`), pure: a run's numbers each after its piece of the line, the
two the same for any run of one shape; and the C one is built here (CI has a compiler), so the
export's fast path is what the tests and the benchmark run."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.export.sinks import lineprotocol
from services.export.sinks.lineprotocol import interleave_python

compiled = pytest.importorskip("services.export.sinks._interleave").interleave

numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**15), max_value=10**15),
)
# A reading's shape: each slot a number ("n"), absent ("null") or an array of slots
slots: st.SearchStrategy[Any] = st.recursive(
    st.sampled_from(["n", "null"]), lambda inner: st.lists(inner, max_size=4), max_leaves=12
)


def filled(shape: Any, draw: Any) -> Any:
    """A reading of `shape` (its "n" slots numbers drawn), and its numbers in order."""
    if shape == "n":
        number = draw(numbers)
        return number, [number]
    if shape == "null":
        return None, []
    parts = [filled(slot, draw) for slot in shape]
    return [value for value, _ in parts], [n for _, found in parts for n in found]


@st.composite
def runs(draw: Any) -> tuple[bytes, tuple[bytes, ...], bytes]:
    """(the JSON of a run of readings of one shape, a line's pieces, the lines expected)."""
    shape = draw(st.lists(slots, min_size=1, max_size=8))
    lines = [filled(shape, draw) for _ in range(draw(st.integers(1, 5)))]
    present = len(lines[0][1])
    if present == 0:
        return b"[]", (b"x",), b""
    pieces = tuple(draw(st.lists(st.binary(max_size=12), min_size=present, max_size=present)))
    expected = b"".join(
        piece + msgspec.json.encode(number)
        for _, found in lines
        for piece, number in zip(pieces, found, strict=True)
    )
    return msgspec.json.encode([value for value, _ in lines]), pieces, expected


def test_the_c_version_is_what_the_export_uses() -> None:
    assert lineprotocol.interleave is compiled


def test_each_number_after_its_piece_nulls_left_out() -> None:
    run = b"[[1.5,null,[7,-2e-05]],[2.5,null,[8,0.0]]]"
    pieces = (b"\nm a=", b",b=", b",c=")
    expected = b"\nm a=1.5,b=7,c=-2e-05\nm a=2.5,b=8,c=0.0"
    assert compiled(run, pieces) == interleave_python(run, pieces) == expected
    assert compiled(b"[]", (b"x",)) == interleave_python(b"[]", (b"x",)) == b""


@given(runs())
def test_the_c_and_python_versions_make_the_same_lines(run: tuple) -> None:
    text, pieces, expected = run
    assert compiled(text, pieces) == expected
    assert interleave_python(text, pieces) == expected


@pytest.mark.parametrize("interleave", [compiled, interleave_python])
def test_numbers_that_are_no_whole_lines_are_refused(interleave: Any) -> None:
    with pytest.raises(ValueError, match="3 numbers are not whole lines of 2"):
        interleave(b"[[1,2],[3]]", (b"a=", b" "))


def test_the_c_version_says_what_it_takes() -> None:
    with pytest.raises(TypeError, match=r"interleave\(values: bytes"):
        compiled("[1]", (b"a",))
    with pytest.raises(TypeError, match="every piece must be bytes"):
        compiled(b"[1]", ("a",))
    with pytest.raises(ValueError, match="no pieces"):
        compiled(b"[1]", ())
