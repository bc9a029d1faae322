"""What the REST service writes to its log: no token in clear (the access log, uvicorn's
WebSocket lines), and lines a person can read at a terminal, JSON for a log collector.

`hanport rest` runs as a real process (the production entry point) on a real redis-server; the
log format is read from a real pseudo-terminal and a real pipe.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from shared.log import redact, redact_url
from tests.servers import RedisServer, free_port, running

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-Token_42"
TIMEOUT = 10.0


@pytest.mark.parametrize(
    ("logged", "shown"),
    [
        ("redis://user:secret@host:6379/0", "redis://user:***@host:6379/0"),
        ("redis://:p@ss@host/0", "redis://:***@host/0"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("/meter?access_token=abc&x=1", "/meter?access_token=***&x=1"),
        (
            "/m?token=a;key=b&apiKey=c&password=d&since=1-0&limit=5",
            "/m?token=***;key=***&apiKey=***&password=***&since=1-0&limit=5",
        ),
        ("mqtts://u:pw@broker:8883?client_secret=x", "mqtts://u:***@broker:8883?client_secret=***"),
        ('"GET /events?ACCESS_TOKEN=abc HTTP/1.1" 200', '"GET /events?ACCESS_TOKEN=*** HTTP/1.1" 200'),
        ('{"msg":"GET /x?token=abc\\" 1"}', '{"msg":"GET /x?token=***\\" 1"}'),  # inside JSON
        ("/meter/history?from=2025-11-26T10:00:00Z&to=1", "/meter/history?from=2025-11-26T10:00:00Z&to=1"),
        ("limit=5 and key words", "limit=5 and key words"),
    ],
)  # fmt: skip
def test_redact_hides_passwords_and_secret_query_values_only(logged: str, shown: str) -> None:
    assert redact(logged) == shown
    assert redact_url(logged) == shown


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def rest_env(redis_url: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANPORT_")}
    return {
        **env,
        "HANPORT_REDIS_URL": redis_url,
        "HANPORT_REST_HOST": "127.0.0.1",
        "HANPORT_REST_PORT": str(port),
        "HANPORT_REST_STARTUP_WAIT": "0",
        **extra,
    }


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_access_log_never_shows_a_token(
    redis_url: str, tmp_path: Path, log_format: str
) -> None:
    port = free_port()
    env = rest_env(
        redis_url,
        port,
        HANPORT_REST_ACCESS_LOG="true",
        HANPORT_REST_TOKENS=f"{SECRET}:read",
        HANPORT_REST_READ_AUTH="true",
        HANPORT_LOG_FORMAT=log_format,
    )
    log = tmp_path / "rest.log"
    url = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-m", "services.rest"], log, port, env=env, cwd=ROOT):
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            assert client.get(f"/meter?access_token={SECRET}").status_code == 503  # no reading
            assert client.get(f"/meter/history?access_token={SECRET}&limit=2").status_code == 200
            assert client.get(f"/meter/telegram?x=1&token={SECRET}").status_code == 401
            with client.stream("GET", f"/events?access_token={SECRET}") as events:
                assert events.status_code == 200
                next(events.iter_bytes())  # the stream is open: its line is logged at its end
        ws = f"ws://127.0.0.1:{port}/ws?access_token={SECRET}"
        with connect(ws, open_timeout=TIMEOUT) as socket:
            socket.close()
    text = log.read_text()
    assert SECRET not in text, text
    for line in (
        '"GET /meter?access_token=*** HTTP/1.1" 503',
        '"GET /meter/history?access_token=***&limit=2 HTTP/1.1" 200',
        '"GET /meter/telegram?x=1&token=*** HTTP/1.1" 401',
        '"GET /events?access_token=*** HTTP/1.1" 200',
        '"WebSocket /ws?access_token=***" [accepted]',
    ):
        assert line.replace('"', '\\"' if log_format == "json" else '"') in text, (line, text)


# A child process that starts as every service does (settings from the environment, where
# HANPORT_LOG_FORMAT is not set, so the default applies) and logs one line.
LOG_ONE_LINE = """
import logging
from services.rest.settings import RestSettings
from shared.service import start
start("rest", RestSettings, [], "REST.")
logging.getLogger("services.rest").info("REST on %s:%d", "127.0.0.1", 8080)
"""
DEFAULT_FORMAT = {k: v for k, v in os.environ.items() if k != "HANPORT_LOG_FORMAT"}
TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} rest INFO REST on 127\.0\.0\.1:8080$"
)


def test_logs_are_text_at_a_terminal(tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", LOG_ONE_LINE],
            cwd=ROOT,
            env=DEFAULT_FORMAT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=terminal,
        )
        os.close(terminal)
        output = b""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], deadline - time.monotonic())
            try:
                chunk = os.read(controller, 4096) if ready else b""
            except OSError:  # the child closed the terminal (Linux reports EIO)
                break
            if not chunk:
                break
            output += chunk
        assert child.wait(timeout=TIMEOUT) == 0
    finally:
        os.close(controller)
    lines = output.decode().replace("\r\n", "\n").strip().splitlines()
    assert len(lines) == 1 and TEXT_LINE.match(lines[0]), output


def test_logs_are_json_into_a_pipe() -> None:
    child = subprocess.run(
        [sys.executable, "-c", LOG_ONE_LINE],
        cwd=ROOT,
        env=DEFAULT_FORMAT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )
    entry = json.loads(child.stderr)
    assert entry["service"] == "rest" and entry["level"] == "info"
    assert entry["logger"] == "services.rest" and entry["msg"] == "REST on 127.0.0.1:8080"
