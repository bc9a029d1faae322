"""Example telegrams of the specifications hanport reads (DSMR 5.0.2, Belgian e-MUCS/Fluvius,
Luxembourg Smarty), every line of each: values land in the reading's fields or in `extras`
(never dropped), and agree with dsmr_parser's matching specification."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from dsmr_parser import telegram_specifications
from dsmr_parser.parsers import TelegramParser

from services.ingest.codec.p1.parser import crc16, parse_telegram


def with_crc(lines: list[str]) -> bytes:
    frame = ("\r\n".join(lines) + "\r\n!").encode()
    return frame + f"{crc16(frame):04X}\r\n".encode()


DSMR5 = with_crc(
    [
        "/ISk5\\2MT382-1000",
        "",
        "1-3:0.2.8(50)",
        "0-0:1.0.0(101209113020W)",
        "0-0:96.1.1(4B384547303034303436333935353037)",
        "1-0:1.8.1(123456.789*kWh)",
        "1-0:1.8.2(123456.789*kWh)",
        "1-0:2.8.1(123456.789*kWh)",
        "1-0:2.8.2(123456.789*kWh)",
        "0-0:96.14.0(0002)",
        "1-0:1.7.0(01.193*kW)",
        "1-0:2.7.0(00.000*kW)",
        "0-0:96.7.21(00004)",
        "0-0:96.7.9(00002)",
        "1-0:99.97.0(2)(0-0:96.7.19)(101208152415W)(0000000240*s)(101208151004W)(0000000301*s)",
        "1-0:32.32.0(00002)",
        "1-0:52.32.0(00001)",
        "1-0:72.32.0(00000)",
        "1-0:32.36.0(00000)",
        "1-0:52.36.0(00003)",
        "1-0:72.36.0(00000)",
        "0-0:96.13.0(303132333435363738393A3B3C3D3E3F)",
        "1-0:32.7.0(220.1*V)",
        "1-0:52.7.0(220.2*V)",
        "1-0:72.7.0(220.3*V)",
        "1-0:31.7.0(001*A)",
        "1-0:51.7.0(002*A)",
        "1-0:71.7.0(003*A)",
        "1-0:21.7.0(01.111*kW)",
        "1-0:41.7.0(02.222*kW)",
        "1-0:61.7.0(03.333*kW)",
        "1-0:22.7.0(04.444*kW)",
        "1-0:42.7.0(05.555*kW)",
        "1-0:62.7.0(06.666*kW)",
        "0-1:24.1.0(003)",
        "0-1:96.1.0(3232323241424344313233343536373839)",
        "0-1:24.2.1(101209112500W)(12785.123*m3)",
    ]
)

FLUVIUS = with_crc(
    [
        "/FLU5\\253769484_A",
        "",
        "0-0:96.1.4(50217)",
        "0-0:96.1.1(3153414123456789303132333435)",
        "0-0:1.0.0(200512135409S)",
        "1-0:1.8.1(000000.034*kWh)",
        "1-0:1.8.2(000015.758*kWh)",
        "1-0:2.8.1(000000.000*kWh)",
        "1-0:2.8.2(000000.011*kWh)",
        "1-0:1.4.0(02.351*kW)",
        "1-0:1.6.0(200509134558S)(02.589*kW)",
        "0-0:98.1.0(2)(1-0:1.6.0)(1-0:1.6.0)(200501000000S)(200423192538S)(03.695*kW)"
        "(200401000000S)(200305122139S)(05.980*kW)",
        "0-0:96.14.0(0001)",
        "1-0:1.7.0(00.123*kW)",
        "1-0:2.7.0(00.000*kW)",
        "1-0:21.7.0(00.123*kW)",
        "1-0:41.7.0(00.000*kW)",
        "1-0:61.7.0(00.000*kW)",
        "1-0:22.7.0(00.000*kW)",
        "1-0:42.7.0(00.000*kW)",
        "1-0:62.7.0(00.000*kW)",
        "1-0:32.7.0(234.7*V)",
        "1-0:52.7.0(234.6*V)",
        "1-0:72.7.0(234.5*V)",
        "1-0:31.7.0(000.52*A)",
        "1-0:51.7.0(000.00*A)",
        "1-0:71.7.0(000.00*A)",
        "0-0:96.3.10(1)",
        "0-0:17.0.0(999.9*kW)",
        "1-0:31.4.0(999*A)",
        "0-0:96.13.0()",
        "0-1:24.1.0(003)",
        "0-1:96.1.1(37464C4F32313139303137303532)",
        "0-1:24.4.0(1)",
        "0-1:24.2.3(200512134558S)(00112.384*m3)",
    ]
)

SMARTY = with_crc(
    [
        "/Lux5\\253833635_A",
        "",
        "1-3:0.2.8(42)",
        "0-0:1.0.0(170111000000W)",
        "0-0:42.0.0(53414733303832323030303032313630)",
        "1-0:1.8.0(000006.695*kWh)",
        "1-0:2.8.0(000000.025*kWh)",
        "1-0:3.8.0(000000.818*kvarh)",
        "1-0:4.8.0(000002.745*kvarh)",
        "1-0:1.7.0(00.000*kW)",
        "1-0:2.7.0(00.000*kW)",
        "1-0:3.7.0(00.000*kvar)",
        "1-0:4.7.0(00.007)",
        "0-0:17.0.0(999.9*kVA)",
        "0-0:96.3.10(1)",
        "0-0:96.7.21(00003)",
        "1-0:32.32.0(00001)",
        "1-0:32.36.0(00000)",
        "0-0:96.13.0()",
        "1-0:31.7.0(000*A)",
        "1-0:51.7.0(000*A)",
        "1-0:71.7.0(000*A)",
        "1-0:21.7.0(00.000*kW)",
        "1-0:22.7.0(00.000*kW)",
    ]
)


def test_dsmr5_example() -> None:
    r = parse_telegram(DSMR5, received_ms=0, tz="Europe/Amsterdam")
    assert r.crc == "ok" and r.meter_model == "ISk5\\2MT382-1000"
    assert r.ts == 1291890620000  # 2010-12-09 11:30:20 CET
    assert r.ic == 246913.578 and r.ec == 246913.578
    assert r.tariffs == {
        "1.8.1": 123456.789,
        "1.8.2": 123456.789,
        "2.8.1": 123456.789,
        "2.8.2": 123456.789,
    }
    assert r.tariff == "0002" and r.power_failures == 4 and r.long_power_failures == 2
    assert r.pi == [1193.0, 1111.0, 2222.0, 3333.0]
    assert r.pe == [0.0, 4444.0, 5555.0, 6666.0]
    assert r.p == [1193.0, -3333.0, -3333.0, -3333.0]
    assert r.u == [220.1, 220.2, 220.3] and r.i == [1.0, 2.0, 3.0]
    assert r.meter_id == "4B384547303034303436333935353037"
    assert set(r.extras) == {
        "1-0:0.2.8",
        "1-0:99.97.0",
        "1-0:32.32.0",
        "1-0:52.32.0",
        "1-0:72.32.0",
        "1-0:32.36.0",
        "1-0:52.36.0",
        "1-0:72.36.0",
        "0-0:96.13.0",
    }
    [gas] = r.submeters
    assert (gas.channel, gas.device_type, gas.value, gas.unit) == (1, 3, 12785.123, "m3")
    assert gas.id == "3232323241424344313233343536373839" and gas.ts == 1291890300000


def test_fluvius_example() -> None:
    r = parse_telegram(FLUVIUS, received_ms=0, tz="Europe/Brussels")
    assert r.crc == "ok"
    assert r.ic == 15.792 and r.ec == 0.011
    assert r.pi == [123.0, 123.0, 0.0, 0.0] and r.i == [0.52, 0.0, 0.0]
    assert r.meter_id == "3153414123456789303132333435" and r.tariff == "0001"
    assert r.extras["1-0:1.4.0"] == {"value": 2.351, "unit": "kW"}
    assert r.extras["1-0:1.6.0"] == ["200509134558S", "02.589*kW"]
    assert len(r.extras["0-0:98.1.0"]) == 9
    assert r.extras["0-0:17.0.0"] == {"value": 999.9, "unit": "kW"}
    assert r.extras["1-0:31.4.0"] == {"value": 999.0, "unit": "A"}
    assert r.extras["0-0:96.3.10"] == "1" and r.extras["0-1:24.4.0"] == "1"
    assert r.extras["0-0:96.1.4"] == "50217"
    [gas] = r.submeters
    assert (gas.value, gas.unit, gas.id) == (112.384, "m3", "37464C4F32313139303137303532")


def test_smarty_example() -> None:
    r = parse_telegram(SMARTY, received_ms=0, tz="Europe/Luxembourg")
    assert r.crc == "ok"
    assert (r.ic, r.ec, r.ric, r.rec) == (6.695, 0.025, 0.818, 2.745)
    assert r.r[0] == -7.0  # 1-0:4.7.0(00.007) without a unit: kvar
    assert r.i == [0.0, 0.0, 0.0] and r.power_failures == 3
    assert r.extras["0-0:42.0.0"] == "53414733303832323030303032313630"
    assert r.extras["0-0:17.0.0"] == {"value": 999.9, "unit": "kVA"}


# (telegram, dsmr_parser specification, zone): values both must agree on
AGREEMENT: list[tuple[bytes, dict[str, Any], str]] = [
    (DSMR5, telegram_specifications.V5, "Europe/Amsterdam"),
    (FLUVIUS, telegram_specifications.BELGIUM_FLUVIUS, "Europe/Brussels"),
]
COMPARED = (
    ("tariffs", "1.8.1", "ELECTRICITY_USED_TARIFF_1", 1),
    ("tariffs", "1.8.2", "ELECTRICITY_USED_TARIFF_2", 1),
    ("tariffs", "2.8.2", "ELECTRICITY_DELIVERED_TARIFF_2", 1),
    ("pi", 0, "CURRENT_ELECTRICITY_USAGE", 1000),
    ("pi", 1, "INSTANTANEOUS_ACTIVE_POWER_L1_POSITIVE", 1000),
    ("u", 0, "INSTANTANEOUS_VOLTAGE_L1", 1),
    ("u", 2, "INSTANTANEOUS_VOLTAGE_L3", 1),
    ("i", 0, "INSTANTANEOUS_CURRENT_L1", 1),
)


@pytest.mark.parametrize(("telegram", "spec", "zone"), AGREEMENT)
def test_agrees_with_dsmr_parser(telegram: bytes, spec: dict[str, Any], zone: str) -> None:
    ours = parse_telegram(telegram, received_ms=0, tz=zone)
    theirs = TelegramParser(spec).parse(telegram.decode())
    for field, key, name, factor in COMPARED:
        assert getattr(ours, field)[key] == float(Decimal(getattr(theirs, name).value) * factor)
    assert ours.ts == int(theirs.P1_MESSAGE_TIMESTAMP.value.timestamp()) * 1000
