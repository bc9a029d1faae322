"""Stream entry ids: `<ms>-<seq>` (Redis's own format; ingest picks `<receive ms>-<seq>`).

The one parser every service uses: to compare ids (`StreamId` sorts as the pair of numbers, not
as text: `9-0` < `10-0`), to take the id after one (an exclusive XRANGE start) and to turn what
redis-py returns (bytes or str) into text.

    StreamId.parse("1764152400000-3")          # StreamId(ms=1764152400000, seq=3)
    StreamId.parse("1764152400000-3").after()  # "1764152400000-4"
    entry_id_text(b"1764152400000-3")          # "1764152400000-3"
"""

from __future__ import annotations

from typing import Any, NamedTuple

FIRST = "0-0"  # before every entry: XREAD/XRANGE after it reads from the start
# An id as a client may send it (at most 19 digits per part: always below 2**64, so every id
# that matches is a valid stream id); the seq part may be left out.
ID_PATTERN = r"^\d{1,19}(-\d{1,19})?$"


class StreamId(NamedTuple):
    """A parsed stream id; tuples compare as Redis orders entries."""

    ms: int
    seq: int

    @classmethod
    def parse(cls, entry_id: str | bytes) -> StreamId:
        """`"1700000000000-3"` -> StreamId(1700000000000, 3); a bare `"1700000000000"` is seq 0.
        Raises ValueError when either part is not a number."""
        text = entry_id_text(entry_id)
        ms, _, seq = text.partition("-")
        return cls(int(ms), int(seq or 0))

    def after(self) -> str:
        """The smallest id greater than this one, as text."""
        return f"{self.ms}-{self.seq + 1}"

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"


BEFORE_ALL = StreamId(0, 0)  # no entry has it (Redis refuses 0-0): every entry sorts after it


def entry_id_text(raw: Any) -> str:
    """An id as redis-py returns it (bytes, or str with decode_responses) as text."""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def id_after(entry_id: str) -> str:
    """The smallest stream id greater than `entry_id` (an exclusive range start)."""
    return StreamId.parse(entry_id).after()
