"""COSEM date-times to epoch ms: deviation when sent, else the meter's zone and its DST bit."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.ingest.codec.decoded import Decoded
from services.ingest.codec.dlms.cosem import to_epoch_ms
from services.ingest.codec.dlms.decoder import DlmsDecoder
from services.ingest.codec.factory import DecoderOptions, make_decoder
from services.ingest.codec.identify import AutoDecoder

from .conftest import frame
from .frames import mbus_segments

OSLO = ZoneInfo("Europe/Oslo")


def stamp(
    year: int, month: int, day: int, hour: int, minute: int, deviation: int, status: int
) -> bytes:
    return (
        year.to_bytes(2, "big")
        + bytes([month, day, 0xFF, hour, minute, 0, 0xFF])
        + deviation.to_bytes(2, "big", signed=True)
        + bytes([status])
    )


def utc_ms(year: int, month: int, day: int, hour: int, minute: int) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("status", "utc_hour"),
    [(0x80, 0), (0x00, 1)],  # 02:30 on 2023-10-29 in Oslo happens twice: DST bit decides
)
def test_repeated_autumn_hour_uses_the_dst_bit(status: int, utc_hour: int) -> None:
    ms, text = to_epoch_ms(stamp(2023, 10, 29, 2, 30, -0x8000, status), OSLO)
    assert ms == utc_ms(2023, 10, 29, utc_hour, 30)
    assert text is not None and text.startswith("2023-10-29T02:30:00")


def test_deviation_wins_over_the_zone() -> None:
    ms, text = to_epoch_ms(stamp(2021, 7, 19, 15, 46, -120, 0x80), OSLO)
    assert ms == utc_ms(2021, 7, 19, 13, 46)
    assert text == "2021-07-19T15:46:00+02:00"


@pytest.mark.parametrize(
    "raw",
    [b"\xff" * 12, stamp(2023, 13, 1, 0, 0, 0, 0), stamp(2023, 2, 30, 0, 0, 0, 0), b"\x07"],
)
def test_unusable_dates_give_none(raw: bytes) -> None:
    assert to_epoch_ms(raw, OSLO) == (None, None)


def test_no_zone_and_no_deviation_gives_no_ts() -> None:
    assert to_epoch_ms(stamp(2023, 1, 2, 3, 4, -0x8000, 0), None) == (None, "2023-01-02T03:04:00")


def test_mbus_plain_notification_via_auto_detection() -> None:
    apdu = frame("hdlc/aidon_no_list2_doc.hex")[12:-3]
    decoder = make_decoder(DecoderOptions(protocol="auto"))
    assert isinstance(decoder, AutoDecoder)
    out = decoder.feed(mbus_segments(apdu, 100), 1)
    assert [o.reading.pi[0] for o in out if isinstance(o, Decoded)] == [1362.0]
    assert decoder.protocol == "mbus" and isinstance(decoder.decoder, DlmsDecoder)
