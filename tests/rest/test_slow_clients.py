"""Slow and oversized requests against `hanport rest` as a separate process on loopback: clients
that open connections and never finish a request (slowloris) are closed after
HANPORT_REST_REQUEST_TIMEOUT, a head larger than HANPORT_REST_MAX_HEAD_BYTES is answered 431,
both are counted, and streams (SSE) and ordinary requests are not affected."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import RedisServer, closed_by_server, free_port, wait_for_port

HEAD = b"GET /healthz HTTP/1.1\r\nHost: hanport\r\n"  # the blank line that ends it never comes


@pytest.fixture
def rest_port(redis_server: RedisServer, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    env = {
        **os.environ,
        "HANPORT_REDIS_URL": redis_server.url,
        "HANPORT_REST_HOST": "127.0.0.1",
        "HANPORT_REST_PORT": str(port),
        "HANPORT_REST_STARTUP_WAIT": "0",
        "HANPORT_REST_REQUEST_TIMEOUT": "1",
        "HANPORT_REST_MAX_HEAD_BYTES": "16384",
        "HANPORT_REST_KEEPALIVE": "0.5",
        "HANPORT_LOG_FORMAT": "text",
    }
    with (tmp_path / "rest.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "rest"], env=env, stderr=log, stdout=log
        )
    try:
        wait_for_port(port, 30)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def dropped(port: int, reason: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    prefix = f'hanport_http_connections_dropped_total{{reason="{reason}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def test_slowloris_connections_are_closed_after_the_request_timeout(rest_port: int) -> None:
    started = time.monotonic()
    silent = [socket.create_connection(("127.0.0.1", rest_port)) for _ in range(50)]
    slow = [socket.create_connection(("127.0.0.1", rest_port)) for _ in range(250)]
    try:
        for sock in slow:
            sock.sendall(HEAD)
        # a trickle: one more header line every 0.3 s never completes the head in time
        trickle = slow[0]
        for n in range(20):
            try:
                trickle.sendall(b"X-Slow-%d: 1\r\n" % n)
            except OSError:
                break
            time.sleep(0.3)
        deadline = time.monotonic() + 15
        assert all(closed_by_server(sock, deadline) for sock in [*silent, *slow])
        took = time.monotonic() - started
        assert dropped(rest_port, "request_timeout") == 300
        body = urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/healthz", timeout=5)
        assert body.status == 200
        print(f"300 slow connections closed {took:.2f} s after they opened")
    finally:
        for sock in [*silent, *slow]:
            sock.close()


def test_an_endless_head_is_answered_431(rest_port: int) -> None:
    with socket.create_connection(("127.0.0.1", rest_port)) as sock:
        sock.sendall(HEAD + b"X-Long: ")
        answer = b""
        try:
            for _ in range(1000):  # up to 8 MB, if nobody stopped it
                sock.sendall(b"a" * 8192)
        except OSError:
            pass  # closed by the server
        sock.settimeout(5)
        with contextlib.suppress(ConnectionResetError):  # the reset can overtake the answer
            answer = sock.recv(4096)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431 ")
    assert dropped(rest_port, "head_too_large") == 1


def test_streams_and_keep_alive_requests_outlive_the_request_timeout(rest_port: int) -> None:
    with socket.create_connection(("127.0.0.1", rest_port)) as sock:
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: hanport\r\n\r\n")
        sock.settimeout(5)
        received = b""
        opened = time.monotonic()
        while time.monotonic() - opened < 2.5:  # over twice the request timeout
            chunk = sock.recv(4096)
            assert chunk, f"the stream was closed after {time.monotonic() - opened:.1f} s"
            received += chunk
        assert received.startswith(b"HTTP/1.1 200 ")
        assert received.count(b"event: ") >= 3
    # a keep-alive connection idle for longer than the request timeout (but not the 5 s
    # keep-alive timeout) between two requests is still served
    connection = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=5)
    try:
        for _ in range(2):
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            assert response.status == 200
            response.read()
            time.sleep(1.5)
    finally:
        connection.close()
    assert dropped(rest_port, "request_timeout") == 0
