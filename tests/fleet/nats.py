"""Real nats-server processes for the fleet tests: a single hub node, a 3-node JetStream cluster,
a box's spool, each on free loopback ports with its own store folder; stop, SIGKILL, start
again with the same data. Operator mode (JWT) when given a `Fleet`'s server lines."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.servers import free_port, wait_for_port, wait_for_port_closed


def nats_binary() -> str:
    found = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None
    )
    if found is None:
        pytest.skip("nats-server is not installed (.ci/run installs it)")
    return found


class NatsServer:
    def __init__(self, workdir: Path, name: str = "n1", extra: str = "") -> None:
        self.binary = nats_binary()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = free_port()
        self.cluster_port: int | None = None
        self.routes: list[int] = []
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def config(self) -> str:
        lines = [
            f"server_name: {self.name}",
            f"listen: 127.0.0.1:{self.port}",
            f"jetstream {{ store_dir: {self.workdir / 'js'} }}",
        ]
        if self.cluster_port is not None:
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.routes)
            lines.append(
                f"cluster {{ name: hub, listen: 127.0.0.1:{self.cluster_port}, routes: [{routes}] }}"
            )
        return "\n".join(lines) + "\n" + self.extra

    def start(self) -> None:
        conf = self.workdir / "nats.conf"
        conf.write_text(self.config())
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - kept open by the child
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(conf)], cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
        )
        wait_for_port(self.port)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)
        self.proc = None
        wait_for_port_closed(self.port)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def cluster(workdir: Path, size: int = 3, extra: str = "") -> list[NatsServer]:
    nodes = [NatsServer(workdir / f"n{i + 1}", f"n{i + 1}", extra) for i in range(size)]
    ports = [free_port() for _ in nodes]
    for node, port in zip(nodes, ports, strict=True):
        node.cluster_port = port
        node.routes = [p for p in ports if p != port]
    return nodes
