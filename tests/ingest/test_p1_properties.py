"""Property-based tests of the P1 decoder: random bytes, truncations and bit flips of real
telegrams never raise anything but the declared `DecodeError`, and never yield a reading whose
CRC did not check."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.codec.decoded import Decoded, DecodeError
from services.ingest.codec.p1.decoder import P1Decoder
from services.ingest.codec.p1.parser import parse_telegram
from shared.reading import Reading

P1_DIR = Path(__file__).parent.parent / "fixtures" / "p1"
GOOD = [
    (P1_DIR / name).read_bytes()
    for name in (
        "lgf5e360_se.txt",
        "kam5_se_summertime.txt",
        "ell5_lowercase_units.txt",
        "nes5_dk_odd_timestamp.txt",
    )
]
ORIGINAL = [parse_telegram(t, received_ms=0) for t in GOOD]
FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def decode_all(data: bytes, chunk: int, check_crc: bool = True) -> list[Decoded | DecodeError]:
    decoder = P1Decoder(check_crc=check_crc)
    out: list[Decoded | DecodeError] = []
    for start in range(0, len(data), chunk):
        out += decoder.feed(data[start : start + chunk], 0)
    return out + decoder.flush(0)


def readings(out: list[Decoded | DecodeError]) -> list[Reading]:
    return [item.reading for item in out if isinstance(item, Decoded)]


@FAST
@given(st.binary(max_size=3000), st.integers(1, 512))
def test_random_bytes_only_declared_errors(data: bytes, chunk: int) -> None:
    out = decode_all(data, chunk)  # raises nothing
    assert all(isinstance(item, Decoded | DecodeError) for item in out)
    with contextlib.suppress(DecodeError):
        parse_telegram(data, received_ms=0)


@FAST
@given(
    st.lists(
        st.sampled_from([b"/", b"!", b"\r\n", b"(", b")", b"*kW", b"1-0:1.8.0", b"0-1:24.2.1"])
        | st.binary(max_size=20),
        max_size=60,
    ),
    st.booleans(),
)
def test_telegram_like_noise_only_declared_errors(parts: list[bytes], check_crc: bool) -> None:
    data = b"".join(parts)
    decode_all(data, 7, check_crc=check_crc)
    with contextlib.suppress(DecodeError):
        parse_telegram(data, received_ms=0, check_crc=check_crc)


@FAST
@given(st.integers(0, len(GOOD) - 1), st.data())
def test_truncated_telegrams_never_yield_a_wrong_reading(which: int, data: st.DataObject) -> None:
    telegram = GOOD[which]
    cut = data.draw(st.integers(0, len(telegram) - 1))
    out = decode_all(GOOD[0] + telegram[:cut] + GOOD[0], 64)
    got = readings(out)
    assert got[0] == ORIGINAL[0] and got[-1] == ORIGINAL[0]
    complete = cut >= telegram.index(b"!") + 5  # only the line end after the CRC was cut
    assert got[1:-1] == ([ORIGINAL[which]] if complete else [])


@FAST
@given(st.integers(0, len(GOOD) - 1), st.data())
def test_bit_flips_never_yield_a_reading_with_a_bad_crc(which: int, data: st.DataObject) -> None:
    telegram = bytearray(GOOD[which])
    flips = data.draw(st.lists(st.integers(0, len(telegram) * 8 - 1), min_size=1, max_size=3))
    for bit in flips:
        telegram[bit // 8] ^= 1 << (bit % 8)
    out = decode_all(GOOD[0] + bytes(telegram) + GOOD[0], data.draw(st.integers(1, 300)))
    got = readings(out)
    # The good neighbours always come through; the damaged one only if the flips missed every
    # byte the CRC covers (e.g. hit the line end after it), and then it is the original reading.
    assert got[0] == ORIGINAL[0] and got[-1] == ORIGINAL[0]
    for reading in got[1:-1]:
        assert reading.crc == "ok" and reading == ORIGINAL[which]
