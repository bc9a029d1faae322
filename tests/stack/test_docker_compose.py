"""`docker compose up`, the README's first command, for real: a Docker engine of the test's own
(tests/stack/docker_engine.py), stand-in base images built from Debian packages
(deploy/images/), hanport's image built from the Dockerfile, and compose.yaml itself, unchanged,
configured only through an env file as a user's `.env`.

One thing compose.yaml cannot take from an env file is the vendor's public license key: every
hanport service verifies licenses with `HANPORT_LICENSE_PUBLIC_KEYS`, a path inside the
container, and the image ships no key. The test mounts its own key folder into the hanport
services with an override file, as a user's `compose.override.yaml` would.

The tests run in file order on one compose project; each brings up what it needs with
`up -d --wait` (which only changes what differs), so each also passes alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
import yaml
from pymodbus.client import AsyncModbusTcpClient

from tests.licensing_helpers import issue, make_keys
from tests.servers import free_port
from tests.stack import polling
from tests.stack.compose import HANPORT_SERVICES
from tests.stack.docker_engine import IMAGE, Engine, Project, exclusive, missing_tools
from tests.stack.test_whole_stack import NATIVE_BASE, NATIVE_COUNT, as_float32, native_values

# each test may wait for `up` (30 s) and more; the first one also builds every image
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SERIAL = "HPDOCKER0001"
ADMIN_TOKEN = "docker-test-admin-token"
MQTT_PASSWORD = secrets.token_urlsafe(12)
TOPIC = f"hanport/{SERIAL}/data"
KEYS_IN_CONTAINER = "/etc/hanport/license-keys"
# `up --wait` until every service is healthy. Measured 28 s on a 2-core VM: Redis healthy after
# its first probe (10 s), then the first probe of each hanport service 15 s after it started.
UP_WITHIN = 90.0
WAIT = 30.0  # seconds any one expected event may take on a busy 2-core machine
SCALE = ("--scale", "rest=3", "--scale", "mqtt=2")


# ---------------------------------------------------------------- the engine and the project


@dataclass
class Ports:
    http: int = field(default_factory=free_port)
    modbus: int = field(default_factory=free_port)
    licensing: int = field(default_factory=free_port)
    broker: int = field(default_factory=free_port)
    prometheus: int = field(default_factory=free_port)

    def env_lines(self) -> list[str]:
        # published on loopback only: compose.yaml takes "address:port" for each host port
        return [
            f"HANPORT_HTTP_PORT=127.0.0.1:{self.http}",
            f"HANPORT_MODBUS_HOST_PORT=127.0.0.1:{self.modbus}",
            f"HANPORT_LICENSING_HOST_PORT=127.0.0.1:{self.licensing}",
            f"HANPORT_BROKER_PORT=127.0.0.1:{self.broker}",
            f"PROMETHEUS_PORT={self.prometheus}",  # on MONITORING_ADDRESS, 127.0.0.1 by default
        ]


@dataclass
class Stack:
    engine: Engine
    project: Project
    ports: Ports
    private_key: Path
    workdir: Path

    def configure(self, broker: bool) -> None:
        """The env file (a user's `.env`): with `broker`, the MQTT settings of the broker
        profile as the README gives them."""
        lines = [
            f"HANPORT_SERIAL={SERIAL}",
            f"HANPORT_ADMIN_TOKEN={ADMIN_TOKEN}",
            f"HANPORT_LICENSE_PUBLIC_KEYS={KEYS_IN_CONTAINER}",
            "HANPORT_LOG_LEVEL=INFO",
            *self.ports.env_lines(),
        ]
        if broker:
            lines += [
                "HANPORT_MQTT_URL=mqtt://mosquitto:1883",
                "HANPORT_MQTT_USERNAME=hanport",
                f"HANPORT_MQTT_PASSWORD={MQTT_PASSWORD}",
            ]
        self.project.env_file.write_text("".join(f"{line}\n" for line in lines))

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports.http}{path}"

    def licensing_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports.licensing}{path}"

    def container_pid(self, container: str) -> int:
        return int(self.engine.inspect(container)["State"]["Pid"])


def override_file(folder: Path, keys: Path) -> Path:
    """The trusted public key folder mounted read-only into every hanport service."""
    mount = f"{keys}:{KEYS_IN_CONTAINER}:ro"
    override = {"services": {name: {"volumes": [mount]} for name in HANPORT_SERVICES}}
    path = folder / "compose.override.yaml"
    path.write_text(yaml.safe_dump(override))
    return path


def timed(step: str, run: Callable[[], object]) -> None:
    started = time.monotonic()
    run()
    print(f"docker: {step} in {time.monotonic() - started:.1f} s")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    missing = missing_tools()
    if missing:
        pytest.fail(f"the Docker stack test needs {', '.join(missing)} (.ci/run installs them)")
    workdir = tmp_path_factory.mktemp("docker")
    private, public = make_keys(workdir)
    # a folder the containers' unprivileged users can read (pytest's own folders are 0700)
    keys = Path(tempfile.mkdtemp(prefix="hp-keys-"))
    keys.chmod(0o755)
    (keys / public.name).write_bytes(public.read_bytes())
    (keys / public.name).chmod(0o644)
    with exclusive():
        engine = Engine()
        project = Project(
            engine, "hanport-test", workdir / "compose.env", [override_file(workdir, keys)]
        )
        stack = Stack(engine, project, Ports(), private, workdir)
        stack.configure(broker=False)
        try:
            timed("engine started", engine.start)
            timed("leftovers removed", lambda: project.down("--volumes"))
            try:
                timed("stand-in images", engine.build_standins)
                timed("hanport image", engine.build_image)
            except AssertionError as error:
                if str(engine.data_root) not in str(error):
                    raise
                timed("damaged cache deleted", engine.start_afresh)
                timed("stand-in images", engine.build_standins)
                timed("hanport image", engine.build_image)
            yield stack
        finally:
            with contextlib.suppress(Exception):
                project.down("--volumes")
                engine.docker("image", "prune", "--force")
            engine.stop()
            for path in keys.iterdir():
                path.unlink()
            keys.rmdir()


# ---------------------------------------------------------------- clients


async def until(
    check: Callable[[], Awaitable[Any]], what: str, stack: Stack, within: float = WAIT
) -> Any:
    """Poll `check` (truthy when done) until it succeeds or `within` seconds pass."""
    return await polling.until(check, what, stack.project.logs, within, every=0.2)


async def first_sse_reading(url: str) -> dict[str, Any]:
    """The first HAN_METER_MESSAGE event of a server-sent event stream."""
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=WAIT)) as client,
        client.stream("GET", url) as response,
    ):
        assert response.status_code == 200, response.status_code
        kind = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:") and kind == "HAN_METER_MESSAGE":
                reading: dict[str, Any] = json.loads(line[5:])
                return reading
    raise AssertionError("the event stream ended without a reading")


async def modbus_native(port: int) -> dict[str, Any]:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
    try:
        assert await client.connect(), "the Modbus port refused the connection"
        result = await client.read_holding_registers(NATIVE_BASE, count=NATIVE_COUNT, device_id=1)
        assert not result.isError(), f"Modbus read failed: {result}"
        return native_values(result.registers)
    finally:
        client.close()


async def history(http: httpx.AsyncClient, stack: Stack, since: str | None = None) -> list[Any]:
    """Every reading in the stream (after `since`), oldest first, through the proxy."""
    readings: list[Any] = []
    while True:
        params = {"limit": "10000", **({"since": since} if since else {})}
        body = (await http.get(stack.url("/meter/history"), params=params)).json()
        readings += body["readings"]
        if not body["more"]:
            return readings
        since = body["next_since"]


@dataclass
class MqttCollector:
    """A persistent-session QoS 1 subscriber on the broker profile's published port."""

    port: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    connects: int = 0

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.port,
                    username="hanport",
                    password=MQTT_PASSWORD,
                    identifier="docker-test-subscriber",
                    clean_session=False,
                ) as client:
                    await client.subscribe(TOPIC, qos=1)
                    self.connects += 1
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        self.messages.append(json.loads(message.payload))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def collecting(port: int) -> AsyncIterator[MqttCollector]:
    collector = MqttCollector(port)
    task = asyncio.create_task(collector.run())
    try:
        yield collector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def without_id(reading: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in reading.items() if k != "id"}


def assert_none_lost(received: list[dict[str, Any]], stream: list[dict[str, Any]]) -> None:
    """Every stream reading from the oldest one received on arrived, but at most the two newest
    (still in flight). Not their order: two `mqtt` replicas in one consumer group publish side
    by side, so one reading can overtake its predecessor by a few milliseconds."""
    assert received, "no MQTT message arrived"
    strangers = [m["ts"] for m in received if m not in stream]
    assert strangers == [], f"MQTT messages that are no stream reading: {strangers}"
    first = min(stream.index(m) for m in received)
    missing = [m["ts"] for m in stream[first : len(stream) - 2] if m not in received]
    assert missing == [], (
        f"readings never published: {missing}\n"
        f" received {[m['ts'] for m in received]}\n stream   {[m['ts'] for m in stream]}"
    )


async def license_installed(http: httpx.AsyncClient, stack: Stack) -> dict[str, Any]:
    """Install (once) an activation of MQTT and Modbus through the licensing port."""
    status: dict[str, Any] = (await http.get(stack.licensing_url("/license"))).json()
    if status["licences"]:
        return status
    license = issue(stack.private_key, serial=SERIAL, features=["mqtt", "modbus"])
    response = await http.put(
        stack.licensing_url("/license"),
        content=license,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.status_code == 201, response.text
    status = (await http.get(stack.licensing_url("/license"))).json()
    return status


# ---------------------------------------------------------------- the tests


@pytest.mark.timeout(1200)  # the first run on a machine builds every image (measured: 2.5 min)
async def test_up_serves_the_meter_through_the_proxy_modbus_and_licensing(stack: Stack) -> None:
    stack.configure(broker=False)
    took = stack.project.up()
    print(f"docker: up -d, every service healthy, in {took:.1f} s")
    assert took < UP_WITHIN, f"up took {took:.0f} s"
    for container in stack.project.containers():
        state = stack.engine.inspect(container)["State"]
        assert state["Status"] == "running", container
        if "Health" in state:
            assert state["Health"]["Status"] == "healthy", container

    async with httpx.AsyncClient(timeout=10.0) as http:
        meter = (await http.get(stack.url("/meter"))).json()
        assert meter["type"] == "HAN_METER_MESSAGE"
        assert meter["p"][0] is not None and meter["u"][0] is not None
        page = await http.get(stack.url("/"))
        assert page.status_code == 200 and "<title>hanport · live meter</title>" in page.text
        event = await asyncio.wait_for(first_sse_reading(stack.url("/events")), WAIT)
        assert event["type"] == "HAN_METER_MESSAGE" and event["ts"] >= meter["ts"]

        status = await license_installed(http, stack)
        assert status["serial"] == SERIAL
        assert status["features"]["modbus"]["granted"] is True, status
        assert status["features"]["mqtt"]["granted"] is True, status

        # Modbus on the published port opens within seconds of the license, with a stream reading
        native = await until(lambda: modbus_native(stack.ports.modbus), "Modbus", stack)
        stream = await history(http, stack)
        same = [r for r in stream if r["ts"] == native["ts"]]
        assert same and as_float32(without_id(same[-1])) == native


async def test_containers_are_what_the_readme_promises(stack: Stack) -> None:
    """Every running container: the user, read-only root, capabilities and memory limit that
    compose.yaml gives it; the hanport services as an unprivileged user with no capability at
    all in the running process, and well inside their memory limit."""
    stack.configure(broker=False)
    stack.project.up()
    config = json.loads(stack.project.compose("config", "--format", "json").stdout)
    seen = set()
    for container in stack.project.containers():
        info = stack.engine.inspect(container)
        service = info["Config"]["Labels"]["com.docker.compose.service"]
        spec = config["services"][service]
        host = info["HostConfig"]
        seen.add(service)
        assert host["ReadonlyRootfs"] is True, container
        assert host["CapDrop"] == ["ALL"], container
        added = sorted(c.removeprefix("CAP_") for c in host["CapAdd"] or [])
        assert added == sorted(spec.get("cap_add", [])), container
        assert "no-new-privileges:true" in host["SecurityOpt"], container
        assert host["Memory"] == int(spec["mem_limit"]), container
        if service in HANPORT_SERVICES:
            assert info["Config"]["User"] == "hanport", container
            status = stack.engine.docker("exec", container, "cat", "/proc/1/status").stdout
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            assert fields["Uid"].split()[0] == "10001", (container, fields["Uid"])
            assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0, container
            assert int(fields["NoNewPrivs"]) == 1, container
            write = stack.engine.docker("exec", container, "touch", "/opt/x", check=False)
            assert write.returncode != 0 and "Read-only file system" in write.stderr, container
        elif "user" in spec:
            assert info["Config"]["User"] == spec["user"], container
    assert seen == {"redis", "proxy", *HANPORT_SERVICES}

    usage = stack.engine.docker(
        "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"
    ).stdout
    for line in usage.splitlines():
        name, used, _, limit = line.split()
        assert _mib(used) < 0.75 * _mib(limit), line


def _mib(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([KMG]i?B)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]


async def test_scaled_with_the_broker_each_reading_is_published_once(stack: Stack) -> None:
    stack.configure(broker=True)
    stack.project.up(*SCALE, profiles=["broker"])
    assert len(stack.project.containers("rest")) == 3
    assert len(stack.project.containers("mqtt")) == 2
    async with httpx.AsyncClient(timeout=10.0) as http, collecting(stack.ports.broker) as mqtt:
        await license_installed(http, stack)
        await until(lambda: _count_at_least(mqtt, 10), "10 MQTT messages", stack, within=60)
        stream = [without_id(r) for r in await history(http, stack)]
        received = list(mqtt.messages)
        assert_none_lost(received, stream)
        repeats = [m["ts"] for i, m in enumerate(received) if m in received[:i]]
        assert repeats == [], f"published more than once: {repeats}"
        # both replicas of the bridge are in the one consumer group
        groups = stack.engine.docker(
            "exec", stack.project.containers("redis")[0],
            "redis-cli", "XINFO", "CONSUMERS", "hanport:readings", "mqtt",
        ).stdout  # fmt: skip
        consumers = set(re.findall(r"^name\n(\S+)$", groups, re.MULTILINE))
        assert len(consumers) >= 2, groups

        # REST through the proxy answers from every replica
        replicas = stack.project.containers("rest")
        before = {c: _meter_requests(stack, c) for c in replicas}

        async def every_replica_answered() -> bool:
            for _ in range(6):
                assert (await http.get(stack.url("/meter"))).status_code == 200
            return all(_meter_requests(stack, c) > before[c] for c in replicas)

        await until(every_replica_answered, "an answer from every REST replica", stack)


async def _count_at_least(mqtt: MqttCollector, count: int) -> bool:
    return len(mqtt.messages) >= count


def _meter_requests(stack: Stack, container: str) -> float:
    """hanport_rest_meter_requests_total{status="200"} of one replica, read inside it."""
    script = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8080/metrics').read().decode())"
    metrics = stack.engine.docker("exec", container, "python", "-c", script).stdout
    match = re.search(r'^hanport_rest_meter_requests_total\{status="200"\} (\S+)$', metrics, re.M)
    return float(match.group(1)) if match else 0.0


async def test_a_crashed_service_restarts_and_no_reading_is_lost(stack: Stack) -> None:
    """The main process of each container is SIGKILLed (a crash): Docker restarts it
    (`restart: unless-stopped`), and the MQTT subscriber misses no reading across all of it.
    (`docker kill` counts as stopping by hand, after which Docker restarts nothing; then
    `docker compose up -d` brings the container back, checked too.)"""
    stack.configure(broker=True)
    stack.project.up(*SCALE, profiles=["broker"])
    async with httpx.AsyncClient(timeout=10.0) as http, collecting(stack.ports.broker) as mqtt:
        await license_installed(http, stack)
        await until(lambda: _count_at_least(mqtt, 3), "MQTT messages", stack, within=60)
        services = ["redis", "ingest", "rest", "mqtt", "modbus", "licensing", "proxy"]
        for service in services:
            container = stack.project.containers(service)[0]
            restarts = stack.engine.inspect(container)["RestartCount"]
            os.kill(stack.container_pid(container), signal.SIGKILL)
            await until(
                lambda c=container, r=restarts: _restarted(stack, c, r),  # type: ignore[misc]
                f"{service} restarted by Docker",
                stack,
            )
            count = len(mqtt.messages)
            await until(
                lambda count=count: _count_at_least(mqtt, count + 2),  # type: ignore[misc]
                f"MQTT messages after {service} restarted",
                stack,
            )

        stack.project.up(*SCALE, profiles=["broker"])  # every container healthy again

        # `docker kill`: stopped by hand, so Docker leaves it; `up -d` starts it again
        container = stack.project.containers("modbus")[0]
        stack.engine.docker("kill", container)
        assert container not in stack.project.containers("modbus")
        stack.project.up(*SCALE, profiles=["broker"])
        assert container in stack.project.containers("modbus")
        native = await until(lambda: modbus_native(stack.ports.modbus), "Modbus again", stack)
        assert native["ts"] > 0

        count = len(mqtt.messages)
        await until(lambda: _count_at_least(mqtt, count + 2), "newest messages", stack)
        stream = [without_id(r) for r in await history(http, stack)]
        assert_none_lost(list(mqtt.messages), stream)

        # the broker last: it restarts too, and readings flow again. (Not in the no-loss check:
        # mosquitto saves its sessions every 60 s, so one killed sooner forgets a subscription
        # made since; a real broker's persistence, not hanport's.)
        container = stack.project.containers("mosquitto")[0]
        restarts = stack.engine.inspect(container)["RestartCount"]
        os.kill(stack.container_pid(container), signal.SIGKILL)
        await until(
            lambda: _restarted(stack, container, restarts), "mosquitto restarted by Docker", stack
        )
        count = len(mqtt.messages)
        await until(lambda: _count_at_least(mqtt, count + 2), "MQTT after the broker", stack)


async def _restarted(stack: Stack, container: str, restarts: int) -> bool:
    info = stack.engine.inspect(container)
    return bool(info["RestartCount"] > restarts and info["State"]["Running"])


async def test_down_and_up_keep_the_licenses_and_the_stream(stack: Stack) -> None:
    stack.configure(broker=True)
    stack.project.up(*SCALE, profiles=["broker"])
    async with httpx.AsyncClient(timeout=10.0) as http:
        licenses = (await license_installed(http, stack))["licences"]
        before = await history(http, stack)
        stack.project.down()  # volumes kept
        assert stack.project.containers() == []
        stack.project.up(*SCALE, profiles=["broker"])
        after = (await http.get(stack.licensing_url("/license"))).json()
        assert after["licences"] == licenses
        assert after["features"]["mqtt"]["granted"] is True
        kept = await history(http, stack)
        assert kept[: len(before)] == before, "readings from before `down` were lost"
        await until(
            lambda: _newer_than(http, stack, before[-1]["id"]), "new readings after up", stack
        )


async def _newer_than(http: httpx.AsyncClient, stack: Stack, since: str) -> bool:
    return bool(await history(http, stack, since))


async def test_monitoring_profile_scrapes_every_service(stack: Stack) -> None:
    """Prometheus of the monitoring profile (Grafana has no stand-in image here) finds every
    replica of every service by DNS and scrapes each."""
    stack.configure(broker=True)
    stack.project.up(*SCALE, profiles=["broker"])
    stack.project.up("prometheus", profiles=["broker", "monitoring"])
    expected = {
        **{"ingest": 1, "rest": 3, "mqtt": 2, "modbus": 1, "licensing": 1},
        **{"accounting": 1, "prometheus": 1},
    }
    url = f"http://127.0.0.1:{stack.ports.prometheus}/api/v1/targets"
    async with httpx.AsyncClient(timeout=10.0) as http:

        async def all_up() -> bool:
            targets = (await http.get(url)).json()["data"]["activeTargets"]
            up: dict[str, int] = {}
            for target in targets:
                if target["health"] == "up":
                    job = target["labels"]["job"]
                    up[job] = up.get(job, 0) + 1
            return up == expected

        # DNS refresh and the first scrape each take up to 15 s
        await until(all_up, "Prometheus scraping every replica", stack, within=90)


def test_the_image_has_the_exports_c_fast_path(stack: Stack) -> None:
    """The build stage compiles services/export/sinks/_interleave.c and _stream_json.c
    (setup.py); the image runs them without a compiler. Its unprivileged user may lower the
    export's CPU priority (HANPORT_EXPORT_NICE) under Docker's default seccomp profile."""
    script = "import os, services.export.sinks.lineprotocol as l; print(l.COMPILED, os.nice(10))"
    run = stack.engine.docker("run", "--rm", "--network", "none", IMAGE, "python", "-c", script)
    assert run.stdout.strip() == "True 10", run.stderr
    compilers = stack.engine.docker("run", "--rm", IMAGE, "sh", "-c", "command -v gcc cc || true")
    assert compilers.stdout.strip() == ""  # (the final stage has none)


def test_the_image_builds_with_buildkit_too(stack: Stack) -> None:
    """The Dockerfile names no remote frontend, so BuildKit builds it offline as well."""
    stack.engine.build_image("hanport:buildkit", buildkit=True)
    run = stack.engine.docker("run", "--rm", "--network", "none", "hanport:buildkit")
    assert "ingest" in run.stdout
    assert stack.engine.inspect(IMAGE)["Config"]["User"] == "hanport"
