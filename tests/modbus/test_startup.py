"""Start-up against a Redis that answers with an error: `hanport modbus` (a real process) waits,
logging one line per attempt without the password, and serves once Redis lets it in.

Redis refuses it here because the service's user may not run commands yet (NOPERM, an ACL the
operator has not finished); the operator then grants them at runtime (ACL SETUSER). Before,
such an error reply (like DENIED from a Redis in protected mode, which cannot be provoked over
loopback) ended the service at once, and its restart policy started it again in a loop.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from pymodbus.client import AsyncModbusTcpClient
from redis.asyncio import Redis

from shared.stream import ReadingStream
from tests.licensing_helpers import grant
from tests.mqtt.support import eventually
from tests.servers import RedisServer, free_port, wait_for_port

from .conftest import SERIAL, import_reading
from .test_server import floats, same

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "admin-only"
SERVICE_USER, SERVICE_PASSWORD = "modbus", "not-in-any-log"
RETRY_LINE = "does not answer yet"


class PasswordRedis(RedisServer):
    def command(self) -> list[str]:
        return [*super().command(), "--requirepass", ADMIN_PASSWORD]


def lines_with(log: Path, text: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if text in line]


def start_modbus(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.modbus"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_start_up_waits_out_a_redis_error_then_serves(tmp_path: Path) -> None:
    server = PasswordRedis(tmp_path / "redis")
    server.start()
    admin_url = f"redis://:{ADMIN_PASSWORD}@127.0.0.1:{server.port}/0"
    admin = Redis.from_url(admin_url)
    log = tmp_path / "modbus.log"
    try:
        env = await grant(admin_url, tmp_path, SERIAL, ["modbus"])
        reading = import_reading()
        await ReadingStream(admin, "hanport:readings").add(reading)
        port = free_port()
        # the user exists, with its password, but may run no command yet
        await admin.acl_setuser(SERVICE_USER, enabled=True, passwords=[f"+{SERVICE_PASSWORD}"])
        env |= {
            "HANPORT_REDIS_URL": (
                f"redis://{SERVICE_USER}:{SERVICE_PASSWORD}@127.0.0.1:{server.port}/0"
            ),
            "HANPORT_MODBUS_HOST": "127.0.0.1",
            "HANPORT_MODBUS_PORT": str(port),
            "HANPORT_METRICS_PORT": "0",
            "HANPORT_LOG_FORMAT": "text",
        }
        proc = start_modbus(env, log)
        try:
            # another process writes the log: look at it until two attempts failed
            retries = await eventually(
                lambda: lines_with(log, RETRY_LINE)[1:] and lines_with(log, RETRY_LINE)
            )
            assert proc.poll() is None  # waiting, not exiting
            assert "NoPermissionError" in retries[0] and f"{SERVICE_USER}:***@" in retries[0]
            assert not lines_with(log, SERVICE_PASSWORD)

            await admin.acl_setuser(
                SERVICE_USER, enabled=True, commands=["+@all"], keys=["*"], channels=["*"]
            )
            await asyncio.to_thread(wait_for_port, port, 30)
            modbus = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
            assert await modbus.connect()
            try:
                response = await modbus.read_input_registers(0, count=6, device_id=1)
                assert same(floats(response.registers), reading.u)  # SDM630 voltages
            finally:
                modbus.close()
            assert proc.poll() is None
        finally:
            proc.terminate()
            assert proc.wait(timeout=15) == 0
    finally:
        await admin.aclose()
        server.stop()
