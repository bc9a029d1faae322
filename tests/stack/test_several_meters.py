"""Three meters on one box, the whole stack started from compose.yaml as local processes against a
real redis-server and mosquitto: the stack's own ingest on the built-in simulator (the classic
stream, so the default meter), and two more ingests, as the compose `ingest-meter2` stanza runs
them, each named and reading a network source that replays a real capture of another make:
`flat2` a Kaifa DSMR 4.2 P1 telegram with a gas meter on M-Bus channel 1, `aidon` an Aidon HDLC
frame (tests/fixtures). Every meter is served on REST, MQTT (with Home Assistant discovery, one
device per meter, via the box), Modbus (a unit id per meter) and the live page in Chromium; then
`aidon` is unplugged: only its data goes stale."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from playwright.async_api import async_playwright, expect
from pymodbus.client import AsyncModbusTcpClient

from services.ingest.codec.decoded import Decoded
from services.ingest.codec.factory import DecoderOptions, make_decoder
from shared.reading import Reading
from tests.conftest import FIXTURES
from tests.licensing_helpers import issue, make_keys
from tests.rest.test_page import ARGS, CHROMIUM
from tests.servers import MosquittoServer, RedisServer
from tests.stack import polling
from tests.stack.compose import resolved_config, service_specs
from tests.stack.processes import HANPORT, Service, Stack

pytestmark = pytest.mark.slow

SERIAL = "HPMETERS0001"
ADMIN_TOKEN = "meters-test-admin-token"
PREFIX = f"hanport/{SERIAL}"
WAIT = 30.0
CAPTURES = {"flat2": "p1/kfm5_nl_dsmr42.txt", "aidon": "hdlc/aidon_gh1119.hex"}
UNITS = {"flat2": 2, "aidon": 3}


def capture_bytes(name: str) -> bytes:
    data = (FIXTURES / name).read_bytes()
    return bytes.fromhex(data.decode()) if name.endswith(".hex") else data


def decoded(name: str) -> Reading:
    """What the codec makes of the capture: what every interface must serve for its meter."""
    decoder = make_decoder(DecoderOptions(protocol="auto"))
    items = decoder.feed(capture_bytes(name), 0)
    readings = [item.reading for item in items if isinstance(item, Decoded)]
    assert readings, f"{name} does not decode"
    return readings[0]


@dataclass
class Replay:
    """A network meter (a P1/HAN-to-TCP dongle) sending the same capture every 0.5 s."""

    data: bytes
    server: asyncio.Server | None = None
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while True:
                writer.write(self.data)
                await writer.drain()
                await asyncio.sleep(0.5)

    async def unplug(self) -> None:
        """The cable pulled: no more bytes, the connection gone, no new one accepted."""
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()


@dataclass
class Box:
    stack: Stack
    http: httpx.AsyncClient
    replays: dict[str, Replay]
    messages: dict[str, dict[str, Any]]  # topic -> newest JSON payload (retained too)

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.stack['rest'].port('HANPORT_REST_PORT')}"

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(self.rest + path)

    async def until(self, check: Any, what: str) -> Any:
        return await polling.until(check, what, self.stack.logs, WAIT, every=0.1)

    async def native(self, unit: int) -> tuple[int, float] | str:
        """(ts, ic) from the native Modbus map at `unit`, or the error."""
        port = self.stack["modbus"].port("HANPORT_MODBUS_PORT")
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
        try:
            assert await client.connect(), "the Modbus port refused the connection"
            result = await client.read_holding_registers(1004, count=8, device_id=unit)
            if result.isError():
                return str(result)
            raw = struct.pack(">8H", *result.registers)
            return struct.unpack_from(">Q", raw)[0], struct.unpack_from(">d", raw, 8)[0]
        finally:
            client.close()


async def collect(url: str, messages: dict[str, dict[str, Any]]) -> None:
    host, port = url.removeprefix("mqtt://").split(":")
    while True:
        with contextlib.suppress(aiomqtt.MqttError):
            async with aiomqtt.Client(host, int(port), identifier="meters-test") as client:
                await client.subscribe(f"{PREFIX}/#", qos=1)
                await client.subscribe("homeassistant/#", qos=1)
                async for message in client.messages:
                    assert isinstance(message.payload, bytes)
                    with contextlib.suppress(ValueError):
                        messages[str(message.topic)] = json.loads(message.payload)
        await asyncio.sleep(0.2)


@pytest.fixture
async def box(
    redis_server: RedisServer, mosquitto_server: MosquittoServer, tmp_path: Path
) -> AsyncIterator[Box]:
    private, public = make_keys(tmp_path)
    units = ",".join(f"{unit}={name}" for name, unit in UNITS.items())
    env_file = (
        f"HANPORT_SERIAL={SERIAL}",
        f"HANPORT_MQTT_URL={mosquitto_server.url}",
        f"HANPORT_ADMIN_TOKEN={ADMIN_TOKEN}",
        f"HANPORT_LICENSE_PUBLIC_KEYS={public}",
        f"HANPORT_MODBUS_UNITS={units}",
        "HANPORT_REST_STALE_AFTER=4",
        "HANPORT_MODBUS_STALE_AFTER=4",
    )
    stack = Stack.from_specs(
        service_specs(resolved_config(tmp_path, env_file)), redis_server.url, tmp_path / "stack"
    )
    replays = {name: Replay(capture_bytes(path)) for name, path in CAPTURES.items()}
    messages: dict[str, dict[str, Any]] = {}
    collector = asyncio.create_task(collect(mosquitto_server.url, messages))
    try:
        stack.start_all()
        for name, replay in replays.items():
            port = await replay.start()
            env = {
                **stack["ingest"].env,
                "HANPORT_METER_NAME": name,
                "HANPORT_SOURCE": f"tcp://127.0.0.1:{port}",
                "HANPORT_METRICS_PORT": "0",
            }
            ingest = Service(
                f"ingest-{name}", [str(HANPORT), "ingest"], env, stack["ingest"].workdir
            )
            stack.services[ingest.name] = ingest
            ingest.start()
        async with httpx.AsyncClient(timeout=5.0) as http:
            license = issue(private, serial=SERIAL, features=["rest", "mqtt", "modbus"])
            port = stack["licensing"].port("HANPORT_LICENSING_PORT")
            response = await http.put(
                f"http://127.0.0.1:{port}/license",
                content=license,
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            assert response.status_code == 201, response.text
            yield Box(stack, http, replays, messages)
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
        for replay in replays.values():
            if replay.server is not None and replay.server.is_serving():
                await replay.unplug()
        stack.stop_all()


async def test_three_meters_on_every_interface_and_one_unplugged(box: Box) -> None:
    expected = {name: decoded(path) for name, path in CAPTURES.items()}
    flat2, aidon = expected["flat2"], expected["aidon"]

    # REST: every meter listed, the simulator's (classic stream) the default
    async def three_meters() -> dict[str, Any] | None:
        body: dict[str, Any] = (await box.get("/meters")).json()
        return body if len(body.get("meters", {})) == 3 else None

    listing = await box.until(three_meters, "three meters on REST /meters")
    meters = {meter["id"]: meter for meter in listing["meters"]}
    assert set(meters) >= {"flat2", "aidon"}
    default = listing["default"]
    assert default not in ("flat2", "aidon") and meters[default]["default"] is True
    assert meters["flat2"]["model"] == flat2.meter_model
    assert (await box.get("/meter")).json()["ic"] == (await box.get(f"/meters/{default}")).json()[
        "ic"
    ]

    async def served(name: str) -> dict[str, Any] | None:
        response = await box.get(f"/meters/{name}")
        return response.json() if response.status_code == 200 else None

    got = {name: await box.until(lambda n=name: served(n), f"/meters/{name}") for name in CAPTURES}
    for name, reading in expected.items():
        assert got[name]["meter"] == name
        assert got[name]["ic"] == pytest.approx(reading.ic)
        assert (got[name]["p"], got[name]["u"]) == (reading.p, reading.u)
    (gas,) = flat2.submeters
    sub = got["flat2"]["submeters"][str(gas.channel)]
    assert (sub["medium"], sub["value"], sub["unit"], sub["ts"]) == ("gas", gas.value, "m3", gas.ts)
    assert "submeters" not in got["aidon"]

    # MQTT: each meter on its own topic, the default on the classic one; one HA device each
    async def mqtt_has(topic: str) -> dict[str, Any] | None:
        return box.messages.get(topic)

    for name, reading in expected.items():
        message = await box.until(
            lambda n=name: mqtt_has(f"{PREFIX}/meters/{n}/data"), f"MQTT {name}"
        )
        assert message["ic"] == pytest.approx(reading.ic)
    classic = await box.until(lambda: mqtt_has(f"{PREFIX}/data"), "MQTT classic topic")
    assert classic["type"] == "HAN_METER_MESSAGE"

    def discovery(meter: str) -> list[dict[str, Any]]:
        return [
            config for topic, config in box.messages.items()
            if topic.startswith("homeassistant/") and topic.endswith("/config")
            and config.get("device", {}).get("identifiers") == [f"hanport_{SERIAL.lower()}_{meter}"]
        ]  # fmt: skip

    async def discovered(meter: str) -> list[dict[str, Any]] | None:
        return discovery(meter) or None

    configs = await box.until(lambda: discovered("flat2"), "Home Assistant discovery of flat2")
    assert all(c["device"]["via_device"] == f"hanport_{SERIAL.lower()}-box" for c in configs)
    gas_sensors = [c for c in discovery("flat2") if c.get("device_class") == "gas"]
    assert gas_sensors and gas_sensors[0]["unit_of_measurement"] == "m³"
    assert gas_sensors[0]["state_class"] == "total_increasing"

    # Modbus: a unit id per meter, unmapped units answer for the default meter
    for name, unit in UNITS.items():

        async def native_ic(unit: int = unit) -> tuple[int, float] | None:
            value = await box.native(unit)
            return value if isinstance(value, tuple) else None

        _ts, ic = await box.until(native_ic, f"Modbus unit {unit} ({name})")
        assert ic == pytest.approx(expected[name].ic)
    default_ic = (await box.get("/meter")).json()["ic"]
    unmapped = await box.native(1)
    assert isinstance(unmapped, tuple) and unmapped[1] == pytest.approx(default_ic, abs=0.01)

    # the live page: a button per meter
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            await page.goto(box.rest + "/", timeout=15_000)
            buttons = page.locator("#meters button")
            await expect(buttons).to_have_count(3, timeout=10_000)
            await page.locator('#meters button[data-meter="flat2"]').click()
            await expect(page.locator("#ic")).to_have_text(f"{flat2.ic:.3f}")
        finally:
            await browser.close()

    # aidon unplugged: only its data goes stale
    await box.replays["aidon"].unplug()

    async def aidon_stale() -> bool:
        return (await box.get("/meters/aidon")).status_code == 503

    await box.until(aidon_stale, "aidon's REST 503 once its data is stale")
    body = (await box.get("/meters/aidon")).json()
    assert body["error"] == "stale" and body["meter"] == "aidon"
    assert (await box.get("/meters/flat2")).status_code == 200
    assert (await box.get("/meter")).status_code == 200
    meters = {meter["id"]: meter for meter in (await box.get("/meters")).json()["meters"]}
    assert meters["aidon"]["stale"] is True
    assert meters["flat2"]["stale"] is False

    async def aidon_refused() -> str | None:
        value = await box.native(UNITS["aidon"])
        return value if isinstance(value, str) else None

    assert "Exception" in await box.until(aidon_refused, "aidon's Modbus unit refusing")
    assert isinstance(await box.native(UNITS["flat2"]), tuple)
    assert aidon.ic is not None
