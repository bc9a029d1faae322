"""`make run` (= python -m services.run): hanport on this machine, no containers needed.

Consumes the same `HANPORT_*` settings as the services; starts a local `redis-server` when
nothing answers on `HANPORT_REDIS_URL` (a local address), then every service in `SERVICES` as a
child process, prints where to look, and stops them all (and that Redis) on Ctrl-C or SIGTERM.
With no meter configured the ingest service runs the built-in simulator, so data flows at once.

Adding a service: one `Service` line in `SERVICES`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from types import FrameType
from urllib.parse import urlsplit

from shared.log import redact_url
from shared.settings import CommonSettings, load_settings

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "")
LOCAL_LICENCES = os.path.join(
    os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "hanport", "licences"
)
# licences and the reader serial: kept across runs, beside the user's other data
LICENCES = os.environ.get("HANPORT_LICENSE_DIR", LOCAL_LICENCES)
STOP_SECONDS = 10.0


@dataclass(frozen=True)
class Service:
    """One child process: `python -m <module>` with extra environment, and what to tell the
    user about it once it runs."""

    name: str
    module: str
    env: dict[str, str] = field(default_factory=dict)
    look: tuple[str, ...] = ()


SERVICES: list[Service] = [
    Service(
        "ingest",
        "services.ingest",
        look=(
            "latest reading:  redis-cli XREVRANGE hanport:readings + - COUNT 1",
            "ingest metrics:  curl -s localhost:9101/metrics | grep hanport_ingest",
        ),
    ),
    Service(
        "licensing",
        "services.licensing",
        look=("licences:        curl -s localhost:8090/license   (install: docs/licensing.md)",),
    ),
    Service(
        "rest",
        "services.rest",
        look=(
            "live page:       http://localhost:8080/",
            "latest reading:  curl -s localhost:8080/meter",
            "events:          curl -sN localhost:8080/events",
        ),
    ),
    Service(
        "mqtt",
        "services.mqtt",
        look=(
            "MQTT:            mosquitto_sub -t 'hanport/+/data' -v   (set HANPORT_MQTT_URL; "
            "needs a licence)",
        ),
    ),
    Service(
        "modbus",
        "services.modbus",
        look=(
            "Modbus TCP:      mbpoll -m tcp -p 5020 -a 1 -0 -r 0 -c 9 -t 3:float -B -1 localhost"
            "   (needs a licence)",
        ),
    ),
]


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def start_redis(port: int) -> tuple[subprocess.Popen[bytes], str]:
    """A throw-away redis-server on `port` (no persistence), waited for until it answers."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit(
            "hanport run: no Redis answers and redis-server is not installed "
            "(apt-get install redis-server, or set HANPORT_REDIS_URL)"
        )
    workdir = tempfile.mkdtemp(prefix="hanport-redis-")
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not reachable("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"hanport run: redis-server did not start on port {port}")
        time.sleep(0.05)
    return proc, workdir


def stop(procs: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    """SIGTERM to each child, newest first; SIGKILL to any still running after STOP_SECONDS."""
    for _name, proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for name, proc in reversed(procs):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"hanport run: {name} did not stop; killing it", file=sys.stderr)
            proc.kill()
            proc.wait()


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    settings = load_settings(CommonSettings)
    url = urlsplit(settings.redis_url)
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    signal.signal(signal.SIGTERM, _terminate)
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    redis: tuple[subprocess.Popen[bytes], str] | None = None
    status = 0
    try:
        if reachable(host, port):
            print(f"hanport run: using the Redis at {redact_url(settings.redis_url)}")
        elif host in LOCAL_HOSTS:
            redis = start_redis(port)
            print(f"hanport run: started redis-server on port {port} (data not kept)")
        else:
            print(
                f"hanport run: {redact_url(settings.redis_url)} does not answer yet; "
                "the services will keep retrying"
            )
        os.makedirs(LICENCES, exist_ok=True)  # so no service takes the serial from Redis
        for service in SERVICES:
            # every service reads the serial where licensing keeps it (docs/licensing.md)
            env = {"HANPORT_LICENSE_DIR": LICENCES, **os.environ, **service.env}
            command = [sys.executable, "-m", service.module]
            children.append((service.name, subprocess.Popen(command, env=env)))
            print(f"hanport run: started {service.name} (pid {children[-1][1].pid})")
        print("\nWhere to look:")
        for service in SERVICES:
            for line in service.look:
                print(f"  {line}")
        print("\nCtrl-C stops everything.\n", flush=True)
        while True:
            for name, proc in children:
                code = proc.poll()
                if code is not None:
                    print(f"hanport run: {name} exited with status {code}; stopping", flush=True)
                    return code or 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nhanport run: stopping", flush=True)
    finally:
        stop(children)
        if redis is not None:
            stop([("redis-server", redis[0])])
            shutil.rmtree(redis[1], ignore_errors=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
