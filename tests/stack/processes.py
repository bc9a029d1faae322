"""The hanport stack as local processes, started exactly as compose.yaml starts the containers.

Consumes the resolved compose configuration (tests/stack/compose.py) plus the addresses of a
test's own redis-server and mosquitto; produces running `hanport <service>` processes that can be
killed (SIGKILL) and started again with the same command and environment. Only the in-container
addresses compose fixes (Redis URL, listen hosts, ports, the license folder) are replaced: by the
test's Redis, 127.0.0.1, free ports and a temporary folder. Everything else is what compose passes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import free_port, wait_for_port
from tests.stack.compose import ServiceSpec

HANPORT = Path(sys.executable).parent / "hanport"

# the port each service can be waited on (after the overrides): its HTTP port or its metrics port
READY_PORT = {
    "ingest": "HANPORT_METRICS_PORT",
    "rest": "HANPORT_REST_PORT",
    "mqtt": "HANPORT_METRICS_PORT",
    "modbus": "HANPORT_METRICS_PORT",
    "licensing": "HANPORT_LICENSING_PORT",
    "accounting": "HANPORT_METRICS_PORT",
}


def local_environment(spec: ServiceSpec, redis_url: str, workdir: Path) -> dict[str, str]:
    """The service's compose environment with the container-only values made local."""
    env: dict[str, str] = {}
    for variable, value in spec.environment.items():
        if variable == "HANPORT_REDIS_URL":
            value = redis_url
        elif variable.endswith("_PORT"):
            value = str(free_port())
        elif variable.endswith("_HOST"):
            value = "127.0.0.1"
        elif variable == "HANPORT_LICENSE_DIR":
            value = str(workdir / "licenses")
        env[variable] = value
    return env


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def port(self, variable: str) -> int:
        return int(self.env[variable])

    def start(self) -> None:
        # a clean environment: no HANPORT_* of the developer's shell, and a working directory
        # without a `.env` file, so only what compose gives reaches the service
        base = {k: v for k, v in os.environ.items() if not k.startswith("HANPORT_")}
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open by the child
        log.write(f"---- start {self.starts + 1}: {' '.join(self.argv)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            self.argv,
            env={**base, **self.env},
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.starts += 1

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the service listens on its ready port; fails at once if the process exits."""
        port = self.port(READY_PORT[self.name])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                wait_for_port(port, timeout=0.2)
                return
            except TimeoutError:
                continue
        raise AssertionError(f"{self.name} did not listen on {port}:\n{self.log_tail()}")

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass
class Stack:
    services: dict[str, Service] = field(default_factory=dict)

    @classmethod
    def from_specs(cls, specs: dict[str, ServiceSpec], redis_url: str, workdir: Path) -> Stack:
        workdir.mkdir(parents=True, exist_ok=True)
        stack = cls()
        for name, spec in specs.items():
            assert spec.command[0] == "hanport", spec.command
            stack.services[name] = Service(
                name=name,
                argv=[str(HANPORT), *spec.command[1:]],
                env=local_environment(spec, redis_url, workdir),
                workdir=workdir,
            )
        return stack

    def __getitem__(self, name: str) -> Service:
        return self.services[name]

    def start_all(self) -> None:
        """Start every service and wait until each listens; on a failure, stop them all."""
        try:
            for service in self.services.values():
                service.start()
            for service in self.services.values():
                service.wait_ready()
        except BaseException:
            self.stop_all()
            raise

    def stop_all(self) -> None:
        for service in self.services.values():
            service.stop()

    def logs(self) -> str:
        return "\n".join(
            f"==== {name}\n{service.log_tail()}" for name, service in self.services.items()
        )
