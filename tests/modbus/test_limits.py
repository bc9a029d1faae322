"""Attacks on the Modbus TCP front door, against a real server process on loopback
(tests/modbus/serve_limited.py): a client that pipelines reads and never reads the answers, idle
and trickling connections, and more connections than the server allows. Each must be bounded,
dropped or refused, and the server must go on answering other clients."""

from __future__ import annotations

import os
import resource
import select
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import closed_by_server, free_port

FULL_READ = 125  # registers: the largest read, answered with 259 bytes
ANSWER = 9 + 2 * FULL_READ


def read_request(tid: int, address: int = 0, count: int = FULL_READ, function: int = 4) -> bytes:
    return struct.pack(">HHHBBHH", tid & 0xFFFF, 0, 6, 1, function, address, count)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int

    def status(self, field: str) -> float:
        """A /proc/<pid>/status field in MB (VmRSS: now, VmHWM: the peak)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        raise KeyError(field)

    def wait_until_idle(self, timeout: float = 30.0) -> None:
        """Until the process has used no CPU for 0.5 s: it did all it would with its input."""
        deadline = time.monotonic() + timeout
        used = -1
        while time.monotonic() < deadline:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            now = int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
            if now == used:
                return
            used = now
            time.sleep(0.5)
        raise TimeoutError(f"the server still works after {timeout} s")

    def metric(self, name: str) -> float:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def answers(self) -> bool:
        """A fresh client's full read is answered (within 5 s)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(read_request(7))
            return recv_exactly(sock, ANSWER)[:2] == b"\x00\x07"


StartServer = Callable[..., Server]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """`start_server(nofile=None, **settings)`: the server process with HANPORT_* settings."""
    started: list[Server] = []

    def start(nofile: int | None = None, **settings: str) -> Server:
        port, metrics_port = free_port(), free_port()
        env = {
            **os.environ,
            "HANPORT_MODBUS_HOST": "127.0.0.1",
            "HANPORT_MODBUS_PORT": str(port),
            "HANPORT_METRICS_PORT": str(metrics_port),
            "HANPORT_MODBUS_STALE_AFTER": "3600",
            "HANPORT_LOG_FORMAT": "text",
            **{f"HANPORT_{key.upper()}": value for key, value in settings.items()},
        }

        def limit_files() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        log = (tmp_path / f"modbus-{port}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.modbus.serve_limited"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            preexec_fn=limit_files,
        )
        server = Server(process, port, metrics_port)
        started.append(server)
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready and process.stdout.readline() == b"listening\n", log.name
        return server

    yield start
    for server in started:
        server.process.terminate()
        server.process.wait(10)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(min(size - len(data), 1 << 20))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


def test_a_client_that_never_reads_its_answers_costs_bounded_memory(
    start_server: StartServer,
) -> None:
    server = start_server(modbus_idle_timeout="30")
    assert server.answers()
    before = server.status("VmRSS")
    requests = 50_000  # 13 MB of answers: 61 MB more RSS if the server buffered them
    packet = b"".join(read_request(tid) for tid in range(1000))
    with socket.create_connection(("127.0.0.1", server.port)) as greedy:
        greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        greedy.settimeout(2)  # no room for 2 s: the server stopped reading this client
        sent = 0
        try:
            while sent < requests * 12:
                offset = sent % len(packet)
                sent += greedy.send(packet[offset:])
        except TimeoutError:
            pass
        server.wait_until_idle()  # unbounded, it would have answered all of them by now
        during = server.status("VmRSS")
        assert server.answers()  # other clients are still served
        # the answers of everything sent arrive, complete and in order, once the client reads
        greedy.settimeout(30)
        frames = sent // 12
        data = recv_exactly(greedy, frames * ANSWER)
    tids = [struct.unpack_from(">H", data, i * ANSWER)[0] for i in range(frames)]
    assert tids == [i % 1000 for i in range(frames)]
    peak = server.status("VmHWM")
    print(
        f"sent {frames} requests; RSS {before:.1f} MB before, {during:.1f} MB while stalled, "
        f"peak {peak:.1f} MB"
    )
    assert peak - before < 16, (before, during, peak)


def test_idle_trickling_and_surplus_connections_are_dropped(start_server: StartServer) -> None:
    # 64 file descriptors: without a cap, 200 connections would exhaust them
    server = start_server(nofile=64, modbus_max_clients="8", modbus_idle_timeout="1")
    started = time.monotonic()
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(6)]
    half = socket.create_connection(("127.0.0.1", server.port))
    half.sendall(read_request(1)[:5])  # a header that never completes
    trickle = socket.create_connection(("127.0.0.1", server.port))
    extra: list[socket.socket] = []
    try:
        # 200 more, one after the other (the attacker keeps them open): each is closed at once
        for _ in range(200):
            extra.append(socket.create_connection(("127.0.0.1", server.port)))
            assert closed_by_server(extra[-1], time.monotonic() + 10)
        assert server.metric("hanport_modbus_connections_refused_total") == 200
        assert server.metric("hanport_modbus_clients") == 8
        # one byte of a request every 0.3 s: the request never completes within the timeout
        for byte in read_request(2):
            try:
                trickle.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if closed_by_server_now(trickle):
                break
            time.sleep(0.3)
        deadline = time.monotonic() + 10
        assert all(closed_by_server(sock, deadline) for sock in [*held, half, trickle])
        took = time.monotonic() - started
        assert server.metric("hanport_modbus_connections_timed_out_total") == 8
        assert server.metric("hanport_modbus_clients") == 0
        assert server.answers()
        print(f"8 idle or trickling connections dropped {took:.2f} s after they opened")
    finally:
        for sock in [*held, half, trickle, *extra]:
            sock.close()


def closed_by_server_now(sock: socket.socket) -> bool:
    ready, _, _ = select.select([sock], [], [], 0)
    return bool(ready) and closed_by_server(sock, time.monotonic() + 0.1)
