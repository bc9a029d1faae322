"""The Modbus service end to end: readings XADDed to a real Redis, read back by real Modbus
clients (pymodbus, the SunSpec Alliance's pysunspec2, Debian's mbpoll) and by raw sockets."""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import socket
import struct
import time
from collections.abc import Sequence
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ExceptionResponse
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from services.modbus.register_map import NATIVE_BASE, SUNSPEC_BASE, serial32
from shared.reading import encode_reading
from tests.modbus.conftest import SERIAL, Running, StartModbus, export_reading, import_reading
from tests.readings import simulated_readings

F32 = AsyncModbusTcpClient.DATATYPE.FLOAT32
F64 = AsyncModbusTcpClient.DATATYPE.FLOAT64
U16 = AsyncModbusTcpClient.DATATYPE.UINT16
U32 = AsyncModbusTcpClient.DATATYPE.UINT32
U64 = AsyncModbusTcpClient.DATATYPE.UINT64


def f32(value: float | None) -> float:
    """What a float32 register holds for `value` (NaN for a value not sent)."""
    return math.nan if value is None else struct.unpack(">f", struct.pack(">f", value))[0]


def same(got: list[float], expected: list[float | None]) -> bool:
    want = [f32(v) for v in expected]
    return len(got) == len(want) and all(
        (math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(got, want, strict=True)
    )


async def client(service: Running) -> AsyncModbusTcpClient:
    modbus = AsyncModbusTcpClient("127.0.0.1", port=service.port, timeout=5, retries=0)
    assert await modbus.connect()
    return modbus


async def holding(modbus: AsyncModbusTcpClient, address: int, count: int, unit: int = 1):
    response = await modbus.read_holding_registers(address, count=count, device_id=unit)
    assert not response.isError(), response
    return response.registers


def number(words: Sequence[int], kind: Any) -> Any:
    """One value of `kind` (pymodbus DATATYPE) from its registers, high word first."""
    return AsyncModbusTcpClient.convert_from_registers(list(words), kind)


def floats(words: Sequence[int]) -> list[float]:
    return list(struct.unpack(f">{len(words) // 2}f", struct.pack(f">{len(words)}H", *words)))


def total(values: Sequence[float | None]) -> float:
    return sum(v for v in values if v is not None)


async def test_sdm630_map_is_the_reading(start_modbus: StartModbus) -> None:
    service = await start_modbus()
    reading = export_reading()
    await service.publish(reading)
    modbus = await client(service)
    try:
        response = await modbus.read_input_registers(0, count=0x50, device_id=1)
        values = floats(response.registers)
        at = lambda address: values[address // 2]  # noqa: E731
        assert same([at(0), at(2), at(4)], reading.u)
        assert same([at(6), at(8), at(10)], reading.i)
        assert same([at(0x0C), at(0x0E), at(0x10)], reading.p[1:])
        assert same([at(0x18), at(0x1A), at(0x1C)], reading.r[1:])
        assert same([at(0x34), at(0x3C), at(0x46)], [reading.p[0], reading.r[0], 50.02])
        assert same([at(0x48), at(0x4A), at(0x4C), at(0x4E)], [2722.5, 151.25, 1384.336, 0.09])
        assert at(0x34) < 0  # exporting: import-positive
        tail = await modbus.read_input_registers(0x156, count=4, device_id=1)
        assert same(floats(tail.registers), [2722.5 + 151.25, 1384.336 + 0.09])
        serial = await holding(modbus, 0xFC00, 2)
        assert number(serial, U32) == serial32(SERIAL)
    finally:
        modbus.close()


async def test_sunspec_213_map_is_the_reading(start_modbus: StartModbus) -> None:
    service = await start_modbus()
    reading = import_reading()
    await service.publish(reading)
    modbus = await client(service)
    try:
        words = await holding(modbus, SUNSPEC_BASE, 100) + await holding(modbus, 40100, 98)
        assert struct.pack(">2H", *words[:2]) == b"SunS"
        assert words[2:4] == [1, 66] and words[70:72] == [213, 124] and words[196:] == [0xFFFF, 0]
        text = struct.pack(">66H", *words[4:70])
        assert text[:32].rstrip(b"\0") == b"hanport"
        assert text[96:128].rstrip(b"\0") == SERIAL.encode()
        model = floats(words[72:194])
        names = ["A", "AphA", "AphB", "AphC", "PhV", "PhVphA", "PhVphB", "PhVphC"]
        names += ["PPV", "PPVphAB", "PPVphBC", "PPVphCA", "Hz", "W", "WphA", "WphB", "WphC"]
        got = dict(zip(names, model, strict=False))
        assert same([got["AphA"], got["AphB"], got["AphC"]], reading.i)
        assert same([got["PhVphA"], got["PhVphB"], got["PhVphC"]], reading.u)
        assert same([got["W"], got["WphA"], got["WphB"], got["WphC"]], reading.p)
        assert same([got["A"], got["Hz"], got["PPV"]], [total(reading.i), None, None])
        assert same([model[29], model[33]], [0.0, 2721126.0])  # TotWhExp, TotWhImp in Wh
    finally:
        modbus.close()


async def test_native_map_is_the_cozify_message(start_modbus: StartModbus) -> None:
    service = await start_modbus()
    reading = import_reading()
    await service.publish(reading)
    modbus = await client(service)
    try:
        words = await holding(modbus, NATIVE_BASE, 70, unit=42)
        assert words[:2] == [1, 1]  # map version, data valid
        assert number(words[2:4], U32) <= 1  # age, s
        assert number(words[4:8], U64) == reading.ts
        energies = [number(words[8 + 4 * n : 12 + 4 * n], F64) for n in range(4)]
        assert energies == [reading.ic, reading.ec, reading.ric, reading.rec]
        values = floats(words[24:70])
        expected = [*reading.p, *reading.pi, *reading.pe, *reading.r, *reading.u, *reading.i]
        assert same(values, [*expected, reading.frequency])
    finally:
        modbus.close()


async def test_values_follow_the_stream(start_modbus: StartModbus) -> None:
    """Simulated meter telegrams decoded by the real P1 decoder, one after another: after each
    XADD the SDM630 and native maps hold exactly that reading."""
    service = await start_modbus()
    modbus = await client(service)
    readings = simulated_readings(5, start_ms=int(time.time() * 1000) - 5000)
    try:
        for reading in readings:
            await service.publish(reading)
            sdm = floats((await modbus.read_input_registers(0, count=0x50, device_id=1)).registers)
            assert same([sdm[0], sdm[1], sdm[2]], reading.u)
            assert same([sdm[3], sdm[4], sdm[5]], reading.i)
            assert same(
                [sdm[0x34 // 2], sdm[0x48 // 2], sdm[0x4A // 2]],
                [reading.p[0], reading.ic, reading.ec],
            )
            native = await holding(modbus, NATIVE_BASE, 70)
            assert number(native[4:8], U64) == reading.ts
            assert number(native[8:12], F64) == reading.ic
            assert same(floats(native[24:32]), reading.p)
        assert len({r.p[0] for r in readings}) > 1  # the values really changed
    finally:
        modbus.close()


def _scan(port: int) -> dict[str, dict[str, object]]:
    device = SunSpecModbusClientDeviceTCP(slave_id=126, ipaddr="127.0.0.1", ipport=port, timeout=5)
    try:
        device.scan()
        return {
            str(model.model_id): {name: point.cvalue for name, point in model.points.items()}
            for model in device.model_list
        }
    finally:
        device.close()


@pytest.mark.parametrize("model", [213, 203])
async def test_pysunspec2_scan_finds_the_models_and_computes_the_values(
    start_modbus: StartModbus, model: int
) -> None:
    service = await start_modbus(modbus_sunspec_model=model)
    reading = import_reading()
    await service.publish(reading)
    found = await asyncio.to_thread(_scan, service.port)
    assert list(found) == ["1", str(model)]
    assert found["1"]["Mn"] == "hanport" and found["1"]["SN"] == SERIAL
    meter = found[str(model)]
    assert meter["W"] == pytest.approx(reading.p[0], abs=0.5)
    assert meter["A"] == pytest.approx(total(reading.i), abs=0.01)
    assert [meter["AphA"], meter["AphB"], meter["AphC"]] == pytest.approx(reading.i, abs=0.01)
    assert meter["PhV"] == pytest.approx(total(reading.u) / 3, abs=0.1)
    assert meter["PhVphA"] == pytest.approx(reading.u[0], abs=0.05)
    assert meter["TotWhImp"] == pytest.approx(total([reading.ic]) * 1000, abs=0.5)
    assert meter["Hz"] is None  # the meter does not send it: not implemented


@pytest.mark.skipif(
    shutil.which("mbpoll") is None, reason="mbpoll is not installed (.ci/run installs it)"
)
async def test_mbpoll_reads_the_sdm630_floats(start_modbus: StartModbus) -> None:
    service = await start_modbus()
    reading = import_reading()
    await service.publish(reading)
    command = ["mbpoll", "-m", "tcp", "-a", "1", "-0", "-r", "0", "-c", "9", "-t", "3:float"]
    process = await asyncio.create_subprocess_exec(
        *command,
        "-B",
        "-1",
        "-p",
        str(service.port),
        "127.0.0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    values = {}
    for line in out.decode().splitlines():
        if line.startswith("[") and "]:" in line:
            address, value = line.split("]:")
            values[int(address.strip("[ "))] = float(value)
    expected = [*reading.u, *reading.i, *reading.p[1:]]
    assert [values[a] for a in range(0, 18, 2)] == pytest.approx(expected, abs=1e-3)


async def test_stale_data_answers_0x0B_and_the_age_still_answers(start_modbus: StartModbus) -> None:
    service = await start_modbus()
    modbus = await client(service)
    try:
        none_yet = await modbus.read_input_registers(0, count=2, device_id=1)
        assert isinstance(none_yet, ExceptionResponse) and none_yet.exception_code == 0x0B
        old = import_reading(received=int((time.time() - 45) * 1000))
        await service.publish(old)
        for address, count, read in (
            (0x34, 2, modbus.read_input_registers),
            (SUNSPEC_BASE + 72, 10, modbus.read_holding_registers),
            (NATIVE_BASE, 70, modbus.read_holding_registers),
        ):
            response = await read(address, count=count, device_id=1)
            assert isinstance(response, ExceptionResponse) and response.exception_code == 0x0B
        status = await holding(modbus, NATIVE_BASE, 8)
        assert status[1] == 0  # data valid: no
        assert 45 <= number(status[2:4], U32) <= 60
        assert number(status[4:8], U64) == old.ts
        assert (await holding(modbus, SUNSPEC_BASE, 72))[:4] == [0x5375, 0x6E53, 1, 66]
        fresh = import_reading()
        await service.publish(fresh)
        assert (await holding(modbus, NATIVE_BASE, 2))[1] == 1
    finally:
        modbus.close()


async def test_writes_are_refused_and_change_nothing(start_modbus: StartModbus) -> None:
    service = await start_modbus()
    await service.publish(import_reading())
    modbus = await client(service)
    try:
        before = await holding(modbus, NATIVE_BASE, 70)
        for write in (
            modbus.write_register(NATIVE_BASE + 24, 1, device_id=1),
            modbus.write_registers(NATIVE_BASE, [0, 0, 0], device_id=1),
            modbus.write_coil(0, True, device_id=1),
            modbus.write_registers(40000, [1, 2], device_id=1),
        ):
            response = await write
            assert isinstance(response, ExceptionResponse) and response.exception_code == 0x01
        assert await holding(modbus, NATIVE_BASE, 70) == before
    finally:
        modbus.close()


async def test_illegal_addresses_and_unit_ids(start_modbus: StartModbus) -> None:
    service = await start_modbus(modbus_unit_id=3)
    await service.publish(import_reading())
    modbus = await client(service)
    try:
        for address, count, unit, code in (
            (40190, 10, 3, 0x02),  # past the SunSpec end model
            (999, 2, 3, 0x02),  # before the native map
            (1060, 20, 3, 0x02),  # leaves the native map
            (2000, 1, 3, 0x02),
            (NATIVE_BASE, 2, 1, 0x0A),  # another unit id
        ):
            response = await modbus.read_holding_registers(address, count=count, device_id=unit)
            assert isinstance(response, ExceptionResponse), (address, count, response)
            assert response.exception_code == code, (address, count, response)
        assert (await holding(modbus, NATIVE_BASE, 2, unit=3)) == [1, 1]
        coils = await modbus.read_coils(0, count=8, device_id=3)
        assert isinstance(coils, ExceptionResponse) and coils.exception_code == 0x01
    finally:
        modbus.close()


def _read(tid: int, address: int, count: int, function: int = 3, unit: int = 1) -> bytes:
    return struct.pack(">HHHBBHH", tid, 0, 6, unit, function, address, count)


async def _answer(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    header = await asyncio.wait_for(reader.readexactly(7), 5)
    tid, _protocol, length, _unit = struct.unpack(">HHHB", header)
    body = await asyncio.wait_for(reader.readexactly(length - 1), 5)
    return tid, body[0], body[1:]


async def test_counts_and_pipelined_requests_over_a_raw_socket(start_modbus: StartModbus) -> None:
    service = await start_modbus()
    await service.publish(import_reading())
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    try:
        # three requests in one packet, the last split over two packets
        packet = _read(1, 0, 126, function=4) + _read(2, 0, 0, function=4) + _read(3, 0x34, 2, 4)
        writer.write(packet[:-3])
        await writer.drain()
        assert await _answer(reader) == (1, 0x84, b"\x03")  # count > 125: illegal data value
        assert await _answer(reader) == (2, 0x84, b"\x03")  # count 0
        writer.write(packet[-3:])
        tid, function, data = await _answer(reader)
        assert (tid, function, data[0]) == (3, 4, 4)
        assert struct.unpack(">f", data[1:]) == pytest.approx([4190.0])
        writer.write(struct.pack(">HHHBB", 4, 0, 2, 1, 0x2B))  # unsupported function 43
        assert await _answer(reader) == (4, 0xAB, b"\x01")
    finally:
        writer.close()


async def test_malformed_frames_close_only_their_connection(start_modbus: StartModbus) -> None:
    service = await start_modbus()
    await service.publish(import_reading())
    steady = await client(service)
    frames = [
        b"\x00\x01\x00\x07\x00\x06\x01\x03\x00\x00\x00\x01",  # protocol id 7
        b"\x00\x01\x00\x00\xff\xff\x01\x03\x00\x00\x00\x01",  # length 65535
        b"\x00\x01\x00\x00\x00\x01\x01\x03",  # length 1
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        bytes(range(256)) * 4,
    ]
    import random

    rng = random.Random(6)
    frames += [bytes(rng.getrandbits(8) for _ in range(rng.randint(8, 300))) for _ in range(30)]
    try:
        for frame in frames:
            reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
            writer.write(frame)
            await writer.drain()
            try:
                # the server answers what is a valid request and closes on a malformed header
                while await asyncio.wait_for(reader.read(4096), 0.5):
                    pass
            except TimeoutError:
                pass  # a valid-looking header waiting for the rest of its frame: also fine
            finally:
                writer.close()
            response = await steady.read_input_registers(0x34, count=2, device_id=1)
            assert same(floats(response.registers), [4190.0])
        bad = struct.pack(">HHHBBHH", 1, 9, 6, 1, 3, 0, 1)
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(bad)
        assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed by the server
        writer.close()
    finally:
        steady.close()


async def test_a_hundred_clients_at_once(start_modbus: StartModbus) -> None:
    service = await start_modbus()
    reading = import_reading()
    await service.publish(reading)
    before = _sample("hanport_modbus_clients")
    clients = await asyncio.wait_for(asyncio.gather(*(client(service) for _ in range(100))), 30)

    async def five_reads(modbus: AsyncModbusTcpClient) -> list[float]:
        results = []
        for _ in range(5):
            response = await modbus.read_input_registers(0x34, count=2, device_id=1)
            results += floats(response.registers)
        return results

    try:
        assert _sample("hanport_modbus_clients") - before == 100
        answers = await asyncio.wait_for(asyncio.gather(*(five_reads(c) for c in clients)), 60)
        assert all(same(a, [reading.p[0]] * 5) for a in answers)
    finally:
        for modbus in clients:
            modbus.close()


class _LogEvent(logging.Handler):
    """Sets an event when a log message containing `text` is emitted."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = asyncio.Event()
        self.message = ""

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.message = record.getMessage()
            self.seen.set()


async def test_port_is_closed_until_a_license_arrives(
    start_modbus: StartModbus, redis_server, tmp_path
) -> None:
    from tests.licensing_helpers import grant, revoke

    closed = _LogEvent("stays closed")
    logging.getLogger("services.modbus").addHandler(closed)
    try:
        service = await start_modbus(licensed=False)
        await service.publish(import_reading())
        await asyncio.wait_for(closed.seen.wait(), 10)  # after a short start-up grace
    finally:
        logging.getLogger("services.modbus").removeHandler(closed)
    assert "no consumer license grants 'modbus'" in closed.message
    assert _sample("hanport_modbus_licensed") == 0
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", service.port)
    await grant(redis_server.url, tmp_path, SERIAL, ["modbus"])
    await asyncio.wait_for(service.state.opened.wait(), 10)
    modbus = await client(service)
    try:
        assert (await holding(modbus, NATIVE_BASE, 2)) == [1, 1]
        assert _sample("hanport_modbus_licensed") == 1
        await revoke(redis_server.url, ["modbus"])
        await asyncio.wait_for(service.state.closed.wait(), 10)
        assert _sample("hanport_modbus_licensed") == 0
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", service.port)
        assert not modbus.connected  # connected clients were dropped too
    finally:
        modbus.close()


async def test_a_busy_port_is_retried_until_free(start_modbus: StartModbus) -> None:
    from tests.servers import free_port

    port = free_port()
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    busy = _LogEvent("cannot listen")
    logging.getLogger("services.modbus").addHandler(busy)
    task = asyncio.create_task(start_modbus(modbus_port=port))
    try:
        await asyncio.wait_for(busy.seen.wait(), 10)
        assert not task.done()
    finally:
        squatter.close()
        logging.getLogger("services.modbus").removeHandler(busy)
    service = await asyncio.wait_for(task, 20)
    modbus = await client(service)
    assert (await holding(modbus, NATIVE_BASE, 1)) == [1]
    modbus.close()


def _sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_count_requests_exceptions_clients_and_age(start_modbus: StartModbus) -> None:
    service = await start_modbus()
    await service.publish(import_reading(received=int((time.time() - 2) * 1000)))
    ok = ("hanport_modbus_requests_total", {"function": "read_input_registers", "result": "ok"})
    bad = {"function": "read_holding_registers", "result": "illegal_address"}
    before = (
        _sample(ok[0], **ok[1]),
        _sample(ok[0], **bad),
        _sample("hanport_modbus_exceptions_total", code="0x02"),
    )
    modbus = await client(service)
    try:
        assert _sample("hanport_modbus_clients") >= 1
        for _ in range(3):
            await modbus.read_input_registers(0, count=2, device_id=1)
        await modbus.read_holding_registers(5, count=2, device_id=1)
        after = (
            _sample(ok[0], **ok[1]),
            _sample(ok[0], **bad),
            _sample("hanport_modbus_exceptions_total", code="0x02"),
        )
        assert [a - b for a, b in zip(after, before, strict=True)] == [3, 1, 1]
        assert 2 <= _sample("hanport_modbus_data_age_seconds") < 30
        assert _sample("hanport_modbus_licensed") == 1
    finally:
        modbus.close()


async def test_survives_a_redis_restart(start_modbus: StartModbus, redis_server) -> None:
    service = await start_modbus()
    await service.publish(import_reading())
    redis_server.restart()
    reading = export_reading()
    await service.publish(reading)
    modbus = await client(service)
    try:
        response = await modbus.read_input_registers(0x34, count=2, device_id=1)
        assert same(floats(response.registers), [reading.p[0]])
    finally:
        modbus.close()


async def test_a_burst_is_served_as_its_newest_reading(start_modbus: StartModbus) -> None:
    """500 readings XADDed in one pipeline (several XREADs' worth): the registers then hold the
    last one."""
    service = await start_modbus()
    modbus = await client(service)
    base = int(time.time() * 1000)
    readings = [import_reading(ts=base + n, p=[float(n), 0.0, 0.0, 0.0]) for n in range(500)]
    try:
        pipe = service.stream.redis.pipeline(transaction=False)
        for reading in readings:
            pipe.xadd(service.settings.stream, {b"reading": encode_reading(reading)})
        await pipe.execute()
        await asyncio.wait_for(
            service.store.until(lambda: service.store.reading == readings[-1]), 10
        )
        sdm = floats((await modbus.read_input_registers(0, count=0x50, device_id=1)).registers)
        assert sdm[0x34 // 2] == 499.0
        native = await holding(modbus, NATIVE_BASE, 70)
        assert number(native[4:8], U64) == base + 499
    finally:
        modbus.close()
