"""Real servers for integration tests: redis-server and mosquitto on free ports, each in its own
temporary folder, that a test can stop (gracefully or with SIGKILL) and start again on the same
port with the same data. Used through the fixtures in conftest.py."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Ports handed out by free_port(): below the kernel's ephemeral range (32768-60999), where the
# client side of every connection takes its port, and one block per pytest-xdist worker, so a
# port given to a test is not taken by another worker or by an outgoing connection before the
# server the test starts binds it (the race a port from bind(0) has).
PORT_BLOCK = 5000
FIRST_PORT = 12000


def _worker_ports() -> Iterator[int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1"...; "" without xdist
    index = int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0
    first = FIRST_PORT + (index % 4) * PORT_BLOCK
    # from a random place in the block: two test runs at once on one machine (two checkouts)
    # then rarely want the same port at the same moment
    start = random.randrange(PORT_BLOCK)
    while True:
        for step in range(PORT_BLOCK):
            yield first + (start + step) % PORT_BLOCK


_PORTS = _worker_ports()


def free_port() -> int:
    """A loopback port nothing listens on, from this worker's own block."""
    for port in _PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("unreachable: the port blocks cycle")


def closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """Whether the server closes `sock` before `deadline` (monotonic): EOF or reset."""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(4096):
                return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
    return False


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


def wait_for_port_closed(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                time.sleep(0.02)
        except OSError:
            return
    raise TimeoutError(f"port {port} still open after {timeout} s")


@contextlib.contextmanager
def running(
    command: list[str],
    log: Path,
    port: int,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 30.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """A process, its output in `log`, listening on `port` before the body runs; terminated
    and reaped after it."""
    with log.open("ab") as out:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, timeout=timeout)
            yield proc
        finally:
            proc.terminate()
            proc.wait(timeout=10)


class Server:
    """A server process on a fixed port that can be stopped and started again."""

    binary = ""

    def __init__(self, workdir: Path) -> None:
        if shutil.which(self.binary) is None:
            pytest.skip(f"{self.binary} is not installed (.ci/run installs it)")
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - kept open by the child
        self.proc = subprocess.Popen(
            self.command(), cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
        )
        wait_for_port(self.port)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None
        wait_for_port_closed(self.port)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()


class RedisServer(Server):
    """redis-server with append-only persistence, so a restart keeps the stream."""

    binary = "redis-server"

    def command(self) -> list[str]:
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--protected-mode", "no",
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class MosquittoServer(Server):
    """mosquitto with a generated config; `extra_config` lines (TLS, password file) can be set
    before `start`. Persistence is on so persistent sessions survive a restart."""

    binary = "mosquitto"

    def __init__(self, workdir: Path) -> None:
        if shutil.which(self.binary) is None and os.path.exists("/usr/sbin/mosquitto"):
            self.binary = "/usr/sbin/mosquitto"
        super().__init__(workdir)
        self.extra_config: list[str] = []
        self.anonymous = True

    def command(self) -> list[str]:
        config = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if self.anonymous else 'false'}",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "max_queued_messages 100000",
            "autosave_interval 1",
            *self.extra_config,
        ]
        config.write_text("\n".join(lines) + "\n")
        return [self.binary, "-c", str(config)]

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"
