"""Energy accounting's native registers (holding 1200..): the default meter's live tariff state,
as the accounting service stored it in Redis, read by a real Modbus client from the real
service."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from pymodbus.client import AsyncModbusTcpClient
from redis.asyncio import Redis

from services.accounting import store
from services.accounting.account import MeterAccount
from services.accounting.tariffs import rule
from services.modbus.accounting import ACCOUNTING_BASE, registers
from shared.reading import Reading
from tests.modbus.conftest import StartModbus
from tests.servers import RedisServer
from tests.stack.polling import until

F32 = AsyncModbusTcpClient.DATATYPE.FLOAT32
U16 = AsyncModbusTcpClient.DATATYPE.UINT16
T0 = 1_772_319_600_000  # 2026-03-01 00:00 Oslo


def answer_of_an_hour_and_a_half() -> dict[str, object]:
    """00:00-01:30 at 2 kW (Elvia): this hour 1.0 kWh so far, at 2 kW; month value 2.0 kW."""
    account = MeterAccount.new("m1", ZoneInfo("Europe/Oslo"), rule("no-elvia"))
    for k in range(19):
        ts = T0 + k * 300_000
        account.add(Reading(ts=ts, received=ts, meter="m1", ic=100 + k * 2 / 12, pi=[2000.0]))
    return account.tariff_state()


def f32(words: Sequence[int]) -> float:
    """The float32 of two registers, high word first."""
    return float(struct.unpack(">f", struct.pack(">HH", *words))[0])


def test_registers_of_an_answer_and_of_none() -> None:
    answer = answer_of_an_hour_and_a_half()
    words = registers({**answer, "formed_ms": 1000}, 6000)
    value = lambda w, _kind: f32(w)  # noqa: E731
    # headroom: the step (2-5 kW) holds while the mean of the top 3 days stays under 5 kW;
    # one day so far: this hour may reach 5 kWh, 4 kWh more in 30 min = 8 kW, 6 kW above 2 kW
    assert abs(value(words[0:2], F32) - 6000) <= 1
    assert value(words[2:4], F32) == 2.0  # average so far: 1.0 kWh in 30 min
    assert value(words[4:6], F32) == 2.0  # projected at 2 kW
    assert value(words[6:8], F32) == 2.0  # month value: the best hour, 2.0 kWh
    assert value(words[10:12], F32) == 1.0  # window energy so far
    assert words[12:16] == [2, 60, 0, 5]  # step 2, 60-minute window, formed 5 s ago
    empty = registers(None, 0)
    assert math.isnan(value(empty[0:2], F32)) and empty[12:14] == [0, 0]


async def test_a_charger_reads_the_headroom(
    redis_server: RedisServer, start_modbus: StartModbus
) -> None:
    answer = answer_of_an_hour_and_a_half()
    redis = Redis.from_url(redis_server.url)
    try:
        await redis.sadd(store.METERS_KEY, "m1")
        await redis.set(store.tariff_key("m1"), json.dumps(answer))
        service = await start_modbus()
        modbus = AsyncModbusTcpClient("127.0.0.1", port=service.settings.modbus_port, timeout=5)
        assert await modbus.connect()
        try:

            async def headroom() -> float:
                response = await modbus.read_holding_registers(
                    ACCOUNTING_BASE, count=16, device_id=1
                )
                assert not response.isError(), response
                return f32(response.registers[0:2])

            got = await until(lambda: _positive(headroom()), "accounting registers", lambda: "", 15)
            assert abs(got - 6000) <= 1
        finally:
            modbus.close()
    finally:
        await redis.aclose()


async def _positive(value: object) -> float | None:
    got = await value  # type: ignore[misc]
    return got if not math.isnan(got) else None
