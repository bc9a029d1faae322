"""The P1 parser on every real capture in tests/fixtures/p1 (values from the corpus README and the
telegrams themselves), its timestamps, units, sub-meters, and the incremental decoder's framing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.ingest.codec.decoded import Decoded, DecodeError
from services.ingest.codec.p1.clock import parse_timestamp, timezone
from services.ingest.codec.p1.decoder import P1Decoder
from services.ingest.codec.p1.parser import P1Parser, crc16, parse_telegram
from shared.reading import Reading

P1_DIR = Path(__file__).parent.parent / "fixtures" / "p1"


def utc_ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 1000


def load(name: str) -> bytes:
    return (P1_DIR / name).read_bytes()


# file -> (meter timezone, expected values). Lists are compared whole.
EXPECTED: dict[str, tuple[str, dict[str, Any]]] = {
    "lgf5e360_se.txt": (
        "Europe/Stockholm",
        {
            "ts": utc_ms(2022, 12, 15, 14, 50, 50),  # 15:50:50 W (UTC+1)
            "meter_time": "221215155050W",
            "meter_model": "LGF5E360",
            "ic": 2721.126,
            "ec": 0.0,
            "ric": 1384.336,
            "rec": 0.09,
            "pi": [4190.0, 1980.0, 354.0, 1855.0],
            "pe": [0.0, 0.0, 0.0, 0.0],
            "p": [4190.0, 1980.0, 354.0, 1855.0],
            "r": [292.0, 1072.0, 265.0, -1044.0],
            "u": [230.7, 230.1, 231.0],
            "i": [9.7, 1.9, 9.2],
            "crc": "ok",
        },
    ),
    "kam5_se_summertime.txt": (
        "Europe/Stockholm",
        {
            "ts": utc_ms(2024, 4, 7, 10, 28, 54),  # 12:28:54 S (UTC+2)
            "ic": 9621.983,
            "pi": [1453.0, 1218.0, 213.0, 22.0],
            "u": [237.4, 241.4, 241.4],
            "i": [5.1, 1.4, 0.4],
            "rec": 2496.779,
            "r": [-321.0, -19.0, -217.0, -85.0],
            "crc": "ok",
        },
    ),
    "kam5_b.txt": (
        "Europe/Stockholm",
        {
            "ts": utc_ms(2025, 5, 25, 16, 42, 15),
            "ic": 28073.776,
            "ric": 1724.067,
            "rec": 1932.145,
            "pi": [976.0, 134.0, 209.0, 633.0],
            "r": [-119.0, -102.0, -10.0, -7.0],
            "u": [233.9, 234.4, 233.8],
            "i": [0.9, 1.2, 2.8],
            "crc": "ok",
        },
    ),
    "kam5_no_ct.txt": (
        "Europe/Stockholm",
        {
            "ic": 9222.471,
            "ec": 0.017,
            "pi": [14.0, 21.0, 0.0, 0.0],
            "pe": [0.0, 0.0, 0.0, 7.0],
            "p": [14.0, 21.0, 0.0, -7.0],
            "u": [244.2, 243.6, 244.2],
            "crc": "ok",
        },
    ),
    "ell5_lowercase_units.txt": (
        "Europe/Stockholm",
        {
            "ts": utc_ms(2020, 10, 20, 6, 52, 22),  # 08:52:22 W... in October Sweden is UTC+2
            "meter_model": "ELL5\\253833635_A",
            "ic": 1605.055,
            "ec": 0.131,
            "ric": 3.642,
            "rec": 185.707,
            "pi": [6000.0, 3172.0, 441.0, 2386.0],
            "r": [-270.0, -222.0, 200.0, -247.0],
            "u": [234.4, 233.3, 235.1],
            "i": [13.6, 2.0, 10.2],
            "crc": "ok",
        },
    ),
    "ell5_se.txt": (
        "Europe/Stockholm",
        {
            "ts": utc_ms(2024, 12, 12, 19, 13, 48),
            "ic": 47522.278,
            "rec": 12570.976,
            "pi": [1231.0, 376.0, 824.0, 30.0],
            "i": [1.8, 4.0, 0.1],
            "crc": "ok",
        },
    ),
    "lgf5e360_dk_export.txt": (
        "Europe/Copenhagen",
        {
            "ts": utc_ms(2023, 3, 27, 4, 42, 30),  # 06:42:30 local; DST began 26 March
            "ic": 2564.183,
            "ec": 67.342,
            "pi": [2.0, 0.0, 2.0, 8.0],
            "pe": [7.0, 14.0, 0.0, 0.0],
            "p": [-5.0, -14.0, 2.0, 8.0],
            "crc": "ok",
        },
    ),
    "lgf5e360_fi_se_a.txt": (
        "Europe/Helsinki",
        {
            "ts": utc_ms(2021, 2, 22, 14, 19, 0),
            "ic": 896.02,
            "ec": 48.792,
            "pe": [20.0, 12.0, 71.0, 0.0],
            "p": [-20.0, -12.0, -71.0, 63.0],
            "u": [230.1, 232.2, 230.4],
            "crc": "ok",
        },
    ),
    "nes5_dk_odd_timestamp.txt": (
        "Europe/Copenhagen",
        {
            "ts": utc_ms(2024, 1, 11, 8, 35, 0),
            "meter_time": "20240111 09:35:00",
            "ic": 36.273,
            "rec": 27.954,
            "pi": [193.0, 193.0, 0.0, 0.0],
            "crc": "ok",
        },
    ),
    "isk_si_nocrc.txt": (
        "Europe/Ljubljana",
        {
            "meter_id": "96815390",
            "meter_time": None,
            "ic": 317.695,
            "ec": 0.0,
            "tariffs": {"1.8.1": 162.246, "1.8.2": 155.449, "2.8.1": 0.0, "2.8.2": 0.0},
            "pi": [2356.0, 0.0, 2212.0, 143.0],
            "u": [234.6, 234.5, 233.5],
            "i": [0.0, 9.0, 0.0],
            "ric": None,
            "r": [None, None, None, None],
            "crc": "absent",
        },
    ),
    "sagemcom_at_decrypted.txt": (
        "Europe/Vienna",
        {
            "ts": utc_ms(2022, 3, 29, 19, 58, 55),
            "ic": 9699.947,  # Wh -> kWh
            "ec": 0.027,
            "ric": 4026.308,
            "rec": 2181.439,
            "pi": [274.0, None, None, None],  # W, single total: phases unknown, not 0
            "r": [-216.0, None, None, None],
            "u": [None, None, None],
            "tariffs": {
                "1.8.1": 6702.031,
                "1.8.2": 2997.916,
                "2.8.1": 0.0,
                "2.8.2": 0.027,
                "3.8.1": 2459.288,
                "3.8.2": 1567.02,
                "4.8.1": 1487.283,
                "4.8.2": 694.156,
            },
            "crc": "absent",
        },
    ),
    "isk5_nl_two_mbus.txt": (  # DSMR 5 NL: gas on M-Bus channel 2, power-failure log
        "Europe/Amsterdam",
        {
            "ts": utc_ms(2020, 4, 26, 20, 33, 25),  # 22:33:25 S (UTC+2)
            "ic": 2375.582,
            "ec": 0.0,
            "tariffs": {"1.8.1": 2130.115, "1.8.2": 245.467, "2.8.1": 0.0, "2.8.2": 0.0},
            "pi": [111.0, 56.0, 0.0, 55.0],
            "u": [229.9, 229.2, 222.9],
            "i": [0.0, 0.0, 1.0],
            "meter_id": "4530303434303037333832323436303139",
            "power_failures": 5,
            "long_power_failures": 3,
            "crc": "ok",
        },
    ),
    "flu5_be_v171.txt": (  # Fluvius BE: 1-0:1.6.0 peak with its time, gas and water M-Bus
        "Europe/Brussels",
        {
            "ts": utc_ms(2023, 11, 2, 11, 15, 48),  # 12:15:48 W (UTC+1)
            "ic": 571.562,
            "ec": 0.005,
            "pi": [338.0, 47.0, 179.0, 111.0],
            "u": [232.9, 228.1, 228.1],
            "i": [0.27, 0.88, 0.52],
            "meter_id": "3153414733313030373231333236",
            "tariff": "0001",
            "crc": "ok",
        },
    ),
    "kfm5_nl_dsmr42.txt": (  # DSMR 4.2 NL (Kaifa): no voltages, currents in whole A
        "Europe/Amsterdam",
        {
            "ts": utc_ms(2016, 11, 13, 19, 57, 57),  # 20:57:57 W (UTC+1)
            "ic": 3016.829,
            "pi": [2027.0, 170.0, 1247.0, 209.0],
            "u": [None, None, None],
            "i": [0.0, 6.0, 2.0],
            "power_failures": 15,
            "long_power_failures": 7,
            "crc": "ok",
        },
    ),
}
CRC_MISMATCH = {
    "elgama_gh1177.txt": ("Europe/Vilnius", {"ic": 12345.035, "pi": [278.0, None, None, None]}),
    "kfm5_crc_mismatch.txt": (
        "Europe/Stockholm",
        {"ic": 336.42, "meter_id": "3330303537373735", "u": [229.6, 229.1, 230.3]},
    ),
}


def check(reading: Reading, expected: dict[str, Any]) -> None:
    for field, value in expected.items():
        assert getattr(reading, field) == value, field


def test_every_p1_fixture_has_expectations() -> None:
    names = {path.name for path in P1_DIR.glob("*.txt")}
    assert names == set(EXPECTED) | set(CRC_MISMATCH)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_telegram_values(name: str) -> None:
    zone, expected = EXPECTED[name]
    reading = parse_telegram(load(name), received_ms=123, tz=zone)
    check(reading, expected)
    assert reading.received == 123
    assert reading.protocol == "p1"
    if reading.meter_time is None:
        assert reading.ts == 123  # no meter clock: the receive time
    # A meter's parser reads its second telegram line by line too, and compiles its layout;
    # the third goes through the layout and gives the very same reading.
    parser = P1Parser(tz=zone)
    readings = [parser.parse_telegram(load(name), 123) for _ in range(3)]
    assert readings == [reading] * 3
    if name not in ("sagemcom_at_decrypted.txt",):
        assert (parser.generic, parser.compiled, parser.fast) == (2, 1, 1), name


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - {"sagemcom_at_decrypted.txt"}))
def test_corpus_telegram_through_the_decoder(name: str) -> None:
    zone, expected = EXPECTED[name]
    decoder = P1Decoder(tz=zone)
    out = decoder.feed(b"\x00\x00garbage\r\n" + load(name), 5) + decoder.flush(5)
    assert len(out) == 1 and isinstance(out[0], Decoded), out
    check(out[0].reading, expected)
    assert out[0].raw.startswith(b"/") and b"!" in out[0].raw
    assert decoder.skipped == len(b"\x00\x00garbage\r\n")


def test_telegram_without_end_line_is_reported_truncated_by_the_decoder() -> None:
    # The Austrian plaintext has no '!' line: whole only when a decrypter says so.
    decoder = P1Decoder(tz="Europe/Vienna")
    out = decoder.feed(load("sagemcom_at_decrypted.txt"), 0) + decoder.flush(0)
    assert [type(o) for o in out] == [DecodeError]
    assert isinstance(out[0], DecodeError) and out[0].reason == "truncated"


@pytest.mark.parametrize("name", sorted(CRC_MISMATCH))
def test_crc_mismatch_rejected_and_parsed_when_checking_is_off(name: str) -> None:
    zone, expected = CRC_MISMATCH[name]
    data = load(name)
    with pytest.raises(DecodeError) as caught:
        parse_telegram(data, received_ms=0, tz=zone)
    assert caught.value.reason == "crc_error"
    assert "CRC mismatch" in str(caught.value)
    decoder = P1Decoder(tz=zone)
    out = decoder.feed(data, 0) + decoder.flush(0)
    assert len(out) == 1 and isinstance(out[0], DecodeError) and out[0].reason == "crc_error"
    assert out[0].offset == 0
    unchecked = parse_telegram(data, received_ms=0, tz=zone, check_crc=False)
    assert unchecked.crc == "unchecked"
    check(unchecked, expected)
    decoder = P1Decoder(tz=zone, check_crc=False)
    out = decoder.feed(data, 0) + decoder.flush(0)
    assert len(out) == 1 and isinstance(out[0], Decoded)
    assert out[0].reading.crc == "unchecked"


def test_kaifa_ids_and_extras() -> None:
    reading = parse_telegram(load("kfm5_crc_mismatch.txt"), received_ms=0, check_crc=False)
    assert reading.meter_id == "3330303537373735"  # 96.1.0 wins over 96.1.1
    assert reading.extras["0-0:96.1.1"] == "4D413330394D"
    assert reading.extras["0-0:96.13.0"] == ""
    assert reading.tariffs["1.8.1"] == 336.42
    assert reading.ric is None and reading.r[0] == -257.0  # no 3.8.0 sent: unknown


def test_crc16_arc() -> None:
    assert crc16(b"123456789") == 0xBB3D  # the CRC-16/ARC check value


HELSINKI = timezone("Europe/Helsinki")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("241027033000S", utc_ms(2024, 10, 27, 0, 30)),  # first 03:30 (summer time, UTC+3)
        ("241027033000W", utc_ms(2024, 10, 27, 1, 30)),  # second 03:30 (winter time, UTC+2)
        ("240115120000W", utc_ms(2024, 1, 15, 10, 0)),
        ("240715120000S", utc_ms(2024, 7, 15, 9, 0)),
        ("240715120000", utc_ms(2024, 7, 15, 9, 0)),
        ("20240111 09:35:00", utc_ms(2024, 1, 11, 7, 35)),
        ("20240111093500W", utc_ms(2024, 1, 11, 7, 35)),
        ("241327120000W", None),
        ("246627120000W", None),
        ("not a time", None),
    ],
)
def test_timestamps(text: str, expected: int | None) -> None:
    assert parse_timestamp(text, HELSINKI) == expected


def telegram(body: str, header: str = "/TST5 test meter") -> bytes:
    frame = (header + "\r\n\r\n" + body + "!").encode()
    return frame + f"{crc16(frame):04X}\r\n".encode()


DSMR5_NL = (
    "1-3:0.2.8(50)\r\n"
    "0-0:1.0.0(170108161107W)\r\n"
    "0-0:96.1.1(4530303336303000000000000000000040)\r\n"
    "1-0:1.8.1(000204.039*kWh)\r\n"
    "1-0:1.8.2(000196.415*kWh)\r\n"
    "1-0:2.8.1(000000.000*kWh)\r\n"
    "1-0:2.8.2(000000.000*kWh)\r\n"
    "0-0:96.14.0(0002)\r\n"
    "1-0:1.7.0(00.383*kW)\r\n"
    "1-0:2.7.0(00.000*kW)\r\n"
    "0-0:96.7.21(00010)\r\n"
    "0-0:96.7.9(00003)\r\n"
    "1-0:99.97.0(1)(0-0:96.7.19)(000101000001W)(2147483647*s)\r\n"
    "1-0:32.32.0(00002)\r\n"
    "1-0:32.36.0(00000)\r\n"
    "0-0:96.13.0()\r\n"
    "1-0:32.7.0(230.0*V)\r\n"
    "1-0:31.7.0(002*A)\r\n"
    "1-0:21.7.0(00.401*kW)\r\n"
    "1-0:22.7.0(00.000*kW)\r\n"
    "0-1:24.1.0(003)\r\n"
    "0-1:96.1.0(4730303339303031363532303530323136)\r\n"
    "0-1:24.2.1(170108160000W)(00041.138*m3)\r\n"
)


def test_dsmr5_single_phase_with_gas() -> None:
    reading = parse_telegram(telegram(DSMR5_NL), received_ms=0, tz="Europe/Amsterdam")
    assert reading.crc == "ok"
    assert reading.ic == 400.454  # the sum of the tariff registers
    assert reading.ec == 0.0
    assert reading.tariff == "0002"
    assert reading.meter_id == "4530303336303000000000000000000040"
    assert reading.pi == [383.0, 401.0, None, None]
    assert reading.u == [230.0, None, None]  # single phase: L2/L3 unknown, not 0
    assert reading.power_failures == 10 and reading.long_power_failures == 3
    assert reading.ts == utc_ms(2017, 1, 8, 15, 11, 7)
    assert reading.extras["1-0:32.32.0"] == "00002"
    assert reading.extras["1-0:99.97.0"] == ["1", "0-0:96.7.19", "000101000001W", "2147483647*s"]
    assert reading.extras["1-0:0.2.8"] == "50"  # 1-3: read as 1-0: (obis.normalise_text_code)
    [gas] = reading.submeters
    assert gas.channel == 1 and gas.device_type == 3
    assert gas.id == "4730303339303031363532303530323136"
    assert gas.value == 41.138 and gas.unit == "m3"
    assert gas.ts == utc_ms(2017, 1, 8, 15, 0, 0)


def test_dsmr22_gas_on_the_next_line_and_no_crc() -> None:
    data = (
        b"/ISk5\\2MT382-1004\r\n\r\n"
        b"0-0:96.1.1(00000000000000)\r\n"
        b"1-0:1.8.1(00001.001*kWh)\r\n"
        b"1-0:1.8.2(00001.001*kWh)\r\n"
        b"1-0:1.7.0(0001.01*kW)\r\n"
        b"0-1:24.3.0(090212160000)(00)(60)(1)(0-1:24.2.1)(m3)\r\n"
        b"(00001.001)\r\n"
        b"!\r\n"
    )
    reading = parse_telegram(data, received_ms=0, tz="Europe/Amsterdam")
    assert reading.crc == "absent"
    assert reading.ic == 2.002 and reading.pi[0] == 1010.0
    [gas] = reading.submeters
    assert gas.value == 1.001 and gas.unit == "m3" and gas.ts == utc_ms(2009, 2, 12, 15, 0)
    assert "0-1:24.3.0" not in reading.extras


def test_belgian_lines_and_unit_spellings() -> None:
    body = (
        "0-0:96.1.4(50217)\r\n"
        "1-0:1.8.1(000050.000*kWh)\r\n"
        "1-0:1.8.2(000025.500*kWh)\r\n"
        "1-0:1.4.0(02.351*kW)\r\n"
        "1-0:1.6.0(200509134558S)(02.589*kW)\r\n"
        "0-0:98.1.0(1)(1-0:1.6.0)(1-0:1.6.0)(200501000000S)(200423192538S)(03.695*kW)\r\n"
        "1-0:3.7.0(0.5*kVAr)\r\n"
        "1-0:4.7.0(00.007)\r\n"  # no unit at all: the DSMR k-unit
        "1-1:31.7.0(5.5*A)\r\n"  # Kamstrup's channel 1 is channel 0
        "1-0:14.7.0(50.02*Hz)\r\n"
        "0-1:24.2.3(200512134558S)(00112.384*m3)\r\n"
    )
    reading = parse_telegram(telegram(body), received_ms=0, tz="Europe/Brussels")
    assert reading.ic == 75.5
    assert reading.r[0] == 493.0
    assert reading.i == [5.5, None, None]
    assert reading.frequency == 50.02
    assert reading.extras["1-0:1.4.0"] == {"value": 2.351, "unit": "kW"}
    assert reading.extras["1-0:1.6.0"] == ["200509134558S", "02.589*kW"]
    assert reading.extras["0-0:98.1.0"][0] == "1"
    assert reading.submeters[0].value == 112.384


def test_register_with_a_unit_that_does_not_fit_is_kept_not_lost() -> None:
    reading = parse_telegram(
        telegram("1-0:1.8.0(1.000*kWh)\r\n1-0:32.7.0(230*kW)\r\n"), received_ms=0
    )
    assert reading.ic == 1.0 and reading.u == [None, None, None]
    assert reading.extras["1-0:32.7.0"] == {"value": 230.0, "unit": "kW"}


def test_unpadded_crc_is_checked() -> None:
    frame = b"/TST5\r\n\r\n1-0:1.8.0(1.000*kWh)\r\n!"
    value = crc16(frame)
    for digits in (f"{value:X}", f"{value:04X}"):
        reading = parse_telegram(frame + digits.encode() + b"\r\n", received_ms=0)
        assert reading.crc == "ok"


def feed_all(decoder: P1Decoder, data: bytes, chunk: int) -> list[Decoded | DecodeError]:
    out: list[Decoded | DecodeError] = []
    for start in range(0, len(data), chunk):
        out += decoder.feed(data[start : start + chunk], 0)
    return out + decoder.flush(0)


@pytest.mark.parametrize("chunk", [1, 7, 64, 4096])
def test_stream_of_telegrams_in_any_chunking(chunk: int) -> None:
    good = load("lgf5e360_se.txt")
    stream = good + b"\x00\x00\xff" + good[:300] + good + b"noise" + good
    out = feed_all(P1Decoder(tz="Europe/Stockholm"), stream, chunk)
    kinds = [o.reason if isinstance(o, DecodeError) else "ok" for o in out]
    assert kinds == ["ok", "truncated", "ok", "ok"]
    truncated = out[1]
    assert isinstance(truncated, DecodeError)
    assert truncated.offset == len(good) + 3  # where the cut-off telegram began


def test_over_long_telegram_is_bounded() -> None:
    decoder = P1Decoder(max_size=1000)
    out = decoder.feed(b"/XXX5\r\n" + b"1-0:1.8.0(1*kWh)\r\n" * 200, 0)
    assert [o.reason for o in out if isinstance(o, DecodeError)] == ["overflow"]
    assert len(decoder._buffer) <= 1000
    good = load("lgf5e360_se.txt")
    out = decoder.feed(good, 0)
    assert len(out) == 1 and isinstance(out[0], Decoded)


def test_missing_crc_from_a_meter_that_sends_one_is_refused() -> None:
    good = load("lgf5e360_se.txt")
    damaged = good[: good.index(b"!") + 1] + b"\r\n"
    decoder = P1Decoder()
    out = decoder.feed(good + damaged, 0)
    assert isinstance(out[0], Decoded)
    assert isinstance(out[1], DecodeError) and out[1].reason == "crc_error"


def test_bang_not_at_line_start_is_not_an_end() -> None:
    data = b"/TST5\r\n\r\n1-0:1.8.0(1.000*kWh!\r\n"
    out = P1Decoder().feed(data, 0)
    assert [o.reason for o in out if isinstance(o, DecodeError)] == ["parse_error"]


def test_header_only_telegram_is_a_parse_error() -> None:
    with pytest.raises(DecodeError) as caught:
        parse_telegram(telegram(""), received_ms=0)
    assert caught.value.reason == "parse_error"


def test_layout_cache_falls_back_when_a_value_is_not_a_number() -> None:
    body = "1-0:1.8.0(1.000*kWh)\r\n1-0:32.7.0(230.1*V)\r\n"
    header = "/LAY5 layout test"
    parser = P1Parser()
    first = parser.parse_telegram(telegram(body, header), 0)
    assert parser.parse_telegram(telegram(body, header), 0) == first
    assert parser.compiled == 1 and list(parser.layouts) == ["LAY5 layout test"]
    odd = parser.parse_telegram(telegram(body.replace("230.1", "23x.1"), header), 0)
    assert first.u[0] == 230.1
    assert odd.u[0] is None and odd.extras["1-0:32.7.0"] == {"value": "23x.1", "unit": "V"}
    assert (parser.fast, parser.generic) == (0, 3)  # the odd one was read line by line
    again = parser.parse_telegram(telegram(body, header), 0)
    assert again == first and parser.fast == 1
