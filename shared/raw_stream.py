"""The raw stream (`HANPORT_RAW_STREAM`, default `hanport:raw`): each telegram as the meter sent
it, for support tools. The one definition of its fields, for the writer (ingest's publisher)
and every reader (the MQTT raw topic, REST's /meter/telegram).

One entry per telegram, with the same id as its reading in the readings stream (ingest writes
both), and the fields:

- `raw`: the telegram's bytes (P1 text, or DLMS/HDLC frame bytes);
- `result`: `ok` when it decoded, else the decode error's reason (then there is no reading);
- `received`: when the gateway received it, ms since the epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from .stream import ConsumerGroup
from .stream_id import entry_id_text

RAW_FIELD = b"raw"
RESULT_FIELD = b"result"
RECEIVED_FIELD = b"received"
FIELDS = (RAW_FIELD, RESULT_FIELD, RECEIVED_FIELD)  # in the order ingest writes them
RESULT_OK = "ok"


@dataclass(frozen=True)
class RawTelegram:
    raw: bytes
    result: str  # RESULT_OK, or why it did not decode
    received: int | None  # ms since the epoch; None when missing or not a number

    @property
    def decoded(self) -> bool:
        return self.result == RESULT_OK


RawEntry = tuple[str, RawTelegram]


def raw_fields(raw: bytes, result: str, received: int) -> dict[FieldT, EncodableT]:
    """The fields of one raw-stream entry, as XADD takes them."""
    return {RAW_FIELD: raw, RESULT_FIELD: result, RECEIVED_FIELD: received}


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def parse_raw(fields: Mapping[Any, Any] | list[Any] | None) -> RawTelegram:
    """A raw-stream entry's fields (a dict, or a raw reply's flat `[name, value, ...]` list);
    missing ones read as empty (such an entry is not `decoded`)."""
    if not fields:
        fields = {}
    elif not isinstance(fields, Mapping):
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    raw = fields.get(RAW_FIELD, b"")
    received = fields.get(RECEIVED_FIELD)
    try:
        when = None if received is None else int(_text(received))
    except ValueError:
        when = None
    return RawTelegram(
        raw if isinstance(raw, bytes) else str(raw).encode(),
        _text(fields.get(RESULT_FIELD, b"")),
        when,
    )


def parse_raw_entries(raw_entries: Any) -> list[RawEntry]:
    """(id, RawTelegram) of each entry of an XRANGE/XREAD(GROUP) reply."""
    return [(entry_id_text(i), parse_raw(f)) for i, f in raw_entries]


@dataclass
class RawStream:
    """The raw stream of one reader."""

    redis: Redis
    key: str


class RawGroupReader(ConsumerGroup[RawTelegram]):
    """A consumer group on the raw stream (every raw entry decodes: nothing is skipped)."""

    def decode(self, raw_entries: Any, bad: list[str]) -> list[RawEntry]:
        return parse_raw_entries(raw_entries)
