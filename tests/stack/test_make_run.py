"""`make run` (services/run.py) as a user runs it on a machine where other software already runs:
the whole stack as local processes with a Redis of its own (its data kept in a folder of its
own), live simulated data on REST, a /metrics port per service, the real ports in the
where-to-look lines, and a clean stop of everything on Ctrl-C."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis

from tests.servers import RedisServer, free_port, wait_for_port_closed
from tests.stack.compose import ROOT

SERVICES = ("ingest", "licensing", "rest", "mqtt", "modbus")
METRICS = ("ingest", "mqtt", "modbus")


def user_environment(home: Path) -> dict[str, str]:
    """The test's environment without any HANPORT_* variable, data under `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANPORT_")}
    env.update(PYTHONPATH=str(ROOT), XDG_DATA_HOME=str(home / "data"))
    return env


def moved_ports() -> dict[str, int]:
    """Every port `make run` listens on, moved to a free one (the defaults may be taken on a
    test machine)."""
    names = ["HANPORT_REST_PORT", "HANPORT_LICENSING_PORT", "HANPORT_MODBUS_PORT"]
    names += [f"HANPORT_{name.upper()}_METRICS_PORT" for name in METRICS]
    return {name: free_port() for name in names}


@contextmanager
def make_run(env: dict[str, str], cwd: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`python -m services.run` in its own process group (as a terminal's foreground job), its
    output in cwd/run.log; killed if the test did not stop it."""
    log_path = cwd / "run.log"
    with log_path.open("w+b") as output:
        run = subprocess.Popen(
            [sys.executable, "-m", "services.run"],
            cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            yield run, log_path
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()


def first_reading(port: int, run: subprocess.Popen[bytes], log: Path) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and run.poll() is None:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/meter", timeout=2)
            if response.status_code == 200:
                return dict(response.json())
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"no reading on REST from make run:\n{log.read_text()}")


def wait_for_text(log: Path, text: str, run: subprocess.Popen[bytes], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while text not in (written := log.read_text()):
        assert run.poll() is None and time.monotonic() < deadline, f"no {text!r}:\n{written}"
        time.sleep(0.1)
    return written


def first_entry_id(client: redis.Redis) -> bytes:
    entries = client.xrange("hanport:readings", count=1)
    assert isinstance(entries, list) and entries, entries
    entry_id = entries[0][0]
    assert isinstance(entry_id, bytes)
    return entry_id


def ctrl_c(run: subprocess.Popen[bytes], log: Path) -> str:
    os.killpg(run.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
    assert run.wait(timeout=30) == 0, log.read_text()
    return log.read_text()


def test_make_run_uses_its_own_redis_and_keeps_its_data(tmp_path: Path) -> None:
    ports = moved_ports()
    env = user_environment(tmp_path)
    env.update({name: str(port) for name, port in ports.items()})
    # the line `.env.example` offers: one metrics port for every service
    (tmp_path / ".env").write_text(f"HANPORT_METRICS_PORT={free_port()}\n")

    with make_run(env, tmp_path) as (run, log):
        meter = first_reading(ports["HANPORT_REST_PORT"], run, log)
        assert meter["type"] == "HAN_METER_MESSAGE"
        text = wait_for_text(log, "Ctrl-C stops everything.", run)
        for name in SERVICES:
            assert f"hanport run: started {name} (pid " in text, text
        assert "would give every service the same port; each gets its own instead" in text
        own = re.search(r"started redis-server on port (\d+) \(data in (.+)\)", text)
        assert own is not None, text
        redis_port, folder = int(own.group(1)), Path(own.group(2))
        assert redis_port != 6379 and folder == tmp_path / "data" / "hanport" / "redis"

        # the where-to-look lines name the ports this run uses
        rest, licensing = ports["HANPORT_REST_PORT"], ports["HANPORT_LICENSING_PORT"]
        assert f"live page:       http://localhost:{rest}/\n" in text
        assert f"curl -s localhost:{licensing}/license" in text
        assert f"mbpoll -m tcp -p {ports['HANPORT_MODBUS_PORT']} " in text
        assert f"redis-cli -u redis://127.0.0.1:{redis_port}/0 XREVRANGE hanport:readings" in text
        assert "localhost:8080" not in text and "-p 5020 " not in text

        # each service with a /metrics port of its own answers there (none crashed on a clash)
        for name in METRICS:
            port = ports[f"HANPORT_{name.upper()}_METRICS_PORT"]
            assert f"curl -s localhost:{port}/metrics | grep hanport_{name}" in text
            body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            assert "hanport_redis_connected" in body, (name, body[:500])

        # the readings are in the redis-server this run started, which keeps them in its folder
        client = redis.Redis(port=redis_port)
        info = client.info("server")
        parent = Path(f"/proc/{info['process_id']}/stat").read_text().split(") ")[1].split()[1]
        assert int(parent) == run.pid
        assert client.config_get("dir")["dir"] == str(folder)
        first_id = first_entry_id(client)
        client.close()

        text = ctrl_c(run, log)
        assert "hanport run: stopping" in text and "Traceback" not in text
        for port in [*ports.values(), redis_port]:
            wait_for_port_closed(port, timeout=10)

    # a second run finds the first run's readings
    with make_run(env, tmp_path) as (run, log):
        first_reading(ports["HANPORT_REST_PORT"], run, log)
        own = re.search(r"started redis-server on port (\d+)", log.read_text())
        assert own is not None
        client = redis.Redis(port=int(own.group(1)))
        assert first_entry_id(client) == first_id
        # its Redis going away stops the run, saying so
        client.shutdown()
        client.close()
        assert run.wait(timeout=30) == 1
        text = log.read_text()
        assert "hanport run: redis-server exited with status 0; stopping" in text, text
        for port in ports.values():
            wait_for_port_closed(port, timeout=10)


def test_make_run_uses_the_redis_in_hanport_redis_url(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    ports = moved_ports()
    env = user_environment(tmp_path)
    env.update({name: str(port) for name, port in ports.items()})
    env["HANPORT_REDIS_URL"] = redis_server.url
    with make_run(env, tmp_path) as (run, log):
        first_reading(ports["HANPORT_REST_PORT"], run, log)
        text = wait_for_text(log, "Ctrl-C stops everything.", run)
        assert f"hanport run: using the Redis at {redis_server.url}\n" in text
        assert "started redis-server" not in text
        client = redis.Redis(port=redis_server.port)
        assert client.xlen("hanport:readings") > 0
        client.close()
        ctrl_c(run, log)


class Terminal:
    """A pseudo-terminal: what `make run` writes to it, and keys typed into it."""

    def __init__(self) -> None:
        self.controller, self.terminal = pty.openpty()
        self.output = b""

    def become_controlling(self) -> None:
        """In the child, after setsid: this terminal is its controlling terminal, so Ctrl-C
        typed into it interrupts the child's whole process group, as in a shell."""
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    def read_until(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.controller], [], [], max(0, left))
            if not ready:
                raise AssertionError(f"no {text!r} after {timeout} s:\n{self.text()}")
            try:
                chunk = os.read(self.controller, 65536)
            except OSError:  # every process closed the terminal (Linux reports EIO)
                chunk = b""
            if not chunk:
                raise AssertionError(f"the terminal closed before {text!r}:\n{self.text()}")
            self.output += chunk
        return self.text()

    def text(self) -> str:
        return self.output.decode(errors="replace").replace("\r\n", "\n")


def test_make_run_in_a_terminal_stops_on_ctrl_c(tmp_path: Path) -> None:
    ports = moved_ports()
    env = user_environment(tmp_path)
    env.update({name: str(port) for name, port in ports.items()}, TERM="xterm")
    screen = Terminal()
    run = subprocess.Popen(
        [sys.executable, "-m", "services.run"],
        cwd=tmp_path, env=env, stdin=screen.terminal, stdout=screen.terminal,
        stderr=screen.terminal, start_new_session=True, preexec_fn=screen.become_controlling,
    )  # fmt: skip
    os.close(screen.terminal)
    try:
        text = screen.read_until("Ctrl-C stops everything.")
        rest = ports["HANPORT_REST_PORT"]
        assert f"  live page:       http://localhost:{rest}/\n" in text
        first_reading(rest, run, tmp_path / "none.log")
        # at a terminal the services log plain text lines, not JSON
        text = screen.read_until("Uvicorn running on")
        assert not any(line.startswith("{") for line in text.splitlines()), text

        os.write(screen.controller, b"\x03")  # Ctrl-C
        text = screen.read_until("hanport run: stopping")
        assert run.wait(timeout=30) == 0, screen.text()
        for port in ports.values():
            wait_for_port_closed(port, timeout=10)
        assert "Traceback" not in screen.text(), screen.text()
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        os.close(screen.controller)


def test_make_run_meters_2_reads_a_second_simulated_meter(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    ports = moved_ports()
    env = user_environment(tmp_path)
    env.update({name: str(port) for name, port in ports.items()})
    env.update(HANPORT_REDIS_URL=redis_server.url, HANPORT_RUN_METERS="2")
    with make_run(env, tmp_path) as (run, log):
        first_reading(ports["HANPORT_REST_PORT"], run, log)
        text = wait_for_text(log, "Ctrl-C stops everything.", run)
        assert "hanport run: started ingest of meter sim2 (pid " in text, text
        client = redis.Redis(port=redis_server.port)
        deadline = time.monotonic() + 30
        while client.xlen("hanport:{sim2}:readings") == 0:
            assert time.monotonic() < deadline and run.poll() is None, log.read_text()
            time.sleep(0.1)
        assert client.xlen("hanport:readings") > 0  # the first meter, as with one
        assert client.hget("hanport:meters", "sim2") is not None
        client.close()
        text = ctrl_c(run, log)
        assert "Traceback" not in text
