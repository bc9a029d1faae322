"""Hypothesis: random bytes, truncations, bit flips and arbitrary chunking never raise anything
but declared errors, and never yield a reading from a frame whose FCS fails."""

from __future__ import annotations

from fastcrc import crc16
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.codec.decoded import Decoded, DecodeError
from services.ingest.codec.dlms.ciphering import Keys
from services.ingest.codec.dlms.decoder import DlmsDecoder

from .conftest import HDLC_FILES, KEYS, frame

FRAMES = [frame(f"hdlc/{name}") for name in HDLC_FILES]
LG = "encrypted/lg_e450_at_hdlc_gcm.hex"
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fcs_ok(raw: bytes) -> bool:
    return crc16.ibm_sdlc(raw[1:-3]) == int.from_bytes(raw[-3:-1], "little")


def run(decoder: DlmsDecoder, chunks: list[bytes]) -> list[Decoded | DecodeError]:
    out: list[Decoded | DecodeError] = []
    for chunk in chunks:
        out += decoder.feed(chunk, 1)
    out += decoder.flush(1)
    for item in out:
        assert isinstance(item, Decoded | DecodeError)
        assert "decoder failed" not in str(item), item  # the safety net caught a bug
        if isinstance(item, Decoded) and decoder.framing == "hdlc":
            assert fcs_ok(item.raw)
    return out


@FAST
@given(st.binary(max_size=3000), st.sampled_from(["hdlc", "mbus", "apdu"]))
def test_random_bytes(data: bytes, framing: str) -> None:
    decoder = DlmsDecoder(framing, keys=Keys(bytes(16), bytes(16)))  # type: ignore[arg-type]
    out = run(decoder, [data])
    assert not any(isinstance(o, Decoded) for o in out)


@FAST
@given(st.sampled_from(FRAMES), st.data())
def test_truncations(raw: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 2))
    out = run(DlmsDecoder("hdlc"), [raw[:cut]])
    assert not any(isinstance(o, Decoded) for o in out)


@FAST
@given(st.sampled_from(FRAMES + [frame(LG)]), st.data())
def test_bit_flips_never_yield_a_reading(raw: bytes, data: st.DataObject) -> None:
    flips = data.draw(
        st.lists(st.integers(min_value=8, max_value=(len(raw) - 1) * 8 - 1), min_size=1, max_size=3)
    )
    damaged = bytearray(raw)
    for bit in flips:
        damaged[bit // 8] ^= 1 << (bit % 8)
    if bytes(damaged) == raw:
        return
    out = run(DlmsDecoder("hdlc", keys=KEYS[LG]), [bytes(damaged)])
    assert not any(isinstance(o, Decoded) for o in out)


@FAST
@given(st.lists(st.sampled_from(FRAMES), min_size=1, max_size=4), st.data())
def test_any_chunking_and_garbage_between_gives_every_frame(
    frames: list[bytes], data: st.DataObject
) -> None:
    # no flag inside, and not starting like a frame header right after a closing flag
    garbage = st.binary(max_size=64).filter(
        lambda b: b"\x7e" not in b and not (b and b[0] & 0xF0 == 0xA0)
    )
    stream = b"".join(data.draw(garbage) + f for f in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    out = run(DlmsDecoder("hdlc"), chunks)
    got = [o.raw for o in out if isinstance(o, Decoded)]
    assert got == frames
    assert [o for o in out if isinstance(o, DecodeError)] == []


@FAST
@given(st.binary(min_size=1, max_size=200), st.sampled_from(FRAMES))
def test_garbage_with_flags_before_a_frame_never_loses_it(junk: bytes, raw: bytes) -> None:
    out = run(DlmsDecoder("hdlc"), [junk + raw])
    assert [o.raw for o in out if isinstance(o, Decoded)][-1:] == [raw]


@FAST
@given(st.sampled_from(FRAMES), st.data())
def test_replayed_shape_gives_the_same_reading_as_a_fresh_decode(
    raw: bytes, data: st.DataObject
) -> None:
    """Frames of a shape already seen are read from their leaf offsets; changing the values
    (numbers, clocks) must give exactly what a decoder seeing the frame first gives."""
    from services.ingest.codec.dlms.cosem import parse_notification
    from services.ingest.codec.dlms.plan import Plan

    from .frames import hdlc

    apdu = raw[raw.index(b"\xe6\xe7\x00") + 3 : -3]
    plan = Plan(apdu, parse_notification(apdu))
    assert plan.replayable
    changed = bytearray(apdu)
    for offset, size, _ in plan.leaves:
        if data.draw(st.booleans()):
            changed[offset : offset + size] = data.draw(st.binary(min_size=size, max_size=size))
    head = raw[: raw.index(b"\xe6\xe7\x00")]
    frame_ = hdlc(b"\xe6\xe7\x00" + bytes(changed), dest=head[3:4], src=head[4:-3])
    warm = DlmsDecoder("hdlc", tz="Europe/Oslo")
    warm.feed(raw, 1)
    replayed = warm.feed(frame_, 2)
    fresh = DlmsDecoder("hdlc", tz="Europe/Oslo").feed(frame_, 2)
    assert len(replayed) == len(fresh) == 1
    if isinstance(fresh[0], Decoded):
        assert isinstance(replayed[0], Decoded)
        assert replayed[0].reading == fresh[0].reading
    else:
        assert isinstance(replayed[0], DecodeError) and replayed[0].reason == fresh[0].reason


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(
        [b"\x0f", b"\x0f\x40\x00\x00\x00\x00", b"\xe0\x80\x00\x01\x00\x00", b"\xdb\x08"]
    ),
    st.binary(max_size=300),
    st.sampled_from(FRAMES),
    st.data(),
)
def test_valid_frames_around_garbage_apdus(
    prefix: bytes, tail: bytes, real: bytes, data: st.DataObject
) -> None:
    """Frames whose checksums are right but whose APDU is anything (or a real one cut or
    spliced) only ever give readings or declared errors, and the next real frame still decodes."""
    from .frames import hdlc

    apdu = real[12:-3]
    cut = data.draw(st.integers(0, len(apdu)))
    mutated = bytearray(apdu)
    for position in data.draw(st.lists(st.integers(0, len(apdu) - 1), max_size=4)):
        mutated[position] = data.draw(st.integers(0, 255))
    payload = data.draw(
        st.sampled_from([prefix + tail, apdu[:cut] + tail, apdu[:cut], bytes(mutated)])
    )
    decoder = DlmsDecoder("hdlc", keys=Keys(bytes(16)))
    out = run(decoder, [hdlc(b"\xe6\xe7\x00" + payload), real])
    assert isinstance(out[-1], Decoded) and out[-1].raw == real
