"""`make run` (= python -m services.run): hanport on this machine, no containers needed.

Consumes the same `HANPORT_*` settings as the services (environment or `.env`). Unless
`HANPORT_REDIS_URL` is set, it starts a redis-server of its own on a free loopback port, with its
data (and so the reader's serial) kept in a folder of its own, so it never writes into another
program's Redis. It checks every port a service will listen on before starting anything and
names the variable that moves a taken one; gives each service with a /metrics port of its own
(`SERVICES`, `metrics=True`) its own port; then starts every service in `SERVICES` as a child
process, prints where to look with the real ports, and stops them all (and its Redis) on Ctrl-C
or SIGTERM. With no meter configured the ingest service runs the built-in simulator.

Adding a service: one `Service` line in `SERVICES`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO
from urllib.parse import urlsplit

from pydantic import Field

from services.config_doc import settings_classes
from shared.log import redact_url
from shared.settings import ENV_PREFIX, CommonSettings, load_settings

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "")
DATA_HOME = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "hanport"
STOP_SECONDS = 10.0
READY_SECONDS = 30.0
PORT_SEARCH = 100  # how far above a taken port to look for a free one to suggest


@dataclass(frozen=True)
class Service:
    """One child process: `python -m <module>`; the settings fields of the ports it listens on
    (`<x>_port`, its address in `<x>_host`); whether it serves /metrics on a port of its own;
    what to tell the user once it runs (`{name}` fields filled in by `look_values`; a line
    naming a port that is off is left out); and which of its ports stay closed until a license
    allows them."""

    name: str
    module: str
    ports: tuple[str, ...] = ()
    metrics: bool = False
    look: tuple[str, ...] = ()
    opened_when_licensed: tuple[str, ...] = ()


SERVICES: list[Service] = [
    Service(
        "ingest",
        "services.ingest",
        metrics=True,
        look=(
            "latest reading:  redis-cli {redis_cli} XREVRANGE {stream} + - COUNT 1",
            "ingest metrics:  curl -s localhost:{ingest_metrics_port}/metrics | grep hanport_ingest",
        ),
    ),
    Service(
        "licensing",
        "services.licensing",
        ports=("licensing_port",),
        look=(
            "licenses:        curl -s localhost:{licensing_port}/license"
            "   (install: docs/licensing.md)",
        ),
    ),
    Service(
        "rest",
        "services.rest",
        ports=("rest_port",),
        look=(
            "live page:       http://localhost:{rest_port}/",
            "latest reading:  curl -s localhost:{rest_port}/meter",
            "events:          curl -sN localhost:{rest_port}/events",
        ),
    ),
    Service(
        "mqtt",
        "services.mqtt",
        metrics=True,
        look=(
            "MQTT:            {mqtt}",
            "mqtt metrics:    curl -s localhost:{mqtt_metrics_port}/metrics | grep hanport_mqtt",
        ),
    ),
    Service(
        "modbus",
        "services.modbus",
        ports=("modbus_port",),
        opened_when_licensed=("modbus_port",),
        metrics=True,
        look=(
            "Modbus TCP:      mbpoll -m tcp -p {modbus_port} -a 1 -0 -r 0 -c 9 -t 3:float -B -1 "
            "localhost   (needs a license)",
            "modbus metrics:  curl -s localhost:{modbus_metrics_port}/metrics | grep hanport_modbus",
        ),
    ),
]


class RunSettings(CommonSettings):
    """`make run`'s own settings: one /metrics port per service. (`HANPORT_METRICS_PORT` is one
    value for every service, so three services on one machine would share it.)"""

    ingest_metrics_port: int | None = Field(
        None, ge=0, le=65535, description="`make run`: ingest's /metrics port (default 9101)."
    )
    mqtt_metrics_port: int | None = Field(
        None, ge=0, le=65535, description="`make run`: mqtt's /metrics port (default 9102)."
    )
    modbus_metrics_port: int | None = Field(
        None, ge=0, le=65535, description="`make run`: modbus's /metrics port (default 9103)."
    )
    run_meters: int = Field(
        1,
        ge=1,
        le=20,
        description="`make run`: how many meters to read; each one past the first is another "
        "ingest on the built-in simulator, named `sim2`, `sim3`, ... (`make run METERS=2`).",
    )


def extra_meters(count: int) -> list[dict[str, str]]:
    """The settings of each ingest `make run` starts past the first: a simulated meter with a
    name of its own and no /metrics port (the first ingest's port is taken)."""
    return [
        {
            "HANPORT_METER_NAME": f"sim{n}",
            "HANPORT_SOURCE": "simulator",
            "HANPORT_METRICS_PORT": "0",
        }
        for n in range(2, count + 1)
    ]


@dataclass(frozen=True)
class Port:
    """A port one service will listen on, and the variable that moves it."""

    service: str
    variable: str
    host: str
    number: int
    licensed: bool = False  # opened only once a license allows it


def variable(field: str) -> str:
    return f"{ENV_PREFIX}{field}".upper()


def metrics_ports(run: RunSettings, defaults: dict[str, int]) -> dict[str, int]:
    """Service name -> its /metrics port: `HANPORT_<NAME>_METRICS_PORT`, else 0 for every
    service when `HANPORT_METRICS_PORT=0`, else the service's own default."""
    all_off = "metrics_port" in run.model_fields_set and run.metrics_port == 0
    ports = {}
    for name, default in defaults.items():
        own: int | None = getattr(run, f"{name}_metrics_port")
        ports[name] = own if own is not None else 0 if all_off else default
    return ports


def planned_ports(settings: dict[str, CommonSettings], metrics: dict[str, int]) -> list[Port]:
    """Every port the services will listen on (0: off, left out), in `SERVICES` order."""
    ports = []
    for service in SERVICES:
        chosen = settings[service.name]
        for field in service.ports:
            host = str(getattr(chosen, field.replace("_port", "_host"), "0.0.0.0"))
            number = int(getattr(chosen, field))
            licensed = field in service.opened_when_licensed
            ports.append(Port(service.name, variable(field), host, number, licensed))
        if service.metrics and metrics[service.name]:
            # prometheus_client's start_http_server listens on every address
            name = variable(f"{service.name}_metrics_port")
            ports.append(Port(service.name, name, "0.0.0.0", metrics[service.name]))
    return ports


@dataclass(frozen=True)
class Refusal:
    """Why a port cannot be listened on, and whether moving the port helps (else the address
    is wrong)."""

    reason: str
    move_port: bool = True


REFUSALS = {
    errno.EADDRINUSE: Refusal("is taken"),
    errno.EACCES: Refusal("needs root (ports below 1024)"),
    errno.EADDRNOTAVAIL: Refusal("cannot be opened: its address is not this machine's", False),
}


def why_not(host: str, port: int) -> Refusal | None:
    """Why a server could not listen on host:port now (None: it could). SO_REUSEADDR, as
    uvicorn and prometheus_client set it, so a port a stopped run left in TIME_WAIT is free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return REFUSALS.get(error.errno or 0, Refusal(f"cannot be opened ({error.strerror})"))
    return None


def port_problems(ports: list[Port], refused: Callable[[str, int], Refusal | None]) -> list[str]:
    """One line per port that cannot be had (taken by other software, wanted twice, or on an
    address not this machine's), each naming the variable to change and, for a port, a free
    one to move it to."""
    wanted = {port.number for port in ports}
    problems = []
    seen: dict[int, Port] = {}

    def suggestion(port: Port) -> str:
        for candidate in range(port.number + 1, min(port.number + PORT_SEARCH, 65536)):
            if candidate not in wanted and refused(port.host, candidate) is None:
                wanted.add(candidate)
                return f"set {port.variable}={candidate}"
        return f"set {port.variable} to a free port"

    def fix(port: Port, refusal: Refusal) -> str:
        if refusal.move_port:
            return suggestion(port)
        host = port.variable.removesuffix("_PORT") + "_HOST"
        return f"set {host} to one of this machine's addresses (0.0.0.0: every one)"

    for port in ports:
        if port.number in seen:
            first = seen[port.number]
            problems.append(
                f"port {port.number} is wanted by both {first.service} ({first.variable}) and "
                f"{port.service} ({port.variable}): {suggestion(port)}"
            )
        elif (refusal := refused(port.host, port.number)) is not None:
            problems.append(
                f"port {port.number} ({port.service}) {refusal.reason}: {fix(port, refusal)}"
            )
        seen.setdefault(port.number, port)
    return problems


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def data_folder(path: Path) -> Iterator[Path]:
    """`path`, created, held with a lock so that a second `make run` does not open the same
    Redis data; exits with one line if another run holds it."""
    path.mkdir(parents=True, exist_ok=True)
    lock: IO[str] = (path / "run.lock").open("w")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(
                f"hanport run: another `make run` uses {path}; stop it first "
                "(or give this one its own folder with XDG_DATA_HOME)"
            ) from None
        yield path
    finally:
        lock.close()


def start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    """redis-server on 127.0.0.1:`port`, appending to a log in `folder` (synced each second,
    as in compose.yaml), waited for until it answers."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit(
            "hanport run: redis-server is not installed "
            "(apt-get install redis-server, or set HANPORT_REDIS_URL to a Redis you have)"
        )
    command = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
        "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
    ]  # fmt: skip
    log = (folder / "redis.log").open("ab")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, process_group=0)
    log.close()
    deadline = time.monotonic() + 10
    while not reachable("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop([("redis-server", proc)])
            raise SystemExit(
                f"hanport run: redis-server did not start on port {port} "
                f"(its log: {folder / 'redis.log'})"
            )
        time.sleep(0.05)
    return proc


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


def mqtt_look(mqtt: CommonSettings) -> str:
    """The mosquitto_sub line that shows what the bridge publishes (no password printed)."""
    mqtt_url = getattr(mqtt, "mqtt_url", None)
    if not mqtt_url:
        return "off (set HANPORT_MQTT_URL to your broker; needs a license)"
    url = urlsplit(mqtt_url)
    port = url.port or (8883 if url.scheme == "mqtts" else 1883)
    user = getattr(mqtt, "mqtt_username", None)
    login = f" -u {user} -P <password>" if user else ""
    tls = " --capath /etc/ssl/certs" if url.scheme == "mqtts" else ""
    return (
        f"mosquitto_sub -h {url.hostname} -p {port}{login}{tls} -t 'hanport/+/data' -v"
        "   (needs a license)"
    )


def look_values(
    settings: dict[str, CommonSettings], metrics: dict[str, int], redis_url: str
) -> dict[str, object]:
    """What the `look` lines name: the real ports (an off metrics port is left out)."""
    values: dict[str, object] = {
        "redis_cli": f"-u {redact_url(redis_url)}",
        "stream": settings["ingest"].stream,
        "mqtt": mqtt_look(settings["mqtt"]),
    }
    for service in SERVICES:
        for field in service.ports:
            values[field] = getattr(settings[service.name], field)
        if metrics.get(service.name):
            values[f"{service.name}_metrics_port"] = metrics[service.name]
    return values


def where_to_look(values: dict[str, object]) -> list[str]:
    lines = []
    for service in SERVICES:
        for template in service.look:
            try:
                lines.append(template.format(**values))
            except KeyError:  # names a port that is off
                continue
    return lines


def exit_status(children: list[tuple[str, subprocess.Popen[bytes]]]) -> int | None:
    """None while every child runs; else says which one exited and returns a failing status."""
    for name, proc in children:
        code = proc.poll()
        if code is not None:
            print(f"hanport run: {name} exited with status {code}; stopping", flush=True)
            return code or 1
    return None


def wait_until_listening(
    ports: list[Port], children: list[tuple[str, subprocess.Popen[bytes]]]
) -> int | None:
    """Wait (at most READY_SECONDS) until every port answers, so that the where-to-look lines
    come after the services' start-up log lines; a child's exit status if one exits first."""
    deadline = time.monotonic() + READY_SECONDS
    waiting = [port for port in ports if not port.licensed]
    while waiting and time.monotonic() < deadline:
        exited = exit_status(children)
        if exited is not None:
            return exited
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}
        waiting = [p for p in waiting if not reachable(host.get(p.host, p.host), p.number, 0.2)]
        if waiting:
            time.sleep(0.1)
    return None


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    run_settings = load_settings(RunSettings)
    classes = settings_classes()
    settings = {service.name: load_settings(classes[service.name]) for service in SERVICES}
    defaults = {
        service.name: int(classes[service.name].model_fields["metrics_port"].default)
        for service in SERVICES
        if service.metrics
    }
    metrics = metrics_ports(run_settings, defaults)
    ports = planned_ports(settings, metrics)
    problems = port_problems(ports, why_not)
    if problems:
        for problem in problems:
            print(f"hanport run: {problem}", file=sys.stderr)
        print("hanport run: nothing started", file=sys.stderr)
        return 2
    if "metrics_port" in run_settings.model_fields_set and run_settings.metrics_port:
        print(
            f"hanport run: HANPORT_METRICS_PORT={run_settings.metrics_port} would give every "
            "service the same port; each gets its own instead (moved with "
            + ", ".join(variable(f"{name}_metrics_port") for name in metrics)
            + ")"
        )
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)  # the terminal closed: stop the children too
    with data_folder(DATA_HOME / "redis") as folder:
        return run_stack(run_settings, settings, metrics, ports, folder)


def run_stack(
    run_settings: RunSettings,
    settings: dict[str, CommonSettings],
    metrics: dict[str, int],
    ports: list[Port],
    folder: Path,
) -> int:
    """Redis (its own, or the configured one), then every service, until Ctrl-C or a child
    exits."""
    redis_url = run_settings.redis_url
    url = urlsplit(redis_url)
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    redis: subprocess.Popen[bytes] | None = None
    try:
        if "redis_url" not in run_settings.model_fields_set:
            port = free_loopback_port()
            redis_url = f"redis://127.0.0.1:{port}/0"
            redis = start_redis(port, folder)
            print(
                f"hanport run: started redis-server on port {port} (data in {folder})", flush=True
            )
        elif reachable(host, port):
            print(f"hanport run: using the Redis at {redact_url(redis_url)}")
        elif host in LOCAL_HOSTS:
            redis = start_redis(port, folder)
            print(
                f"hanport run: started redis-server on port {port} (data in {folder})", flush=True
            )
        else:
            print(
                f"hanport run: {redact_url(redis_url)} does not answer yet; "
                "the services will keep retrying"
            )
        licensing = settings["licensing"]
        licenses = str(
            licensing.license_dir
            if "license_dir" in licensing.model_fields_set
            else DATA_HOME / "licenses"
        )
        os.makedirs(licenses, exist_ok=True)  # so no service takes the serial from Redis
        for service in SERVICES:
            # every service reads the serial where licensing keeps it (docs/licensing.md);
            # licenses and the generated serial are kept across runs, beside the user's data
            env = {**os.environ, "HANPORT_REDIS_URL": redis_url, "HANPORT_LICENSE_DIR": licenses}
            if service.metrics:
                env["HANPORT_METRICS_PORT"] = str(metrics[service.name])
            command = [sys.executable, "-m", service.module]
            # a process group of its own: Ctrl-C reaches only this run, which then stops every
            # child in order (a child that saw Ctrl-C too could exit first and look like a crash)
            child = subprocess.Popen(command, env=env, process_group=0)
            children.append((service.name, child))
            print(f"hanport run: started {service.name} (pid {children[-1][1].pid})", flush=True)
            for extra in extra_meters(run_settings.run_meters) if service.name == "ingest" else ():
                meter = extra["HANPORT_METER_NAME"]
                child = subprocess.Popen(command, env={**env, **extra}, process_group=0)
                children.append((f"ingest {meter}", child))
                print(f"hanport run: started ingest of meter {meter} (pid {child.pid})", flush=True)
        watched = children + ([("redis-server", redis)] if redis is not None else [])
        exited = wait_until_listening(ports, watched)
        if exited is not None:
            return exited
        print("\nWhere to look:")
        for line in where_to_look(look_values(settings, metrics, redis_url)):
            print(f"  {line}")
        print("\nCtrl-C stops everything.\n", flush=True)
        while (exited := exit_status(watched)) is None:
            time.sleep(0.5)
        return exited
    except KeyboardInterrupt:
        print("\nhanport run: stopping", flush=True)
    finally:
        stop(children)
        if redis is not None:
            stop([("redis-server", redis)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
