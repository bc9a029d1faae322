"""shared/stream_id.py: parsing, ordering and the id after one (pure, no server)."""

from __future__ import annotations

import re

import pytest

from shared.stream_id import BEFORE_ALL, ID_PATTERN, StreamId, entry_id_text, id_after


def test_parse_reads_both_parts_and_a_bare_ms_is_seq_0() -> None:
    assert StreamId.parse("1764152400000-3") == StreamId(1764152400000, 3)
    assert StreamId.parse(b"1764152400000-3") == StreamId(1764152400000, 3)
    assert StreamId.parse("1764152400000") == StreamId(1764152400000, 0)
    assert str(StreamId.parse("1764152400000-3")) == "1764152400000-3"


def test_ids_sort_as_numbers_not_as_text() -> None:
    ids = ["10-0", "9-5", "9-10", "9-9"]
    assert sorted(ids, key=StreamId.parse) == ["9-5", "9-9", "9-10", "10-0"]
    assert max(ids, key=StreamId.parse) == "10-0"
    assert all(StreamId.parse(i) > BEFORE_ALL for i in ("0-1", "1-0"))


def test_id_after_is_the_next_seq() -> None:
    assert id_after("1764152400000-3") == "1764152400000-4"
    assert id_after("1764152400000") == "1764152400000-1"
    assert StreamId(5, 9).after() == "5-10"


def test_text_of_what_redis_py_returns() -> None:
    assert entry_id_text(b"1-2") == "1-2"
    assert entry_id_text("1-2") == "1-2"


def test_not_a_number_raises_value_error() -> None:
    with pytest.raises(ValueError):
        StreamId.parse("abc-1")
    assert re.match(ID_PATTERN, "1764152400000-0")
    assert re.match(ID_PATTERN, "1764152400000")
    assert not re.match(ID_PATTERN, "1-2-3")
    assert not re.match(ID_PATTERN, "1" * 20)
