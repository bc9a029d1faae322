"""The P1 fast path: layouts learnt per parser, compiled on a shape's second sighting, several
kept, and giving exactly the reading the line-by-line path gives, for every flavour (Nordic,
DSMR 5 NL with M-Bus gas and a power-failure log, Fluvius BE with its timestamped peak, and the
Luxembourg Smarty telegram inside its encrypted frame). `hanport decode` parses a frame once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.cli import decode as decode_cli
from services.ingest.codec.decoded import Decoded
from services.ingest.codec.dlms.ciphering import SMARTY_AUTH_KEY, Keys, decrypt, parse
from services.ingest.codec.dlms.decoder import DlmsDecoder
from services.ingest.codec.p1.decoder import P1Decoder
from services.ingest.codec.p1.parser import MAX_LAYOUTS, P1Parser, crc16
from shared.reading import Reading

FIXTURES = Path(__file__).parent.parent / "fixtures"
SMARTY_KEYS = Keys(bytes.fromhex("D491470F47126332B07D1923B3504188"), SMARTY_AUTH_KEY)
SMARTY_APDU = (FIXTURES / "encrypted" / "smarty_lu_gcm.bin").read_bytes()


def load(name: str) -> bytes:
    return (FIXTURES / "p1" / name).read_bytes()


def smarty() -> bytes:
    """The Luxembourg telegram inside the encrypted capture."""
    return decrypt(parse(SMARTY_APDU), SMARTY_KEYS)


# (telegram, meter zone) of each flavour, all real captures
FLAVOURS = {
    "nordic": (load("lgf5e360_se.txt"), "Europe/Stockholm"),
    "dsmr5_nl": (load("isk5_nl_two_mbus.txt"), "Europe/Amsterdam"),
    "fluvius_be": (load("flu5_be_v171.txt"), "Europe/Brussels"),
    "luxembourg": (smarty(), "Europe/Luxembourg"),
}


def with_crc(frame: bytes) -> bytes:
    """`frame` (`/` through `!`) with its CRC."""
    return frame + f"{crc16(frame):04X}\r\n".encode()


def body(telegram: bytes) -> bytes:
    """The telegram from `/` through `!` (a decrypted one without `!` gets one)."""
    end = telegram.rfind(b"!")
    return telegram[: end + 1] if end >= 0 else telegram.rstrip(b"\r\n") + b"\r\n!"


def without_line(telegram: bytes, code: bytes) -> bytes:
    """The telegram with the line of `code` left out: another layout of the same meter."""
    lines = body(telegram).split(b"\n")
    return with_crc(b"\n".join(line for line in lines if not line.startswith(code)))


def test_a_layout_seen_once_is_not_compiled_seen_twice_is() -> None:
    telegram, zone = FLAVOURS["nordic"]
    parser = P1Parser(tz=zone)
    first = parser.parse_telegram(telegram, 1)
    assert (parser.compiled, parser.generic, parser.fast, parser.layouts) == (0, 1, 0, {})
    assert parser.parse_telegram(telegram, 1) == first
    assert (parser.compiled, parser.generic, parser.fast) == (1, 2, 0)
    assert [len(known) for known in parser.layouts.values()] == [1]
    assert parser.parse_telegram(telegram, 1) == first
    assert (parser.compiled, parser.generic, parser.fast) == (1, 2, 1)


def test_one_off_layouts_compile_nothing() -> None:
    telegram, zone = FLAVOURS["dsmr5_nl"]
    lines = [line.split(b"(")[0] for line in body(telegram).split(b"\n")[3:-1]]
    parser = P1Parser(tz=zone)
    for code in lines:  # every telegram a layout of its own
        parser.parse_telegram(without_line(telegram, code), 1)
    assert (parser.compiled, parser.fast, parser.generic) == (0, 0, len(lines))


def test_layouts_belong_to_their_parser() -> None:
    telegram, zone = FLAVOURS["nordic"]
    learnt = P1Parser(tz=zone)
    for _ in range(3):
        learnt.parse_telegram(telegram, 1)
    fresh = P1Parser(tz=zone)
    fresh.parse_telegram(telegram, 1)
    assert learnt.fast == 1 and (fresh.fast, fresh.compiled) == (0, 0)


def test_two_alternating_layouts_both_stay_fast() -> None:
    telegram, zone = FLAVOURS["fluvius_be"]
    other = without_line(telegram, b"0-0:96.13.0")  # a text message line coming and going
    parser = P1Parser(tz=zone)
    for _ in range(2):
        parser.parse_telegram(telegram, 1)
        parser.parse_telegram(other, 1)
    assert parser.compiled == 2 and parser.generic == 4
    readings = [parser.parse_telegram(t, 1) for _ in range(10) for t in (telegram, other)]
    assert (parser.compiled, parser.generic, parser.fast) == (2, 4, 20)
    assert readings[0] == P1Parser(tz=zone).parse_telegram(telegram, 1)
    assert readings[1] == P1Parser(tz=zone).parse_telegram(other, 1)


def test_layouts_kept_are_bounded() -> None:
    telegram, zone = FLAVOURS["dsmr5_nl"]
    codes = [line.split(b"(")[0] for line in body(telegram).split(b"\n")[3:-1]]
    shapes = [without_line(telegram, code) for code in codes[: MAX_LAYOUTS + 3]]
    parser = P1Parser(tz=zone)
    for shape in shapes:
        parser.parse_telegram(shape, 1)
        parser.parse_telegram(shape, 1)
    assert parser.compiled == len(shapes)
    assert sum(len(known) for known in parser.layouts.values()) == MAX_LAYOUTS
    parser.parse_telegram(shapes[-1], 1)  # the newest are kept
    assert parser.fast == 1


# A value in a telegram: numbers (with decimals and unit, or a unit), and meter clocks.
_VALUE = re.compile(rb"\((\d+)(?:\.(\d+))?(\*[A-Za-z0-9]+)?\)|\((\d{12})([SW])\)")
_LOGS = (b"1-0:99.97.0", b"0-0:98.1.0", b"0-0:96.7.21", b"0-0:96.7.9", b"0-0:96.14.0")


@st.composite
def varied(draw: st.DrawFn, telegram: bytes) -> bytes:
    """`telegram` with every number and clock of its data lines drawn afresh, each in the digits
    the meter writes it with (so the layout is the same), CRC recomputed."""
    lines = []
    for line in body(telegram).split(b"\n"):
        if line.startswith(_LOGS):
            lines.append(line)
            continue

        def redraw(match: re.Match[bytes]) -> bytes:
            whole, decimals, unit, clock, flag = match.groups()
            if clock is not None:
                day = draw(st.dates()).strftime("%y%m%d").encode()
                hms = b"%02d%02d%02d" % tuple(draw(st.integers(0, top)) for top in (23, 59, 59))
                return b"(" + day + hms + flag + b")"
            if decimals is None and unit is None:
                return match.group(0)  # device types, counters: as sent
            digits = draw(st.text("0123456789", min_size=len(whole), max_size=len(whole)))
            point = b""
            if decimals is not None:
                tail = draw(st.text("0123456789", min_size=len(decimals), max_size=len(decimals)))
                point = b"." + tail.encode()
            return b"(" + digits.encode() + point + (unit or b"") + b")"

        lines.append(_VALUE.sub(redraw, line))
    return with_crc(b"\n".join(lines))


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_path_reads_what_the_generic_path_reads(flavour: str, data: st.DataObject) -> None:
    telegram, zone = FLAVOURS[flavour]
    parser = P1Parser(tz=zone)
    for _ in range(2):
        parser.parse_telegram(telegram, 1)
    assert parser.compiled == 1
    telegram = data.draw(varied(telegram))
    fast = parser.parse_telegram(telegram, 7)
    assert parser.fast == 1, "the varied telegram did not take the fast path"
    generic = P1Parser(tz=zone).parse_telegram(telegram, 7)
    assert fast == generic
    assert isinstance(fast, Reading)


def test_flavour_lines_on_the_fast_path() -> None:
    """The lines that once kept these flavours off the fast path are read by it."""
    parsers = {name: P1Parser(tz=zone) for name, (_, zone) in FLAVOURS.items()}
    readings = {}
    for name, (telegram, _) in FLAVOURS.items():
        for _ in range(3):
            readings[name] = parsers[name].parse_telegram(telegram, 1)
        assert parsers[name].fast == 1, name
    nl = readings["dsmr5_nl"]
    assert [(s.channel, s.device_type, s.value, s.unit) for s in nl.submeters] == [
        (1, 3, 0.0, None),
        (2, 3, 246.138, "m3"),
    ]
    assert nl.submeters[1].ts == 1587933001000  # 200426223001S: 20:30:01 UTC
    assert nl.extras["1-0:99.97.0"] == ["1", "0-0:96.7.19", "190326095015W", "0000002014*s"]
    be = readings["fluvius_be"]
    assert be.extras["1-0:1.6.0"] == ["231102114500W", "03.064*kW"]
    assert be.submeters[0].value == 92.287 and be.submeters[1].device_type == 7
    lu = readings["luxembourg"]
    assert (lu.ic, lu.rec, lu.power_failures) == (6.695, 2.745, 69)
    assert lu.extras["1-0:0.2.8"] == "42"


def test_luxembourg_frames_take_the_fast_path_inside_the_dlms_decoder() -> None:
    decoder = DlmsDecoder("apdu", keys=SMARTY_KEYS, tz="Europe/Luxembourg")
    out = decoder.feed(SMARTY_APDU * 3, 1)
    assert [type(o) for o in out] == [Decoded] * 3
    first, _, third = (o for o in out if isinstance(o, Decoded))
    assert first == third and first.reading.protocol == "smarty"
    assert decoder.p1.fast == 1 and decoder.p1.compiled == 1


def test_the_service_decoder_keeps_its_layouts_across_chunks() -> None:
    telegram, zone = FLAVOURS["nordic"]
    decoder = P1Decoder(tz=zone)
    for _ in range(5):
        assert isinstance(decoder.feed(telegram, 1)[0], Decoded)
    assert (decoder.parser.generic, decoder.parser.fast) == (2, 3)


def test_hanport_decode_parses_each_frame_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    telegram, zone = FLAVOURS["dsmr5_nl"]
    capture = tmp_path / "capture.txt"
    capture.write_bytes(telegram * 7)
    parsed: list[int] = []
    original = P1Parser.parse_frame

    def counted(self: P1Parser, *args: object, **kwargs: object) -> Reading:
        parsed.append(1)
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(P1Parser, "parse_frame", counted)
    assert decode_cli.main([str(capture), "--timezone", zone]) == 0  # protocol found by itself
    assert len(capsys.readouterr().out.splitlines()) == 7
    assert len(parsed) == 7
