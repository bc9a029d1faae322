"""A-XDR decoding of every type meters use, long lengths, and declared errors."""

from __future__ import annotations

import struct

import pytest

from services.ingest.codec.dlms import axdr


@pytest.mark.parametrize(
    ("hexdata", "value"),
    [
        ("0f85", -123),
        ("1185", 0x85),
        ("10ff38", -200),
        ("12ff38", 0xFF38),
        ("05fffffffe", -2),
        ("06fffffffe", 0xFFFFFFFE),
        ("14fffffffffffffffe", -2),
        ("15fffffffffffffffe", 2**64 - 2),
        ("161b", 27),
        ("0301", True),
        ("17" + struct.pack(">f", 1.5).hex(), 1.5),
        ("18" + struct.pack(">d", -2.25).hex(), -2.25),
        ("0a03414243", "ABC"),
        ("0c02c3a5", "å"),
        ("0903010203", b"\x01\x02\x03"),
        ("040a" + "ffc0", b"\xff\xc0"),
        ("00", None),
        ("19" + "07e7031c02130b14ff800000", bytes.fromhex("07e7031c02130b14ff800000")),
        ("0202" + "120001" + "0203" + "0f01" + "1102" + "1603", [1, [1, 2, 3]]),
        ("0102" + "1100" + "1101", [0, 1]),
    ],
)
def test_types(hexdata: str, value: object) -> None:
    data = bytes.fromhex(hexdata)
    decoded, end = axdr.decode(data)
    assert decoded == value and end == len(data)


def test_long_length_forms() -> None:
    text = b"x" * 300
    for prefix in (b"\x0a\x82\x01\x2c", b"\x0a\x84\x00\x00\x01\x2c"):
        assert axdr.decode(prefix + text) == ("x" * 300, len(prefix) + 300)


@pytest.mark.parametrize(
    "hexdata",
    ["", "06000001", "0a05414243", "0205", "13", "ff", "0a80", "0a850000000001", "0201"],
)
def test_malformed_raises_axdr_error(hexdata: str) -> None:
    with pytest.raises(axdr.AxdrError):
        axdr.decode(bytes.fromhex(hexdata))


def test_nesting_is_bounded() -> None:
    with pytest.raises(axdr.AxdrError, match="nesting"):
        axdr.decode(b"\x02\x01" * 40 + b"\x00")
