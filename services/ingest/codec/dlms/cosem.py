"""DLMS/COSEM application layer: APDU bytes in, a data notification (or a reassembled APDU) out.

- `parse_notification`: the data-notification APDU (tag 0x0F): long-invoke-id-and-priority, an
  optional date-time (sent tagged `09 0C`, untagged `0C`, or as A-XDR OPTIONAL `01 0C`), and the
  notification body (A-XDR data).
- `BlockTransfer`: DLMS general block transfer (tag 0xE0) blocks joined in order.
- `to_epoch_ms`: a COSEM date-time (12 bytes) to ms since the epoch and ISO 8601 text, using its
  deviation, or the meter's time zone when the deviation is unspecified.
Malformed input raises `CosemError` (or `axdr.AxdrError`).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from . import axdr

DATA_NOTIFICATION = 0x0F
GENERAL_BLOCK_TRANSFER = 0xE0
GENERAL_GLO_CIPHERING = 0xDB
MAX_MESSAGE = 65536


class CosemError(ValueError):
    """An APDU that does not follow DLMS/COSEM."""


class Notification(NamedTuple):
    invoke_id: int
    datetime: bytes | None  # 12-byte COSEM date-time, when sent
    body: Any
    datetime_at: int | None = None  # where the date-time's 12 bytes are in the APDU
    body_at: int = 0  # where the body's A-XDR data starts in the APDU


def parse_notification(apdu: bytes) -> Notification:
    if len(apdu) < 6 or apdu[0] != DATA_NOTIFICATION:
        raise CosemError("not a data-notification APDU (tag 0x0F)")
    invoke_id = int.from_bytes(apdu[1:5], "big")
    pos = 5
    marker = apdu[pos]
    stamp: bytes | None = None
    stamp_at: int | None = None
    if marker == 0x00:  # absent
        pos += 1
    elif marker in (0x09, 0x0C):  # tagged octet string `09 0C`, or bare length `0C`
        if marker == 0x09:
            pos += 1
        if apdu[pos : pos + 1] != b"\x0c":
            raise CosemError(
                f"date-time of length {apdu[pos : pos + 1].hex() or 'none'} in data "
                "notification, expected 0c (12)"
            )
        stamp_at = pos + 1
        stamp = apdu[stamp_at : stamp_at + 12]
        if len(stamp) != 12:
            raise CosemError("data notification ends inside its date-time")
        pos += 13
    body, _end = axdr.decode(apdu, pos)
    return Notification(invoke_id, stamp, body, stamp_at, pos)


class BlockTransfer:
    """Joins general-block-transfer blocks; `push` answers the whole APDU after the last block."""

    def __init__(self) -> None:
        self._blocks: list[bytes] = []
        self._next = 1

    def push(self, apdu: bytes) -> bytes | None:
        if len(apdu) < 6 or apdu[0] != GENERAL_BLOCK_TRANSFER:
            raise CosemError("not a general-block-transfer APDU (tag 0xE0)")
        control = apdu[1]
        number = int.from_bytes(apdu[2:4], "big")
        size, pos = axdr.read_length(apdu, 6)
        block = apdu[pos : pos + size]
        if len(block) != size:
            raise CosemError(f"block {number} announces {size} bytes, has {len(block)}")
        if number == 1:
            self._blocks = []
        elif number != self._next or not self._blocks:
            self._blocks = []
            raise CosemError(f"block {number} arrived, expected block {self._next}")
        self._blocks.append(block)
        self._next = number + 1
        if sum(map(len, self._blocks)) > MAX_MESSAGE:
            self._blocks = []
            raise CosemError(f"block transfer larger than {MAX_MESSAGE} bytes")
        if not control & 0x80:
            return None
        whole = b"".join(self._blocks)
        self._blocks = []
        return whole


def to_epoch_ms(raw: bytes, zone: ZoneInfo | None) -> tuple[int | None, str | None]:
    """(ms since the epoch, ISO 8601 text) of a COSEM date-time; (None, None) when unusable.

    Deviation is minutes from local time to UTC (UTC = local + deviation); 0x8000 means
    unspecified, then `zone` (the meter's time zone) decides, using the DST bit for the
    ambiguous hour. Without either, the text has no offset and the ms is None."""
    if len(raw) != 12:
        return None, None
    year = (raw[0] << 8) | raw[1]
    month, day, hour = raw[2], raw[3], raw[5]
    minute = raw[6] if raw[6] != 0xFF else 0
    second = raw[7] if raw[7] != 0xFF else 0
    hundredths = raw[8] if raw[8] < 100 else 0
    deviation = int.from_bytes(raw[9:11], "big", signed=True)
    status = raw[11]
    if year == 0xFFFF or month > 12 or day > 31 or hour > 23 or minute > 59 or second > 59:
        return None, None
    try:
        local = datetime(year, month, day, hour, minute, second, hundredths * 10_000)
    except ValueError:
        return None, None
    if deviation != -0x8000 and -720 <= deviation <= 840:
        aware = local.replace(tzinfo=timezone(timedelta(minutes=-deviation)))
    elif zone is not None:
        fold = 1 if status != 0xFF and not status & 0x80 else 0  # the repeated autumn hour
        aware = local.replace(tzinfo=zone, fold=fold)
    else:
        return None, local.isoformat()
    return int(aware.timestamp() * 1000), aware.isoformat()
