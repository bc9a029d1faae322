"""List layouts on hand-built notification bodies: base units when no scaler/unit is sent,
Kaifa's OBIS-tagged variant, Kamstrup CT meters, unknown positional lists."""

from __future__ import annotations

import pytest

from services.ingest.codec.decoded import Decoded, DecodeError
from services.ingest.codec.dlms.decoder import DlmsDecoder
from services.ingest.codec.dlms.list_layouts import LayoutError, list_items

from .frames import hdlc


def obis(a: int, b: int, c: int, d: int, e: int) -> bytes:
    return bytes([a, b, c, d, e, 255])


def reading_of(body: bytes) -> Decoded | DecodeError:
    apdu = b"\x0f\x00\x00\x00\x01\x00" + body
    (out,) = DlmsDecoder("hdlc").feed(hdlc(b"\xe6\xe7\x00" + apdu), 1)
    return out


def enc_obis(code: bytes) -> bytes:
    return b"\x09\x06" + code


def test_values_without_scaler_are_in_base_units() -> None:
    body = (
        b"\x01\x02"
        + b"\x02\x02"
        + enc_obis(obis(1, 0, 1, 7, 0))
        + b"\x06\x00\x00\x04\xd2"  # 1234 W, not kW
        + b"\x02\x02"
        + enc_obis(obis(1, 0, 1, 8, 0))
        + b"\x06\x00\x01\xe2\x40"  # 123456 Wh
    )
    out = reading_of(body)
    assert isinstance(out, Decoded)
    assert out.reading.pi[0] == 1234.0 and out.reading.ic == 123.456


def test_kaifa_obis_variant_pairs() -> None:
    body = (
        b"\x02\x08"
        + enc_obis(obis(0, 0, 96, 1, 7))
        + b"\x0a\x08MA304H3E"
        + enc_obis(obis(1, 0, 31, 7, 0))
        + b"\x06\x00\x00\x2f\x18"  # 12056 mA
        + enc_obis(obis(1, 0, 32, 7, 0))
        + b"\x12\x09\x58"  # 2392 x 0.1 V
        + enc_obis(obis(1, 0, 1, 7, 0))
        + b"\x06\x00\x00\x10\x01"
    )
    out = reading_of(body)
    assert isinstance(out, Decoded)
    r = out.reading
    assert (r.i[0], r.u[0], r.pi[0], r.meter_model) == (12.056, 239.2, 4097.0, "MA304H3E")


@pytest.mark.parametrize(("meter_type", "current"), [(b"6841131BN", 1.89), (b"6851131BN", 0.189)])
def test_kamstrup_ct_meters_send_ma(meter_type: bytes, current: float) -> None:
    body = (
        b"\x02\x05\x0a\x0eKamstrup_V0001"
        + enc_obis(obis(1, 1, 96, 1, 1))
        + b"\x0a"
        + bytes([len(meter_type)])
        + meter_type
        + enc_obis(obis(1, 1, 31, 7, 0))
        + b"\x06\x00\x00\x00\xbd"
    )
    out = reading_of(body)
    assert isinstance(out, Decoded) and out.reading.i[0] == current


def test_unknown_positional_list_is_a_parse_error_naming_it() -> None:
    out = reading_of(b"\x02\x03\x0a\x03XYZ\x11\x01\x11\x02")
    assert isinstance(out, DecodeError) and out.reason == "parse_error"
    assert "positional list XYZ of 3 items" in str(out)
    with pytest.raises(LayoutError):
        list_items([])


def test_kaifa_list_1_power_only() -> None:
    out = reading_of(b"\x02\x01\x06\x00\x00\x10\x01")
    assert isinstance(out, Decoded) and out.reading.pi[0] == 4097.0
