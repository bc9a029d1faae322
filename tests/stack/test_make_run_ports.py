"""`make run` next to other software: a port something else listens on (a listening socket the
test opens) stops it before anything starts, with one line naming the variable that moves the
port and a free port to move it to; two services wanting one port, and a bad port value, too.
Plus the pure port planning of services/run.py."""

from __future__ import annotations

import errno
import fcntl
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from services.run import REFUSALS, Port, RunSettings, metrics_ports, port_problems, why_not
from shared.settings import load_settings
from tests.stack.test_make_run import moved_ports, user_environment

VARIABLES = {
    "HANPORT_REST_PORT": "rest",
    "HANPORT_LICENSING_PORT": "licensing",
    "HANPORT_MODBUS_PORT": "modbus",
    "HANPORT_INGEST_METRICS_PORT": "ingest",
    "HANPORT_MQTT_METRICS_PORT": "mqtt",
    "HANPORT_MODBUS_METRICS_PORT": "modbus",
}


def run_once(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.run"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("variable", VARIABLES)
def test_a_taken_port_is_named_with_the_variable_that_moves_it(
    tmp_path: Path, variable: str
) -> None:
    ports = moved_ports()
    env = user_environment(tmp_path)
    env.update({name: str(port) for name, port in ports.items()})
    with socket.socket() as other_software:
        other_software.bind(("127.0.0.1", ports[variable]))
        other_software.listen()
        result = run_once(env, tmp_path)
    lines = (result.stdout + result.stderr).splitlines()
    assert result.returncode == 2, lines
    taken = ports[variable]
    start = f"hanport run: port {taken} ({VARIABLES[variable]}) is taken: set {variable}="
    assert len(lines) == 2 and lines[0].startswith(start), lines
    assert lines[1] == "hanport run: nothing started"
    suggested = int(lines[0].removeprefix(start))
    assert suggested > taken and suggested not in ports.values()
    assert why_not("0.0.0.0", suggested) is None
    assert not (tmp_path / "data").exists()  # no Redis was started


def test_two_services_on_one_port_are_named(tmp_path: Path) -> None:
    ports = moved_ports()
    ports["HANPORT_MODBUS_METRICS_PORT"] = ports["HANPORT_MQTT_METRICS_PORT"]
    env = user_environment(tmp_path)
    env.update({name: str(port) for name, port in ports.items()})
    result = run_once(env, tmp_path)
    port = ports["HANPORT_MQTT_METRICS_PORT"]
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"hanport run: port {port} is wanted by both mqtt (HANPORT_MQTT_METRICS_PORT) and "
        "modbus (HANPORT_MODBUS_METRICS_PORT): set HANPORT_MODBUS_METRICS_PORT="
    ), result.stderr


def test_a_bad_port_value_is_one_line(tmp_path: Path) -> None:
    env = user_environment(tmp_path)
    env["HANPORT_MQTT_METRICS_PORT"] = "99999"
    result = run_once(env, tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("hanport: bad setting HANPORT_MQTT_METRICS_PORT='99999'")
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""


def test_port_problems_suggest_the_next_free_port() -> None:
    taken = {8080, 8081}
    ports = [
        Port("rest", "HANPORT_REST_PORT", "0.0.0.0", 8080),
        Port("ingest", "HANPORT_INGEST_METRICS_PORT", "0.0.0.0", 8082),
        Port("mqtt", "HANPORT_MQTT_METRICS_PORT", "0.0.0.0", 9102),
    ]
    problems = port_problems(
        ports, lambda _host, port: REFUSALS[errno.EADDRINUSE] if port in taken else None
    )
    # 8081 is taken and 8082 is ingest's: REST goes to 8083
    assert problems == ["port 8080 (rest) is taken: set HANPORT_REST_PORT=8083"]
    assert port_problems(ports[1:], lambda _host, _port: None) == []


def test_a_port_on_an_address_of_another_machine_is_one_line(tmp_path: Path) -> None:
    env = user_environment(tmp_path)
    env.update({name: str(port) for name, port in moved_ports().items()})
    env["HANPORT_REST_HOST"] = "192.0.2.1"  # TEST-NET-1: never an address of this machine
    result = run_once(env, tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0].endswith(
        "(rest) cannot be opened: its address is not this machine's: set HANPORT_REST_HOST to "
        "one of this machine's addresses (0.0.0.0: every one)"
    ), result.stderr
    assert "Traceback" not in result.stderr


def test_metrics_ports_one_per_service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    defaults = {"ingest": 9101, "mqtt": 9102, "modbus": 9103}
    for name in [*VARIABLES, "HANPORT_METRICS_PORT"]:
        monkeypatch.delenv(name, raising=False)
    assert metrics_ports(load_settings(RunSettings), defaults) == defaults
    monkeypatch.setenv("HANPORT_METRICS_PORT", "9200")  # one value for all: not used
    monkeypatch.setenv("HANPORT_MQTT_METRICS_PORT", "9300")
    assert metrics_ports(load_settings(RunSettings), defaults) == {
        "ingest": 9101,
        "mqtt": 9300,
        "modbus": 9103,
    }
    monkeypatch.setenv("HANPORT_METRICS_PORT", "0")  # 0 still turns them all off
    assert metrics_ports(load_settings(RunSettings), defaults) == {
        "ingest": 0,
        "mqtt": 9300,
        "modbus": 0,
    }


def test_a_second_make_run_on_the_same_data_is_one_line(tmp_path: Path) -> None:
    env = user_environment(tmp_path)
    env.update({name: str(port) for name, port in moved_ports().items()})
    folder = tmp_path / "data" / "hanport" / "redis"
    folder.mkdir(parents=True)
    with (folder / "run.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as the first `make run` holds it
        result = run_once(env, tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        f"hanport run: another `make run` uses {folder}; stop it first "
        "(or give this one its own folder with XDG_DATA_HOME)\n"
    )
