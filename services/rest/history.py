"""`/meter/history` and `/meter/telegram`: turning query parameters into stream ranges, and
stream entries into answers.

Consumes `from`/`to` (ISO 8601 or ms since the epoch; a time without zone is UTC), `limit` and
`since` (a stream id, exclusive); produces XRANGE bounds or a `BadParameter` that says which
parameter, what it was and what is allowed. Stream ids are `<receive ms>-<seq>`, so times select
by when ingest received the reading.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import msgspec
from redis.asyncio import Redis

from shared.reading import cozify_message
from shared.stream import ReadingStream, id_after

ID = re.compile(r"^\d{1,20}(-\d{1,20})?$")
MAX_MS = 2**63 - 1


class BadParameter(ValueError):
    def __init__(self, name: str, value: object, why: str) -> None:
        super().__init__(f"query parameter '{name}'={value!r}: {why}")
        self.name = name
        self.value = value
        self.why = why


def parse_time(name: str, value: str) -> int:
    """ms since the epoch from `1764152400000` or `2025-11-26T10:20:00Z` (no zone = UTC)."""
    text = value.strip()
    if text.isdigit():
        ms = int(text)
    else:
        try:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise BadParameter(
                name,
                value,
                "expected ms since the epoch or an ISO 8601 time such as 2025-11-26T10:20:00Z",
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        ms = int(moment.timestamp() * 1000)
    if not 0 <= ms <= MAX_MS:
        raise BadParameter(name, value, "time out of range")
    return ms


def parse_id(name: str, value: str) -> str:
    text = value.strip()
    if not ID.match(text) or any(int(p) >= 2**64 for p in text.split("-")):
        raise BadParameter(name, value, "expected a stream id such as 1764152400000-0")
    return text if "-" in text else f"{text}-0"


def bounds(start: str | None, end: str | None, since: str | None) -> tuple[str, str]:
    """XRANGE (start, end) bounds for the parameters; raises BadParameter."""
    if since is not None and start is not None:
        raise BadParameter("since", since, "give either 'since' or 'from', not both")
    low = "-"
    if since is not None:
        low = id_after(parse_id("since", since))
    elif start is not None:
        low = f"{parse_time('from', start)}-0"
    high = "+"
    if end is not None:
        high = f"{parse_time('to', end)}-{2**64 - 1}"
    if low not in ("-",) and high != "+":
        lo_ms, hi_ms = int(low.split("-")[0]), int(high.split("-")[0])
        if lo_ms > hi_ms:
            raise BadParameter("to", end, "'to' is before 'from'/'since'")
    return low, high


_encoder = msgspec.json.Encoder()


async def history(stream: ReadingStream, low: str, high: str, limit: int) -> bytes:
    """The HAN_METER_HISTORY answer for [low, high], at most `limit` readings, oldest first."""
    entries = await stream.range(low, high, count=limit + 1)
    more = len(entries) > limit
    entries = entries[:limit]
    readings = [{"id": entry_id, **cozify_message(reading)} for entry_id, reading in entries]
    return _encoder.encode(
        {
            "type": "HAN_METER_HISTORY",
            "readings": readings,
            "next_since": entries[-1][0] if entries else None,
            "more": more,
        }
    )


TELEGRAM_FIELDS = (b"telegram", b"raw", b"data", b"frame", b"bytes")


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
    others = {
        k.decode("latin-1"): (_text(v) if _text(v) is not None else v.hex())
        for k, v in fields.items()
        if k != name
    }
    return _encoder.encode(
        {
            "type": "HAN_TELEGRAM",
            "id": entry_id,
            "encoding": "text" if text is not None else "hex",
            "telegram": text if text is not None else raw.hex(),
            "fields": others,
        }
    )
