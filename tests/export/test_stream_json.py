"""The readings stream's JSON scanned in C (services/export/sinks/_stream_json.c), pure:
`canonical` says yes only to JSON that decodes as `Exported` (so a batch may be decoded when a
sink first asks for its readings); `lines` makes of it exactly what `body` makes of the decoded
readings, or nothing (the general way then); `Entries` of canonical JSON stay undecoded through
slices, narrowing and extending. The C module is built here (CI has a compiler)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.export.sinks import entries as entries_module
from services.export.sinks import lineprotocol
from services.export.sinks.entries import CANONICAL_FIELDS, Entries, decode_exported
from services.export.sinks.lineprotocol import body, series_prefix, stream_body
from shared.reading import Reading, SubMeter, encode_reading

from .support import BOX, reading
from .test_entries import runs_of_one_shape

scan = pytest.importorskip("services.export.sinks._stream_json")
PLAN = lineprotocol._JSON_PLAN


def canonical(payloads: list[bytes]) -> bool:
    return scan.canonical(payloads, CANONICAL_FIELDS)


def c_lines(payloads: list[bytes], meter: str = "main") -> bytes | None:
    head = series_prefix(BOX, meter).encode()
    return scan.lines(payloads, head, PLAN, b"ts", b"meter", msgspec.json.encode(meter))


def decodes(payloads: list[bytes]) -> bool:
    try:
        decode_exported(payloads)
    except (msgspec.DecodeError, ValueError):
        return False
    return True


def read(payloads: list[bytes]) -> Entries:
    """The payloads as a worker whose sink reads the JSON reads them."""
    return Entries.decode([(f"{n + 1}-0", p) for n, p in enumerate(payloads)], [], lazy=True)


def test_the_export_uses_the_c_scan() -> None:
    assert entries_module.check_canonical is scan.canonical
    assert lineprotocol.json_lines is scan.lines
    assert lineprotocol.COMPILED


def test_a_batch_as_the_ingest_writes_it_is_made_of_its_json() -> None:
    readings = [reading(n) for n in range(1, 10)] + [reading(11)]  # (10: a gas meter behind)
    payloads = [encode_reading(r) for r in readings]
    entries = read(payloads)
    assert entries.canonical and entries._readings is None  # not decoded
    made = c_lines(payloads)
    assert made is not None and made == body(decode_exported(payloads), BOX)
    assert made.split(b"\n")[0] == (
        b"hanport,box=HPTEST0001,meter=main ic=1000.001,p=501.0,p_l1=200.0,p_l2=301.0,pi=501.0,"
        b"pi_l1=200.0,pi_l2=301.0,u_l1=230.5,u_l2=231.0,i_l1=1.25,i_l2=2.5 1764547201000"
    )
    assert stream_body(entries, BOX) == made
    assert entries._readings is None  # still not decoded: no sink asked for the readings
    assert [r.ts for r in entries.readings] == [r.ts for r in readings]  # decoded when asked


@given(runs_of_one_shape())
def test_lines_of_json_are_what_body_makes_of_the_readings(readings: list[Reading]) -> None:
    for r in readings:
        r.meter = "main"
    payloads = [encode_reading(r) for r in readings]
    expected = body(decode_exported(payloads), BOX)
    is_canonical = canonical(payloads)
    assert is_canonical == (not any(r.submeters for r in readings))  # (sub-meters: decoded)
    if is_canonical:  # (`lines` is for canonical JSON only)
        made = c_lines(payloads)
        assert made is None or made == expected
    assert stream_body(read(payloads), BOX) == expected


def mutated(draw: st.DrawFn, payload: bytes) -> bytes:
    """The payload with a few bytes replaced, inserted or taken out."""
    data = bytearray(payload)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        what = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.sampled_from(list(b' ",:[]{}\\0123456789.eE-+nulltrufase\x00\x7f\xc3\xa9')))
        if what == "insert":
            data.insert(at, byte)
        elif at < len(data):
            if what == "replace":
                data[at] = byte
            else:
                del data[at]
    return bytes(data)


@st.composite
def damaged_batches(draw: st.DrawFn) -> list[bytes]:
    """A batch as the ingest writes it, one payload of it damaged."""
    payloads = [encode_reading(reading(n)) for n in range(1, draw(st.integers(2, 4)))]
    at = draw(st.integers(0, len(payloads) - 1))
    payloads[at] = mutated(draw, payloads[at])
    return payloads


@given(damaged_batches())
def test_canonical_json_always_decodes(payloads: list[bytes]) -> None:
    """Whatever the damage: canonical only where msgspec decodes it, and lines (when made)
    are those of the decoded readings."""
    if canonical(payloads):
        assert decodes(payloads)
        made = c_lines(payloads)
        assert made is None or made == body(decode_exported(payloads), BOX)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"ts": 1,"meter":"main"}',  # whitespace (valid JSON, decoded the general way)
        b'{"ts":1,"ts":2}',  # a field twice
        b'{"ts":1.5}',  # a time that is no integer
        b'{"ts":1e3}',
        b'{"ts":1234567890123456789}',  # too long for an int64
        b'{"received":1}',  # no time
        b'{"ts":1,"meter":5}',
        b'{"ts":1,"received":"x"}',
        b'{"ts":1,"submeters":[{"channel":1}]}',  # sub-meters: decoded the general way
        b'{"ts":1,"meter_model":"K\xc3\xb6k"}',  # not ASCII
        b'{"ts":1,"meter_model":"\\ud800"}',  # a lone surrogate
        b'{"ts":1,"x":"a\x01"}',  # a control character in a string
        b'{"ts":1,"x":01}',  # a leading zero
        b'{"ts":1,"x":[1,]}',
        b'{"ts":1,}',
        b'{"ts":1}x',  # something after it
        b'{"ts":1',
        b'["ts",1]',
        b"",
    ],
)
def test_json_another_program_may_write_is_not_canonical(payload: bytes) -> None:
    assert not canonical([encode_reading(reading(1)), payload])


def test_json_that_is_canonical_though_unusual() -> None:
    payloads = [
        b'{"ts":1}',
        b'{"x":{"a":[1,{"b":"\\"\\\\\\u00e9"}]},"ts":2,"extras":{},"ic":"text"}',  # ic: any JSON
        b'{"ts":3,"received":null,"meter":null,"submeters":[],"tariffs":{"1":1.5e-05}}',
    ]
    assert canonical(payloads)
    assert decodes(payloads)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b'{"ts":1,"meter":"heat pump","ic":1.0}', "another meter"),
        (b'{"ts":1,"ic":1.0}', "no meter"),
        (b'{"ts":1,"meter":"main","ic":"1.0"}', "a value that is no number"),
        (b'{"ts":1,"meter":"main","ic":true}', "a value that is no number"),
        (b'{"ts":1,"meter":"main","p":[1.0,2.0,3.0]}', "an array of another length"),
        (b'{"ts":1,"meter":"main","p":[1.0,2.0,3.0,[4.0]]}', "a value that is no number"),
        (b'{"ts":1,"meter":"main","ic":1E3}', "a capital E (written as a float the general way)"),
    ],
)
def test_what_lines_leaves_to_the_general_way(payload: bytes, why: str) -> None:
    payloads = [encode_reading(reading(1)), payload]
    assert canonical(payloads), why
    assert c_lines(payloads) is None, why
    if why != "a value that is no number":  # (that one the general way refuses: `NotANumber`)
        assert stream_body(read(payloads), BOX) == body(decode_exported(payloads), BOX)


def test_a_reading_without_values_makes_no_line() -> None:
    payloads = [b'{"ts":1,"meter":"main"}', encode_reading(reading(2)), b'{"ts":3,"meter":"main"}']
    made = c_lines(payloads)
    assert made is not None and made == body(decode_exported(payloads), BOX)
    assert made.count(b"\n") == 0 and made.endswith(b" 1764547202000")
    assert c_lines([b'{"ts":1,"meter":"main"}']) == b""


def test_undecoded_entries_stay_undecoded_through_slices_and_narrowing() -> None:
    payloads = [encode_reading(reading(n)) for n in range(1, 7)]
    entries = read(payloads[:3])
    entries.extend(read(payloads[3:]))
    half = entries[3:]
    kept = entries.only([True, False] * 3)
    for part in (entries, half, kept):
        assert part.canonical and part._readings is None
    assert half.ids == ["1-0", "2-0", "3-0"] and half.payloads == payloads[3:]
    assert kept.payloads == payloads[0::2]
    assert [r.ts for r in kept.readings] == [reading(n).ts for n in (1, 3, 5)]
    assert half[0] == ("1-0", payloads[3])  # what a dead letter keeps
    mixed = read(payloads[:2])
    mixed.extend(Entries.of([("9-0", reading(9))]))  # a batch of `Reading`s: decoded, no JSON
    assert not mixed.canonical and [r.ts for r in mixed.readings][-1] == reading(9).ts


def test_without_the_c_module_a_batch_is_decoded_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entries_module, "check_canonical", None)
    payloads = [encode_reading(reading(n)) for n in range(1, 5)]
    entries = read(payloads)
    assert not entries.canonical and entries._readings is not None
    assert stream_body(entries, BOX) == body(decode_exported(payloads), BOX)


def test_a_sink_that_does_not_read_json_gets_entries_decoded_at_once() -> None:
    payloads = [encode_reading(reading(n)) for n in range(1, 5)]
    entries = Entries.decode([(f"{n}-0", p) for n, p in enumerate(payloads)], [])
    assert not entries.canonical and entries._readings is not None


def test_sub_meters_are_decoded_at_once() -> None:
    with_gas = reading(1)
    with_gas.submeters = [SubMeter(channel=1, value=5.0, unit="m3")]
    entries = read([encode_reading(with_gas), encode_reading(reading(2))])
    assert not entries.canonical
    assert b"hanport_submeter" in stream_body(entries, BOX)
