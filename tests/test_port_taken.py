"""A port that is taken stops a service with one line naming the variable that moves it, exit 2,
never a server library's traceback (REST, licensing: their HTTP port; ingest: /metrics)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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
