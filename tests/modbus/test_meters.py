"""Several meters on one Modbus server, read by a real pymodbus client: a unit id per meter
(HANPORT_MODBUS_UNITS), unmapped unit ids answer for the default meter, a stale meter answers
0x0B on its unit only, a DSMR meter's gas sub-meter in the native map, a license naming meters,
and the setting's errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from pathlib import Path

import pytest
from pydantic import ValidationError
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ExceptionResponse
from redis.asyncio import Redis

from services.modbus.register_map import NATIVE_BASE, SUBMETER_BASE
from services.modbus.settings import ModbusSettings
from shared.meters import MeterDirectory, MeterKeys, MeterRecord
from shared.reading import Reading, SubMeter
from shared.stream import ReadingStream
from tests.licensing_helpers import grant
from tests.servers import RedisServer
from tests.stack.polling import until

from .conftest import SERIAL, StartModbus, import_reading
from .test_server import F64, U64, client, number

UNITS = "1=main,2=heatpump,3=dsmr"
GAS_TS = 1_764_000_000_000
DSMR_ID = "E0044007382246019"


def now_ms() -> int:
    return int(time.time() * 1000)


def heatpump_reading(received: int) -> Reading:
    return import_reading(meter="heatpump", meter_id="HP-77", ic=50.5, received=received,
                          ts=received)  # fmt: skip


def dsmr_reading() -> Reading:
    return import_reading(
        meter="dsmr", meter_id=DSMR_ID, ic=2130.115,
        submeters=[SubMeter(channel=1, device_type=3, value=246.138, unit="m3", ts=GAS_TS)],
    )  # fmt: skip


async def add_meters(redis_url: str, *, heatpump_age_s: float) -> None:
    """`heatpump` and `dsmr` on streams of their own, in the directory; `heatpump`'s newest
    reading `heatpump_age_s` old."""
    redis = Redis.from_url(redis_url)
    directory = MeterDirectory(redis)
    for name in ("heatpump", "dsmr"):
        keys = MeterKeys.named(name)
        await directory.put(MeterRecord(name=name, readings=keys.readings, raw=keys.raw,
                                        status=keys.status, updated=now_ms()))  # fmt: skip
    received = now_ms() - int(heatpump_age_s * 1000)
    await ReadingStream(redis, MeterKeys.named("heatpump").readings).add(heatpump_reading(received))
    await ReadingStream(redis, MeterKeys.named("dsmr").readings).add(dsmr_reading())
    await redis.aclose()


async def native(modbus: AsyncModbusTcpClient, address: int, count: int, unit: int) -> object:
    response = await modbus.read_holding_registers(address, count=count, device_id=unit)
    if isinstance(response, ExceptionResponse):
        return response.exception_code
    return response.registers


async def ic_of(modbus: AsyncModbusTcpClient, unit: int) -> object:
    words = await native(modbus, NATIVE_BASE + 8, 4, unit)
    return number(words, F64) if isinstance(words, list) else words


async def test_a_unit_id_per_meter_and_a_stale_one_answers_an_exception_alone(
    start_modbus: StartModbus, redis_server: RedisServer
) -> None:
    await add_meters(redis_server.url, heatpump_age_s=120)  # past HANPORT_MODBUS_STALE_AFTER
    service = await start_modbus(modbus_units=UNITS)
    main = import_reading(meter="main", ic=1000.25)
    await service.publish(main)  # the classic stream: the default meter
    modbus = await client(service)
    try:
        await until(lambda: _is(ic_of(modbus, 3), 2130.115), "dsmr on unit 3", lambda: "", 10)
        assert await ic_of(modbus, 1) == 1000.25
        for unmapped in (7, 247):  # the default meter, as on a one-meter box
            assert await ic_of(modbus, unmapped) == 1000.25
        # the heat pump's data is stale: its unit answers 0x0B (measurements), its status says so
        assert await ic_of(modbus, 2) == 0x0B
        status = await native(modbus, NATIVE_BASE, 4, 2)
        assert isinstance(status, list) and status[1] == 0  # data valid: no
        assert number(status[2:4], AsyncModbusTcpClient.DATATYPE.UINT32) >= 119  # age, s
        # ... while the others keep serving
        assert await ic_of(modbus, 1) == 1000.25 and await ic_of(modbus, 3) == 2130.115
        # the gas sub-meter and its own time in the native map, on the DSMR meter's unit only
        gas = await native(modbus, SUBMETER_BASE, 8, 3)
        assert isinstance(gas, list)
        assert number(gas[:4], F64) == 246.138 and number(gas[4:8], U64) == GAS_TS
        none = await native(modbus, SUBMETER_BASE, 8, 1)
        assert isinstance(none, list) and number(none[4:8], U64) == 2**64 - 1  # not implemented
        # the heat pump comes back: its unit serves again
        redis = Redis.from_url(redis_server.url)
        await ReadingStream(redis, MeterKeys.named("heatpump").readings).add(
            heatpump_reading(now_ms())
        )
        await redis.aclose()
        await until(lambda: _is(ic_of(modbus, 2), 50.5), "heatpump fresh", lambda: "", 10)
    finally:
        modbus.close()


async def test_a_license_naming_meters_serves_only_those_units(
    start_modbus: StartModbus, redis_server: RedisServer, tmp_path: Path
) -> None:
    await add_meters(redis_server.url, heatpump_age_s=0)
    service = await start_modbus(licensed=False, modbus_units=UNITS)
    await grant(redis_server.url, tmp_path, SERIAL, ["modbus"], meters=["main", DSMR_ID])
    await asyncio.wait_for(service.state.opened.wait(), 10)
    await service.publish(import_reading(meter="main", ic=1000.25))
    modbus = await client(service)
    try:
        await until(lambda: _is(ic_of(modbus, 3), 2130.115), "dsmr on unit 3", lambda: "", 10)
        assert await ic_of(modbus, 1) == 1000.25 and await ic_of(modbus, 9) == 1000.25
        assert await ic_of(modbus, 2) == 0x0A  # the heat pump is not licensed
    finally:
        modbus.close()


async def _is(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


@pytest.mark.parametrize(
    ("units", "says"),
    [
        ("1=main,x=heatpump", "'x=heatpump' is not <unit id>=<meter>"),
        ("1=main,248=heatpump", "unit ids are 1-247"),
        ("1=main,1=heatpump", "unit id 1 is given twice"),
        ("1=main,2=heat pump", "unit id 2: 'heat pump' is not a meter name"),
    ],
)
def test_a_bad_unit_mapping_is_refused_naming_the_setting(units: str, says: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ModbusSettings.model_validate({"modbus_units": units})
    assert says in str(refused.value) and "modbus_units" in str(refused.value)


def test_the_default_meters_unit_id_cannot_also_be_mapped() -> None:
    with pytest.raises(ValidationError) as refused:
        ModbusSettings.model_validate({"modbus_unit_id": 2, "modbus_units": UNITS})
    assert "unit id 2 is also HANPORT_MODBUS_UNIT_ID" in str(refused.value)
    assert ModbusSettings.model_validate({"modbus_units": " 1=main, 2=heatpump "}).units() == {
        1: "main",
        2: "heatpump",
    }
