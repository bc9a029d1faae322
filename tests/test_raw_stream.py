"""shared/raw_stream.py: the raw stream's fields, written and read through a consumer group on a
real redis-server."""

from __future__ import annotations

from shared.raw_stream import (
    FIELDS,
    RESULT_OK,
    RawGroupReader,
    RawStream,
    RawTelegram,
    parse_raw,
    raw_fields,
)
from shared.stream import connect
from shared.stream_id import entry_id_text
from tests.servers import RedisServer

TELEGRAM = b"/LGF5E360\r\n\r\n0-0:1.0.0(251126120000W)\r\n!1A2B\r\n"


def test_fields_parse_back_and_missing_ones_read_as_not_decoded() -> None:
    fields = raw_fields(TELEGRAM, RESULT_OK, 1764158400000)
    assert tuple(fields) == FIELDS
    as_redis_returns = {
        k: v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()
    }
    assert parse_raw(as_redis_returns) == RawTelegram(TELEGRAM, "ok", 1764158400000)
    assert parse_raw(as_redis_returns).decoded
    assert parse_raw({}) == RawTelegram(b"", "", None)
    assert not parse_raw({b"raw": b"x", b"result": b"crc mismatch", b"received": b"?"}).decoded


async def test_group_reads_pending_then_new_and_acknowledges(redis_server: RedisServer) -> None:
    redis = await connect(redis_server.url)
    try:
        reader = RawGroupReader(RawStream(redis, "hanport:raw"), "g", "a")
        await reader.ensure_group("$")
        first = entry_id_text(await redis.xadd("hanport:raw", raw_fields(TELEGRAM, RESULT_OK, 1)))
        second = entry_id_text(
            await redis.xadd("hanport:raw", raw_fields(b"\x7e\xa0", "bad frame", 2))
        )
        got = await reader.new(10, block_ms=1000)
        assert [(i, t.raw, t.result, t.received) for i, t in got] == [
            (first, TELEGRAM, "ok", 1),
            (second, b"\x7e\xa0", "bad frame", 2),
        ]
        assert [i for i, _t in await reader.pending_mine()] == [first, second]
        await reader.ack(first)
        assert [i for i, _t in await reader.pending_mine()] == [second]
    finally:
        await redis.aclose()
