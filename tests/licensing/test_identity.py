"""One reader serial, established by the licensing service, that every service waits for and
nobody with Redis access can change: real processes (licensing, REST, Modbus) on a real
redis-server, and `shared.entitlements.Entitlements` (what MQTT uses) in-process."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from redis.asyncio import Redis

from services.licensing.service import LicensingService
from services.licensing.settings import LicensingSettings
from shared.cancellation import stop
from shared.entitlements import (
    CHANNEL,
    ENTITLEMENT_REFUSED,
    Entitlements,
    Record,
    encode_record,
    record_key,
)
from shared.identity import SERIAL_KEY, wait_for_serial
from shared.license import FeatureName, load_public_keys, now_ms
from shared.reading import Reading
from shared.settings import CommonSettings
from shared.stream import ReadingStream, connect
from tests.licensing.test_interfaces import LIMIT, SLACK, Processes, eventually
from tests.licensing_helpers import issue, make_keys
from tests.mqtt.support import Subscriber, reading
from tests.servers import MosquittoServer, RedisServer, free_port

SERIAL = "HPTEST0001"
OTHER = "HPOTHER0001"  # another reader, with a genuine license of its own
WAIT = 10.0


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    yield running
    running.stop()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = await connect(redis_server.url)
    yield client
    await client.aclose()


def common_env(redis_url: str, public: Path, folder: Path, use: str) -> dict[str, str]:
    """No HANPORT_SERIAL: the serial comes from the licensing service, as by default."""
    return {
        "HANPORT_REDIS_URL": redis_url,
        "HANPORT_USE": use,
        "HANPORT_LICENSE_PUBLIC_KEYS": str(public),
        "HANPORT_LICENSE_DIR": str(folder),
    }


def start_licensing(procs: Processes, env: dict[str, str]) -> int:
    port = free_port()
    procs.start(
        "services.licensing",
        {
            **env,
            "HANPORT_LICENSING_HOST": "127.0.0.1",
            "HANPORT_LICENSING_PORT": str(port),
            "HANPORT_ADMIN_TOKEN": "identity-test-admin-token",
        },
        port,
    )
    return port


def start_rest(procs: Processes, env: dict[str, str]) -> httpx.AsyncClient:
    port = free_port()
    rest_env = {
        **env,
        "HANPORT_REST_HOST": "127.0.0.1",
        "HANPORT_REST_PORT": str(port),
        "HANPORT_REST_STALE_AFTER": "600",
        "HANPORT_REST_STARTUP_WAIT": "0.5",
    }
    procs.start("services.rest", rest_env, port)
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5)


def start_modbus(procs: Processes, env: dict[str, str]) -> int:
    """Modbus (its metrics port answers at once; the Modbus port only when licensed)."""
    port, metrics = free_port(), free_port()
    modbus_env = {
        **env,
        "HANPORT_MODBUS_HOST": "127.0.0.1",
        "HANPORT_MODBUS_PORT": str(port),
        "HANPORT_METRICS_PORT": str(metrics),
    }
    procs.start("services.modbus", modbus_env, metrics)
    return port


async def modbus_serves(port: int) -> bool:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    try:
        if not await client.connect():
            return False
        result = await client.read_holding_registers(40000, count=2)
        return not result.isError()
    except ModbusException:
        return False
    finally:
        client.close()


def log_of(tmp_path: Path, module: str) -> str:
    return (tmp_path / f"{module}.log").read_text()


# ---------------------------------------------------------------- item: one serial, waited for


async def test_every_service_waits_for_the_serial_licensing_establishes(
    redis_server: RedisServer, redis: Redis, procs: Processes, tmp_path: Path
) -> None:
    """Licenses in the folder, its `serial` file lost, Redis empty (a lost volume, `make run`):
    REST and Modbus start first and wait; none makes a serial up; licensing takes the serial
    the installed licenses name, and every service then uses that one."""
    private, public = make_keys(tmp_path)
    folder = tmp_path / "licenses"
    folder.mkdir()
    (folder / "activation.lic").write_bytes(issue(private, serial=SERIAL, features=["modbus"]))
    env = common_env(redis_server.url, public, folder, "consumer")
    await ReadingStream(redis, "hanport:readings").add(Reading(ts=now_ms(), received=now_ms()))

    rest = start_rest(procs, env)
    modbus_port = start_modbus(procs, env)
    try:

        async def both_wait() -> bool:
            waiting = "waiting for the licensing service to establish the reader serial"
            return all(waiting in log_of(tmp_path, m) for m in ("services.rest", "services.modbus"))

        await eventually(both_wait, WAIT)
        assert (await rest.get("/han")).json()["serial"] is None
        assert await redis.get(SERIAL_KEY) is None  # nobody made one up
        assert not (folder / "serial").exists()

        start_licensing(procs, env)

        async def modbus_open() -> bool:
            return await modbus_serves(modbus_port)

        assert await eventually(modbus_open, LIMIT + SLACK) < LIMIT + SLACK

        async def rest_knows() -> bool:  # REST looks every 0.5 s
            return (await rest.get("/han")).json()["serial"] is not None

        await eventually(rest_knows, LIMIT)
        assert (await rest.get("/han")).json()["serial"] == SERIAL
        assert (folder / "serial").read_text().strip() == SERIAL
        assert await redis.get(SERIAL_KEY) == SERIAL.encode()
        for module in ("services.rest", "services.modbus", "services.licensing"):
            named = set(re.findall(r"reader serial (HP\w+)", log_of(tmp_path, module)))
            assert named == {SERIAL}, (module, named)
    finally:
        await rest.aclose()


async def test_licensing_keeps_the_serial_when_redis_is_emptied(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    """Redis loses its data (or someone overwrites the key): licensing republishes the serial
    it keeps in the folder with its next evaluation."""
    _private, public = make_keys(tmp_path)
    settings = LicensingSettings(
        redis_url=redis_server.url,
        license_dir=tmp_path / "licenses",
        license_public_keys=str(public),
        _env_file=None,  # type: ignore[call-arg]
    )
    service = LicensingService(settings, redis, load_public_keys(public))
    serial = service.establish_serial()
    await redis.set(SERIAL_KEY, OTHER)
    await service.reevaluate()
    assert await redis.get(SERIAL_KEY) == serial.encode()
    assert LicensingService(settings, redis, {}).establish_serial() == serial


async def test_a_waiting_service_takes_the_folder_serial_not_the_one_in_redis(
    redis: Redis, tmp_path: Path
) -> None:
    folder = tmp_path / "licenses"
    folder.mkdir()
    await redis.set(SERIAL_KEY, OTHER)  # written by anyone with Redis access
    waiting = asyncio.create_task(wait_for_serial(None, folder, redis))
    done, _ = await asyncio.wait([waiting], timeout=1.0)
    assert not done  # the folder is there: only its serial counts
    (folder / "serial").write_text(f"{SERIAL}\n")
    assert await asyncio.wait_for(waiting, WAIT) == SERIAL


async def test_the_mqtt_bridge_publishes_only_under_the_established_serial(
    redis_server: RedisServer,
    mosquitto_server: MosquittoServer,
    redis: Redis,
    procs: Processes,
    tmp_path: Path,
) -> None:
    """The same restart as above for MQTT: the bridge made a serial up before licensing came,
    and Home Assistant saw a new device. Now every topic it publishes (discovery included)
    names the one serial."""
    private, public = make_keys(tmp_path)
    folder = tmp_path / "licenses"
    folder.mkdir()
    (folder / "activation.lic").write_bytes(issue(private, serial=SERIAL, features=["mqtt"]))
    env = common_env(redis_server.url, public, folder, "consumer")
    metrics = free_port()
    mqtt_env = {
        **env,
        "HANPORT_MQTT_URL": mosquitto_server.url,
        "HANPORT_METRICS_PORT": str(metrics),
    }
    async with Subscriber(mosquitto_server, ["#"]) as seen:
        procs.start("services.mqtt", mqtt_env, metrics)
        await ReadingStream(redis, "hanport:readings").add(reading(1))
        start_licensing(procs, env)
        await seen.wait_for(lambda _m: bool(seen.on(f"hanport/{SERIAL}/data")), WAIT)
        await seen.wait_for(lambda _m: bool(seen.on("homeassistant/#")), WAIT)
        topics = {str(m.topic) for m in seen.messages}
        named = {s.upper() for t in topics for s in re.findall(r"hp[a-z0-9]+", t, re.I)}
        assert named == {SERIAL}  # in data, availability and discovery topics alike
        assert await redis.get(SERIAL_KEY) == SERIAL.encode()


# ---------------------------------------------------------------- item: no bypass through Redis


async def forge(redis: Redis, text: bytes, features: list[FeatureName]) -> None:
    """The attack: point the serial at another reader and publish its genuine license."""
    records = {
        feature: Record(
            feature=feature,
            granted=True,
            reason="by hand",
            license_id="L-other",
            license=text.decode(),
            updated=now_ms(),
        )
        for feature in features
    }
    pipe = redis.pipeline(transaction=True)
    pipe.set(SERIAL_KEY, OTHER)
    for feature, record in records.items():
        pipe.set(record_key(feature), encode_record(record))
    pipe.publish(CHANNEL, ",".join(features))
    await pipe.execute()


async def test_redis_serial_and_records_for_another_reader_grant_nothing(
    redis_server: RedisServer, redis: Redis, procs: Processes, tmp_path: Path
) -> None:
    """Commercial use, nothing licensed for this reader: `SET hanport:serial` to another reader
    and that reader's genuine commercial license in the records, rewritten every 0.2 s for 4 s,
    opens neither REST nor Modbus (it did within 2 s)."""
    private, public = make_keys(tmp_path)
    folder = tmp_path / "licenses"
    folder.mkdir()
    (folder / "serial").write_text(f"{SERIAL}\n")  # established earlier
    env = common_env(redis_server.url, public, folder, "commercial")
    await ReadingStream(redis, "hanport:readings").add(Reading(ts=now_ms(), received=now_ms()))
    start_licensing(procs, env)
    rest = start_rest(procs, env)
    modbus_port = start_modbus(procs, env)
    other = issue(private, serial=OTHER, features=["rest", "mqtt", "modbus"], use="commercial")
    try:

        async def rest_refuses() -> bool:
            return (await rest.get("/meter")).status_code == 403

        await eventually(rest_refuses, WAIT)
        deadline = asyncio.get_running_loop().time() + 4.0
        while asyncio.get_running_loop().time() < deadline:
            await forge(redis, other, ["rest", "mqtt", "modbus"])
            await asyncio.sleep(0.2)
            assert (await rest.get("/meter")).status_code == 403
            assert not await modbus_serves(modbus_port)

        async def rest_refused_the_records() -> bool:
            text = (await rest.get("/metrics")).text
            return 'hanport_entitlement_refused_total{reason="wrong_serial"}' in text

        await eventually(rest_refused_the_records, WAIT)
        assert (await rest.get("/han")).json()["serial"] == SERIAL
        assert "wrong_serial" in (await rest.get("/meter")).json()["message"]
    finally:
        await rest.aclose()


async def test_a_process_keeps_the_serial_it_learned_from_redis(
    redis_server: RedisServer, redis: Redis, tmp_path: Path
) -> None:
    """Without HANPORT_SERIAL and without the license folder (the weakest set-up: the serial
    comes from Redis), the serial is learned once at start and kept: the attack is refused."""
    private, public = make_keys(tmp_path)
    await redis.set(SERIAL_KEY, SERIAL)
    settings = CommonSettings(
        redis_url=redis_server.url,
        license_public_keys=str(public),
        license_dir=tmp_path / "no-folder-here",
        _env_file=None,  # type: ignore[call-arg]
    )
    entitlements = Entitlements(redis, settings)
    task = asyncio.create_task(entitlements.run())
    try:
        await asyncio.wait_for(entitlements.wait_for(lambda: entitlements.serial), WAIT)
        assert entitlements.serial == SERIAL
        before = float(ENTITLEMENT_REFUSED.labels("wrong_serial")._value.get())
        other = issue(private, serial=OTHER, features=["mqtt", "modbus"])
        await forge(redis, other, ["mqtt", "modbus"])
        refused = lambda: ENTITLEMENT_REFUSED.labels("wrong_serial")._value.get() >= before + 2  # noqa: E731
        await asyncio.wait_for(entitlements.wait_for(refused), WAIT)
        assert entitlements.serial == SERIAL
        assert not entitlements.decide("mqtt").granted
        assert not entitlements.decide("modbus").granted
        # this reader's own license still grants
        own = issue(private, serial=SERIAL, features=["mqtt"])
        await forge(redis, own, ["mqtt"])
        await asyncio.wait_for(entitlements.wait_until("mqtt", granted=True), WAIT)
    finally:
        await stop(task)


async def test_a_configured_serial_is_written_where_the_other_services_read_it(
    redis: Redis, tmp_path: Path
) -> None:
    """HANPORT_SERIAL set for licensing only, a stale `serial` file from before: the folder then
    says what licensing uses, so the other services agree with it."""
    folder = tmp_path / "licenses"
    folder.mkdir()
    (folder / "serial").write_text("HPOLD0000001\n")
    settings = LicensingSettings(
        redis_url="unused",
        serial=SERIAL,
        license_dir=folder,
        _env_file=None,  # type: ignore[call-arg]
    )
    assert LicensingService(settings, redis, {}).establish_serial() == SERIAL
    assert await wait_for_serial(None, folder, redis) == SERIAL
