"""deploy/: the broker profile's mosquitto refuses anonymous clients and accepts the configured
user (run for real with its start script and config), and the systemd units verify."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from redis.asyncio import Redis

from shared.reading import cozify_message
from shared.stream import ReadingStream
from tests.readings import simulated_readings
from tests.servers import RedisServer, free_port, wait_for_port
from tests.stack.compose import ROOT, resolved_config, service_specs
from tests.stack.processes import Stack

MOSQUITTO = ROOT / "deploy" / "mosquitto"


def _mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if found is None or shutil.which("mosquitto_sub") is None:
        pytest.skip("mosquitto / mosquitto-clients are not installed (.ci/run installs them)")
    return found


def _broker_env(tmp_path: Path, port: int, password: str) -> dict[str, str]:
    """Run deploy/mosquitto as compose would, with its paths moved into tmp_path."""
    config = (MOSQUITTO / "mosquitto.conf").read_text()
    config = config.replace("listener 1883", f"listener {port} 127.0.0.1")
    config = config.replace("/mosquitto/data", str(tmp_path))
    if os.geteuid() == 0:  # the container runs it as uid 1883; as root it would switch user
        config += "user root\n"
    (tmp_path / "mosquitto.conf").write_text(config)
    binary_dir = str(Path(_mosquitto_binary()).parent)
    return {
        "PATH": f"{binary_dir}:{os.environ['PATH']}",
        "MQTT_USERNAME": "hanport",
        "MQTT_PASSWORD": password,
        "MOSQUITTO_DATA": str(tmp_path),
        "MOSQUITTO_CONFIG": str(tmp_path / "mosquitto.conf"),
    }


def _sub(port: int, *auth: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "$SYS/broker/uptime",
         "-C", "1", "-W", "5", *auth],
        capture_output=True, text=True, timeout=15,
    )  # fmt: skip


def test_broker_profile_requires_a_password(tmp_path: Path) -> None:
    env = _broker_env(tmp_path, free_port(), password="")
    result = subprocess.run(
        ["sh", str(MOSQUITTO / "start.sh")], env=env, capture_output=True, text=True, timeout=15
    )
    assert result.returncode == 1
    assert "set HANPORT_MQTT_PASSWORD" in result.stderr


def test_broker_profile_refuses_anonymous_and_accepts_the_user(tmp_path: Path) -> None:
    port = free_port()
    env = _broker_env(tmp_path, port, password="s3cret-pass")
    log = open(tmp_path / "broker.log", "wb")  # noqa: SIM115 - closed below
    broker = subprocess.Popen(
        ["sh", str(MOSQUITTO / "start.sh")], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port)
        anonymous = _sub(port)
        assert anonymous.returncode != 0
        assert "not authorised" in (anonymous.stderr + anonymous.stdout).lower()
        wrong = _sub(port, "-u", "hanport", "-P", "wrong")
        assert wrong.returncode != 0
        right = _sub(port, "-u", "hanport", "-P", "s3cret-pass")
        assert right.returncode == 0, right.stderr
        assert right.stdout.strip().split()[0].isdigit()  # "$SYS/broker/uptime": "N seconds"
        assert "s3cret-pass" not in (tmp_path / "passwd").read_text()  # stored hashed
    finally:
        broker.terminate()
        broker.wait(timeout=10)
        log.close()


def test_systemd_units_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    units = tmp_path / "units"
    shutil.copytree(ROOT / "deploy" / "systemd", units)
    hanport = Path(sys.executable).parent / "hanport"
    for unit in units.rglob("*"):
        if unit.is_file() and unit.suffix in (".service", ".target", ".conf"):
            unit.write_text(unit.read_text().replace("/opt/hanport/bin/hanport", str(hanport)))
    names = ["hanport.target", *(f"hanport@{s}.service" for s in ("ingest", "modbus", "rest"))]
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        capture_output=True, text=True, timeout=60, cwd=units,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"},
    )  # fmt: skip
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "hanport" in line and "redis-server.service" not in line
    ]
    assert problems == [], result.stderr
    assert result.returncode == 0, result.stderr


def start_proxy(
    caddy: str, tmp_path: Path, rest_port: int
) -> tuple[int, subprocess.Popen[bytes], IO[bytes]]:
    """caddy with deploy/proxy/Caddyfile, on a free port, in front of one local REST."""
    proxy_port = free_port()
    config = (ROOT / "deploy" / "proxy" / "Caddyfile").read_text()
    config = config.replace("http://:8080 {", f"http://127.0.0.1:{proxy_port} {{")
    config = config.replace("dynamic a rest 8080", f"dynamic a 127.0.0.1 {rest_port}")
    (tmp_path / "Caddyfile").write_text(config)
    log = open(tmp_path / "caddy.log", "wb")  # noqa: SIM115 - the caller closes it
    proxy = subprocess.Popen(
        [caddy, "run", "--config", str(tmp_path / "Caddyfile"), "--adapter", "caddyfile"],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path),
             "XDG_CONFIG_HOME": str(tmp_path)},
    )  # fmt: skip
    return proxy_port, proxy, log


async def test_proxy_forwards_rest_and_streams_events(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """deploy/proxy/Caddyfile (the `proxy` service) in front of a real REST service: `/meter`
    answers the same through it, and server-sent events pass through unbuffered."""
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (.ci/run installs it)")
    redis = Redis.from_url(redis_server.url)
    stream = ReadingStream(redis, "hanport:readings")
    now_ms = int(time.time()) * 1000
    first, second = simulated_readings(2, start_ms=now_ms)
    await stream.add(first)
    specs = service_specs(resolved_config(tmp_path))
    stack = Stack.from_specs({"rest": specs["rest"]}, redis_server.url, tmp_path / "stack")
    rest_port = stack["rest"].port("HANPORT_REST_PORT")
    proxy_port, proxy, log = start_proxy(caddy, tmp_path, rest_port)
    try:
        stack.start_all()
        wait_for_port(proxy_port)
        async with httpx.AsyncClient(timeout=5.0) as http, asyncio.timeout(30):

            async def meter(port: int) -> Any:
                while True:  # REST loading the newest reading; the proxy's first health check
                    response = await http.get(f"http://127.0.0.1:{port}/meter")
                    if response.status_code == 200:
                        return response.json()
                    await asyncio.sleep(0.1)

            direct = await meter(rest_port)
            assert await meter(proxy_port) == direct == cozify_message(first)
            url = f"http://127.0.0.1:{proxy_port}/events"
            async with http.stream("GET", url, timeout=httpx.Timeout(5.0, read=20.0)) as events:
                assert events.headers["content-type"].startswith("text/event-stream")
                added = await stream.add(second)
                async for line in events.aiter_lines():
                    if line == f"id: {added}":
                        break  # the new reading arrived through the proxy while it streams
    except (TimeoutError, AssertionError) as error:
        caddy_log = (tmp_path / "caddy.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"{error!r}\ncaddy:\n{caddy_log}\n{stack.logs()}") from error
    finally:
        stack.stop_all()
        proxy.terminate()
        try:
            proxy.wait(timeout=10)
        finally:
            log.close()
        await redis.aclose()
