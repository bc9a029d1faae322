"""Starting and stopping a service process: a taken port is one line naming the variable that
moves it, exit 2, never a server library's traceback (REST, licensing: their HTTP port; ingest:
/metrics); SIGTERM ends an HTTP service with status 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import RedisServer, free_port, running

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port this test listens on."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@pytest.mark.parametrize(
    ("service", "variables", "named"),
    [
        ("rest", {"HANPORT_REST_HOST": "127.0.0.1"}, "HANPORT_REST_PORT"),
        ("licensing", {"HANPORT_LICENSING_HOST": "127.0.0.1"}, "HANPORT_LICENSING_PORT"),
        ("ingest", {"HANPORT_SOURCE": "simulator"}, "HANPORT_METRICS_PORT"),
    ],
)
def test_a_taken_port_is_one_line_naming_the_variable(
    taken: int, tmp_path: Path, service: str, variables: dict[str, str], named: str
) -> None:
    env = {
        **os.environ,
        **variables,
        named: str(taken),
        "HANPORT_REDIS_URL": "redis://127.0.0.1:1/0",  # never reached: the port check comes first
        "HANPORT_LICENSE_DIR": str(tmp_path),
    }
    child = subprocess.run(
        [sys.executable, "-m", f"services.{service}"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert child.returncode == 2, child.stderr
    problem = [line for line in child.stderr.splitlines() if line.startswith("hanport:")]
    assert problem == [
        f"hanport: cannot listen on 127.0.0.1:{taken} (Address already in use): "
        f"set {named} to a free port"
    ] or problem == [
        f"hanport: cannot serve /metrics on 127.0.0.1:{taken} (Address already in use): "
        f"set {named} to a free port (0 turns /metrics off)"
    ], child.stderr
    assert "Traceback" not in child.stderr


@pytest.mark.parametrize(
    ("service", "port_variable"),
    [("rest", "HANPORT_REST_PORT"), ("licensing", "HANPORT_LICENSING_PORT")],
)
def test_an_http_service_stopped_by_sigterm_exits_0(
    redis_server: RedisServer, tmp_path: Path, service: str, port_variable: str
) -> None:
    """uvicorn raises the stop signal again once it has shut down: the process still ends with
    status 0 (it was 143), so systemd and Docker see a clean stop."""
    port = free_port()
    env = {
        **os.environ,
        port_variable: str(port),
        "HANPORT_REDIS_URL": redis_server.url,
        "HANPORT_LICENSE_DIR": str(tmp_path / "licenses"),
        "HANPORT_SERIAL": "HPSTOP0001",
        "HANPORT_ADMIN_TOKEN": "a-long-enough-admin-token-for-tests",
    }
    with running(
        [sys.executable, "-m", f"services.{service}"], tmp_path / "log", port, env=env, cwd=ROOT
    ) as process:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, (tmp_path / "log").read_text()
