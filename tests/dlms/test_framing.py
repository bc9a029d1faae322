"""HDLC and M-Bus framing: segmentation, block transfer, resynchronisation, split input."""

from __future__ import annotations

import pytest

from services.ingest.codec.decoded import Decoded, DecodeError
from services.ingest.codec.dlms.decoder import DlmsDecoder
from services.ingest.codec.dlms.hdlc import HdlcFramer

from .conftest import KEYS, frame
from .frames import gbt, hdlc, hdlc_segments, mbus_segments

AIDON = frame("hdlc/aidon_se_27items_doc.hex")
KAIFA = frame("hdlc/kaifa_gh180.hex")
AIDON_APDU = AIDON[12:-3]  # after flag, format, addresses 41 0883, control, HCS, LLC


def readings(out: list[Decoded | DecodeError]) -> list[Decoded]:
    return [o for o in out if isinstance(o, Decoded)]


def errors(out: list[Decoded | DecodeError]) -> list[str]:
    return [o.reason for o in out if isinstance(o, DecodeError)]


def test_hdlc_helper_rebuilds_the_real_frame() -> None:
    assert hdlc(b"\xe6\xe7\x00" + AIDON_APDU) == AIDON


def test_byte_by_byte_feed_gives_the_same_reading() -> None:
    whole = DlmsDecoder("hdlc").feed(AIDON, 1)
    decoder = DlmsDecoder("hdlc")
    pieces: list[Decoded | DecodeError] = []
    for b in AIDON:
        pieces += decoder.feed(bytes([b]), 1)
    assert len(pieces) == 1 and pieces[0].reading == whole[0].reading  # type: ignore[union-attr]


def test_frames_sharing_one_flag() -> None:
    out = DlmsDecoder("hdlc").feed(AIDON + KAIFA[1:] + AIDON[1:], 1)
    assert [r.reading.pi[0] for r in readings(out)] == [1122.0, 4097.0, 1122.0]
    assert errors(out) == []


def test_resync_after_garbage_and_broken_frames() -> None:
    flipped = bytearray(KAIFA)
    flipped[40] ^= 0x01  # FCS fails
    cut = AIDON[: len(AIDON) // 2]  # a frame cut off mid-way, then the next one starts
    garbage = bytes(range(256)) + b"\x7e\xa0\x05\x7e\x7e\xa8"  # includes fake flags
    stream = garbage + AIDON + bytes(flipped) + cut + KAIFA + b"\x00" * 21 + AIDON
    out = DlmsDecoder("hdlc").feed(stream, 1)
    assert [r.reading.pi[0] for r in readings(out)] == [1122.0, 4097.0, 1122.0]
    assert "crc_error" in errors(out)


def test_fcs_failure_is_reported_with_its_offset() -> None:
    flipped = bytearray(KAIFA)
    flipped[-5] ^= 0x80
    out = DlmsDecoder("hdlc").feed(b"junk" + bytes(flipped), 1)
    assert readings(out) == []
    assert len(out) == 1 and isinstance(out[0], DecodeError)
    assert out[0].reason == "crc_error" and out[0].offset == 4 and "FCS" in str(out[0])


def test_truncated_at_end_of_input() -> None:
    decoder = DlmsDecoder("hdlc")
    assert decoder.feed(AIDON[:100], 1) == []
    assert errors(decoder.flush(1)) == ["truncated"]
    assert readings(decoder.feed(AIDON, 1))  # and it starts afresh


@pytest.mark.parametrize("size", [40, 128, 300])
def test_segmented_hdlc_frames_reassemble(size: int) -> None:
    stream = hdlc_segments(AIDON_APDU, size)
    assert stream[1] & 0x08  # the first frame has the S bit
    out = DlmsDecoder("hdlc").feed(stream, 1)
    assert errors(out) == []
    assert [r.reading.u for r in readings(out)] == [[230.7, 249.9, 230.8]]


def test_lost_last_segment_is_reported_and_next_message_decodes() -> None:
    first = hdlc_segments(AIDON_APDU, 100)
    lost = first[: first.rfind(b"\x7e\x7e") + 1]  # without the final segment
    out = DlmsDecoder("hdlc").feed(lost + first, 1)
    assert errors(out) == ["truncated"]
    assert len(readings(out)) == 1


def test_general_block_transfer_inside_hdlc() -> None:
    blocks = gbt(AIDON_APDU, 100)
    assert len(blocks) > 3
    stream = b"".join(hdlc(b"\xe6\xe7\x00" + block) for block in blocks)
    out = DlmsDecoder("hdlc").feed(stream, 1)
    assert errors(out) == []
    assert [r.reading.ic for r in readings(out)] == [10049.926]


def test_general_block_transfer_out_of_order_is_an_error() -> None:
    blocks = gbt(AIDON_APDU, 100)
    stream = b"".join(hdlc(b"\xe6\xe7\x00" + b) for b in [blocks[0], blocks[2]])
    out = DlmsDecoder("hdlc").feed(stream, 1)
    assert errors(out) == ["parse_error"] and "expected block 2" in str(out[0])


def test_mbus_multi_segment_encrypted_kaifa() -> None:
    name = "encrypted/kaifa_ma309_at_apdu_gcm.hex"
    stream = mbus_segments(frame(name), 0xF5)
    assert stream.count(b"\x16\x68") == 1  # two frames
    out = DlmsDecoder("mbus", keys=KEYS[name]).feed(b"\xe5" + stream, 1)
    assert errors(out) == []
    reading = readings(out)[0].reading
    assert len(readings(out)) == 1
    assert reading.u[0] == 230.8 and reading.ic == 9.108 and reading.protocol == "mbus"


def test_mbus_checksum_and_lost_segment() -> None:
    name = "encrypted/kaifa_ma309_at_apdu_gcm.hex"
    stream = mbus_segments(frame(name), 100)
    frames = stream.split(b"\x16\x68")
    # drop the middle segment, then send the whole message again
    broken = frames[0] + b"\x16\x68" + frames[2]
    bad_sum = bytearray(stream)
    bad_sum[10] ^= 0x01
    out = DlmsDecoder("mbus", keys=KEYS[name]).feed(broken + bytes(bad_sum) + stream, 1)
    assert len(readings(out)) == 1
    assert "truncated" in errors(out) and "crc_error" in errors(out)


def test_framer_addresses_of_four_bytes() -> None:
    raw = hdlc(b"\xe6\xe7\x00" + AIDON_APDU, dest=b"\x00\x02\x00\x23", src=b"\x21")
    (frame_,) = HdlcFramer().feed(raw)
    assert not isinstance(frame_, DecodeError)
    assert frame_.destination == b"\x00\x02\x00\x23" and frame_.source == b"\x21"


def test_raw_ciphering_resyncs_after_a_false_start() -> None:
    """A `DB 08` in line noise whose length swallows the start of the next real frame: the
    false candidate fails, the real frame is still found inside it."""
    name = "encrypted/smarty_lu_gcm.bin"
    real = frame(name)
    noise = b"\x00\xdb\x08" + bytes(8) + b"\x82\x01\x00" + b"\x30" + bytes(20)
    out = DlmsDecoder("apdu", keys=KEYS[name]).feed(noise + real + b"\x17" + real, 1)
    assert [r.reading.ic for r in readings(out)] == [6.695, 6.695]
    assert errors(out)  # the false start is reported, not silently dropped


def test_raw_ciphering_split_feed() -> None:
    name = "encrypted/kaifa_ma309_at_apdu_gcm.hex"
    real = frame(name)
    decoder = DlmsDecoder("apdu", keys=KEYS[name])
    out: list[Decoded | DecodeError] = []
    for i in range(0, len(real) * 2, 7):
        out += decoder.feed((real * 2)[i : i + 7], 1)
    assert [r.reading.ic for r in readings(out)] == [9.108, 9.108]
    assert errors(out) == []
