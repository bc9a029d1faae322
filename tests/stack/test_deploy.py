"""deploy/: the broker profile's mosquitto refuses anonymous clients and accepts the configured
user (run for real with its start script and config), and the systemd units verify."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import free_port, wait_for_port
from tests.stack.compose import ROOT

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
