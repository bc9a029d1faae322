"""`hanport modbus` as the container runs it: a separate process configured by HANPORT_*
variables, with a real signed license, answering a pymodbus client and serving /metrics."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from pymodbus.client import AsyncModbusTcpClient

from services.modbus.register_map import NATIVE_BASE
from shared.stream import ReadingStream, connect
from tests.licensing_helpers import grant
from tests.modbus.conftest import SERIAL, import_reading
from tests.servers import RedisServer, free_port, wait_for_port


async def test_hanport_modbus_command_serves_the_stream(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    env = await grant(redis_server.url, tmp_path, SERIAL, ["modbus"])
    port, metrics = free_port(), free_port()
    redis = await connect(redis_server.url)
    reading = import_reading()
    await ReadingStream(redis, "hanport:readings").add(reading)
    log = tmp_path / "modbus.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            "modbus",
            env={
                **os.environ,
                **env,
                "HANPORT_MODBUS_PORT": str(port),
                "HANPORT_MODBUS_HOST": "127.0.0.1",
                "HANPORT_METRICS_PORT": str(metrics),
            },
            stderr=stderr,
        )
    try:
        await asyncio.to_thread(wait_for_port, port, 20)
        modbus = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
        assert await modbus.connect()
        response = await modbus.read_holding_registers(NATIVE_BASE, count=8, device_id=1)
        modbus.close()
        assert response.registers[:2] == [1, 1]
        assert (
            AsyncModbusTcpClient.convert_from_registers(
                response.registers[4:8], AsyncModbusTcpClient.DATATYPE.UINT64
            )
            == reading.ts
        )
        text = await asyncio.to_thread(
            lambda: (
                urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5)
                .read()
                .decode()
            )
        )
        assert (
            'hanport_modbus_requests_total{function="read_holding_registers",result="ok"} 1.0'
            in text
        )
        assert "hanport_modbus_licensed 1.0" in text
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), 10)
        await redis.aclose()
    assert process.returncode == 0, log.read_text()[-2000:]


def test_bad_setting_is_one_clear_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.modbus"],
        env={**os.environ, "HANPORT_MODBUS_SUNSPEC_MODEL": "999"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "HANPORT_MODBUS_SUNSPEC_MODEL='999'" in result.stderr
    assert "Traceback" not in result.stderr
