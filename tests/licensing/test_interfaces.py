"""End to end, as deployed: the real licensing service (`python -m services.licensing`) and a
real interface service in their own processes, a real redis-server, real HTTP and Modbus clients.
An interface starts and stops serving as a license is installed over the API, expires, and is
removed, with no restart."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from shared.entitlements import CHANNEL, Record, encode_record, record_key
from shared.license import now_ms
from shared.reading import Reading
from shared.stream import ReadingStream, connect
from tests.licensing_helpers import issue, make_keys
from tests.servers import RedisServer, free_port, wait_for_port

SERIAL = "HPTEST0001"
TOKEN = "e2e-admin-token-0001"
ROOT = Path(__file__).resolve().parents[2]
LIMIT = 5.0  # the issue: start/stop within 5 s
SLACK = 3.0  # process scheduling on a shared 2-core machine


class Processes:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, module: str, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("HANPORT_")}
        log = open(self.tmp_path / f"{module}.log", "ab")  # noqa: SIM115 - kept by the child
        proc = subprocess.Popen(
            [sys.executable, "-m", module],
            env={**clean, "PYTHONPATH": str(ROOT), "HANPORT_LOG_FORMAT": "text", **env},
            cwd=self.tmp_path,  # no stray .env
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        try:
            wait_for_port(port, timeout=20)
        except TimeoutError:
            proc.kill()
            raise AssertionError((self.tmp_path / f"{module}.log").read_text()) from None
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop()


async def eventually(check: Callable[[], Awaitable[bool]], within: float) -> float:
    """Poll `check` (across a process boundary there is no event to await) until it holds;
    returns the seconds it took."""
    start = asyncio.get_running_loop().time()
    while True:
        if await check():
            return asyncio.get_running_loop().time() - start
        if asyncio.get_running_loop().time() - start > within:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(0.05)


def licensing_env(
    redis_url: str, public: Path, tmp_path: Path, use: str, port: int
) -> dict[str, str]:
    return {
        "HANPORT_REDIS_URL": redis_url,
        "HANPORT_SERIAL": SERIAL,
        "HANPORT_USE": use,
        "HANPORT_LICENSE_PUBLIC_KEYS": str(public),
        "HANPORT_LICENSE_DIR": str(tmp_path / "licenses"),
        "HANPORT_ADMIN_TOKEN": TOKEN,
        "HANPORT_LICENSING_HOST": "127.0.0.1",
        "HANPORT_LICENSING_PORT": str(port),
    }


async def test_rest_in_commercial_use_follows_the_license(
    redis_server: RedisServer, processes: Processes, tmp_path: Path
) -> None:
    private, public = make_keys(tmp_path)
    lic_port, rest_port = free_port(), free_port()
    env = licensing_env(redis_server.url, public, tmp_path, "commercial", lic_port)
    licensing = processes.start("services.licensing", env, lic_port)
    rest_env = {
        **{
            k: env[k]
            for k in (
                "HANPORT_REDIS_URL",
                "HANPORT_SERIAL",
                "HANPORT_USE",
                "HANPORT_LICENSE_PUBLIC_KEYS",
            )
        },
        "HANPORT_REST_HOST": "127.0.0.1",
        "HANPORT_REST_PORT": str(rest_port),
        "HANPORT_REST_STALE_AFTER": "600",
    }
    processes.start("services.rest", rest_env, rest_port)
    redis = await connect(redis_server.url)
    await ReadingStream(redis, "hanport:readings").add(
        Reading(ts=now_ms(), received=now_ms(), p=[1500.0, None, None, None])
    )
    await redis.aclose()

    lic = httpx.AsyncClient(base_url=f"http://127.0.0.1:{lic_port}", timeout=5)
    rest = httpx.AsyncClient(base_url=f"http://127.0.0.1:{rest_port}", timeout=5)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def serving() -> bool:
        return (await rest.get("/meter")).status_code == 200

    async def refused() -> bool:
        return (await rest.get("/meter")).status_code == 403

    try:
        await eventually(refused, 10)
        body = (await rest.get("/meter")).json()
        assert body["error"] == "unlicensed" and body["feature"] == "rest"

        # a record written into Redis by hand: REST verifies it, refuses it, stays closed
        forged = Record(feature="rest", granted=True, reason="by hand", license_id="L-forged")
        redis = await connect(redis_server.url)
        await redis.set(record_key("rest"), encode_record(forged))
        await redis.publish(CHANNEL, "rest")
        await redis.aclose()

        async def rest_refused_the_record() -> bool:
            text = (await rest.get("/metrics")).text
            return 'hanport_entitlement_refused_total{reason="malformed"} 1.0' in text

        await eventually(rest_refused_the_record, 10)
        assert await refused()
        assert "commercial license grants 'rest'" in body["message"] or "rest" in body["message"]

        # a full license that runs out on its own a few seconds from now
        expires = now_ms() + 4000
        text = issue(
            private, serial=SERIAL, features=["rest"], use="commercial", expires_ms=expires
        )
        response = await lic.put("/license", content=text, headers=auth)
        assert response.status_code == 201, response.text
        assert await eventually(serving, LIMIT + SLACK) < LIMIT + SLACK
        assert (await rest.get("/meter")).json()["p"][0] == 1500.0

        await eventually(refused, (expires - now_ms()) / 1000 + LIMIT + SLACK)
        assert now_ms() - (expires - expires % 1000) < (LIMIT + SLACK) * 1000
        assert "expired" in (await rest.get("/meter")).json()["message"]

        # a perpetual one, then removed over the API
        text = issue(private, serial=SERIAL, features=["rest"], use="commercial")
        response = await lic.put("/license", content=text, headers=auth)
        assert response.status_code == 201, response.text
        license_id = response.json()["installed"]["id"]
        await eventually(serving, LIMIT + SLACK)

        # the licensing service dies: REST keeps the verified license; it comes back with it
        licensing.kill()
        licensing.wait(timeout=10)
        assert await serving()
        processes.start("services.licensing", env, lic_port)
        assert await serving()
        assert (await lic.get("/license")).json()["features"]["rest"]["granted"] is True
        assert (await lic.delete(f"/license/{license_id}", headers=auth)).status_code == 200
        await eventually(refused, LIMIT + SLACK)

        state = (await lic.get("/license")).json()
        assert state["serial"] == SERIAL and state["use"] == "commercial"
        assert state["features"]["rest"]["granted"] is False
        assert (await lic.get("/healthz")).status_code == 200
        metrics = (await lic.get("/metrics")).text
        assert 'hanport_license_feature_granted{feature="rest"} 0.0' in metrics
        assert "hanport_license_refused_total" in metrics
    finally:
        await lic.aclose()
        await rest.aclose()


async def test_modbus_port_opens_and_closes_with_the_activation(
    redis_server: RedisServer, processes: Processes, tmp_path: Path
) -> None:
    private, public = make_keys(tmp_path)
    lic_port, modbus_port = free_port(), free_port()
    env = licensing_env(redis_server.url, public, tmp_path, "consumer", lic_port)
    processes.start("services.licensing", env, lic_port)
    modbus_env = {
        **{
            k: env[k]
            for k in (
                "HANPORT_REDIS_URL",
                "HANPORT_SERIAL",
                "HANPORT_USE",
                "HANPORT_LICENSE_PUBLIC_KEYS",
            )
        },
        "HANPORT_MODBUS_HOST": "127.0.0.1",
        "HANPORT_MODBUS_PORT": str(modbus_port),
        "HANPORT_METRICS_PORT": "0",
    }
    processes.start("services.modbus", modbus_env, lic_port)  # its port stays closed: wait on ours

    async def port_open() -> bool:
        client = AsyncModbusTcpClient("127.0.0.1", port=modbus_port, timeout=1, retries=0)
        try:
            if not await client.connect():
                return False
            result = await client.read_holding_registers(40000, count=2)
            return not result.isError() and result.registers == [0x5375, 0x6E53]  # "SunS"
        except ModbusException:  # the server went away mid-request: not serving
            return False
        finally:
            client.close()

    async def port_closed() -> bool:
        return not await port_open()

    lic = httpx.AsyncClient(base_url=f"http://127.0.0.1:{lic_port}", timeout=5)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        assert await port_closed()
        text = issue(private, serial=SERIAL, features=["mqtt", "modbus"])
        response = await lic.put("/license", content=text, headers=auth)
        assert response.status_code == 201, response.text
        assert await eventually(port_open, LIMIT + SLACK) < LIMIT + SLACK
        license_id = response.json()["installed"]["id"]
        assert (await lic.delete(f"/license/{license_id}", headers=auth)).status_code == 200
        assert await eventually(port_closed, LIMIT + SLACK) < LIMIT + SLACK
    finally:
        await lic.aclose()


def test_service_refuses_to_start_with_unusable_keys(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HANPORT_")}
    missing = tmp_path / "no-such-keys"
    result = subprocess.run(
        [sys.executable, "-m", "services.licensing"],
        env={**clean, "PYTHONPATH": str(ROOT), "HANPORT_LICENSE_PUBLIC_KEYS": str(missing)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert f"public key file or folder {missing} does not exist" in result.stderr
    assert "HANPORT_LICENSE_PUBLIC_KEYS" in result.stderr


def test_service_refuses_to_start_with_a_short_admin_token(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HANPORT_")}
    result = subprocess.run(
        [sys.executable, "-m", "services.licensing"],
        env={**clean, "PYTHONPATH": str(ROOT), "HANPORT_ADMIN_TOKEN": "short-token"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "has 11 characters; use at least 16" in result.stderr
    assert "short-token" not in result.stderr
