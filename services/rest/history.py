"""`/meter/history` and `/meter/telegram`: turning query parameters into stream ranges, and
stream entries into answers.

Consumes `from`/`to` (ISO 8601 or ms since the epoch, already validated by FastAPI; a time
without zone is UTC), `limit` and `since` (a stream id, exclusive); produces XRANGE bounds, or
a `BadParameter` (which parameter, what it was, what is allowed) for ids given in headers.
Stream ids are `<receive ms>-<seq>`, so times select by when ingest received the reading.
A history answer is produced page by page (`history_chunks`), never whole in memory.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgspec
from redis.asyncio import Redis

from shared.meters import meter_of
from shared.raw_stream import RAW_FIELD
from shared.reading import cozify_message
from shared.stream import Entry, ReadingStream, parse_entries
from shared.stream_id import ID_PATTERN, StreamId, entry_id_text, id_after

from .read_gate import PAGE

ID = re.compile(ID_PATTERN)
MAX_MS = 2**64 - 1


class BadParameter(ValueError):
    def __init__(self, name: str, value: object, why: str) -> None:
        super().__init__(f"query parameter '{name}'={value!r}: {why}")
        self.name = name
        self.value = value
        self.why = why


def to_ms(value: int | datetime) -> int:
    """ms since the epoch, clamped to what a stream id can hold; a time without zone is UTC."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        try:
            value = int(moment.timestamp() * 1000)
        except (OverflowError, ValueError, OSError):
            value = 0 if moment.year < 1970 else MAX_MS
    return min(max(value, 0), MAX_MS)


def parse_id(name: str, value: str) -> str:
    """A stream id (`1764152400000-0`, or just the ms part); raises BadParameter."""
    text = value.strip()
    if not ID.match(text):
        raise BadParameter(name, value, "expected a stream id such as 1764152400000-0")
    return text if "-" in text else f"{text}-0"


def bounds(
    start: int | datetime | None, end: int | datetime | None, since: str | None
) -> tuple[str, str]:
    """XRANGE (low, high) bounds, both inclusive: after `since` and from `start` (the later of
    the two), up to `end`. An empty window (low after high) simply selects nothing."""
    low = "-"
    if since is not None:
        low = id_after(parse_id("since", since))
    if start is not None:
        from_start = f"{to_ms(start)}-0"
        if low == "-" or StreamId.parse(from_start) > StreamId.parse(low):
            low = from_start
    high = "+" if end is None else f"{to_ms(end)}-{MAX_MS}"
    return low, high


def empty(low: str, high: str) -> bool:
    return low != "-" and high != "+" and StreamId.parse(low) > StreamId.parse(high)


_encoder = msgspec.json.Encoder()

# The answer is `{"type":"HAN_METER_HISTORY","readings":[...],"next_since":...,"more":...}`,
# sent in pieces: this head, each page's readings (comma separated), then `tail`. Every piece
# comes from the same encoder, so the whole equals encoding the answer in one go, byte for byte.
HEAD = _encoder.encode({"type": "HAN_METER_HISTORY", "readings": []})[:-2]


def tail(next_since: str | None, more: bool) -> bytes:
    return b"]," + _encoder.encode({"next_since": next_since, "more": more})[1:]


def page_readings(entries: list[Entry]) -> bytes:
    """The readings of one page as they appear inside the `readings` array."""
    return _encoder.encode([{"id": i, **cozify_message(r)} for i, r in entries])[1:-1]


async def history_chunks(
    stream: ReadingStream,
    low: str,
    high: str,
    limit: int,
    redis_wait: float,
    page: int = PAGE,
    meter: str | None = None,
) -> AsyncIterator[bytes]:
    """The HAN_METER_HISTORY answer for [low, high], at most `limit` readings, oldest first, in
    pieces of at most `page` readings, each read with XRANGE COUNT (within `redis_wait` s, else
    TimeoutError). The first piece comes after the first Redis answer.

    Reads `limit` + 1 stream entries in all: one past the limit says whether there are more
    (an entry that does not decode is skipped, and counts). With `meter`, only that meter's
    readings (a stream several meters share): pages are read until `limit` + 1 of its readings
    were found or the range ends."""
    wanted, sent, more = limit + 1, 0, False
    last: str | None = None
    head = HEAD
    while wanted > 0:
        count = min(page, wanted) if meter is None else page
        async with asyncio.timeout(redis_wait):
            raw = (await stream.redis.xrange(stream.key, low, high, count=count)) or []
        entries = parse_entries(raw)
        if meter is None:
            wanted -= len(raw)
        else:
            entries = [e for e in entries if meter_of(e[1]) == meter]
        if sent + len(entries) > limit:
            more = True
            entries = entries[: limit - sent]
        if entries:
            yield head + (b"," if sent else b"") + page_readings(entries)
            head = b""
            sent += len(entries)
            last = entries[-1][0]
        if more or len(raw) < count:
            break
        low = id_after(entry_id_text(raw[-1][0]))
    yield head + tail(last, more)


# The telegram's field of a raw-stream entry (`shared.raw_stream`; `telegram` in older ones).
TELEGRAM_FIELDS = (RAW_FIELD, b"telegram")


def _text(raw: bytes) -> str | None:
    """P1 telegrams are ASCII text; anything else is a binary frame."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if all(c.isprintable() or c in "\r\n\t" for c in text) else None


def _bytes(value: bytes | str | int | float) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


async def last_telegram(redis: Redis, key: str) -> bytes | None:
    """The HAN_TELEGRAM answer for the newest raw-stream entry, None when there is none."""
    entries = await redis.xrevrange(key, "+", "-", count=1)
    if not entries:
        return None
    raw_id, raw_fields = entries[0]
    entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
    fields: dict[bytes, bytes] = {_bytes(k): _bytes(v) for k, v in (raw_fields or {}).items()}
    name = next((f for f in TELEGRAM_FIELDS if f in fields), None)
    raw = fields.get(name, b"") if name else b""
    text = _text(raw)
    others = {k.decode("latin-1"): _text(v) or v.hex() for k, v in fields.items() if k != name}
    return _encoder.encode(
        {
            "type": "HAN_TELEGRAM",
            "id": entry_id,
            "encoding": "text" if text is not None else "hex",
            "telegram": text if text is not None else raw.hex(),
            "fields": others,
        }
    )
