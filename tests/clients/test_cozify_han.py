"""Cozify's own Home Assistant integration (cozify_han 1.0.7, its unchanged source) against a
real `hanport rest` process: its coordinator fetches /meter, /configuration and /han the way it
does every 5 s (tests/clients/cozify_han_check.py, run by a Home Assistant venv's python) and
its sensors say what Home Assistant would record."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from redis import Redis

from services.rest.api import VERSION
from shared.reading import encode_reading
from shared.stream import READING_FIELD
from tests.clients.cozify_han import integration_root
from tests.clients.venvs import HOME_ASSISTANT_NEWEST, HOME_ASSISTANT_OLDEST, Client, provision
from tests.rest.process import STREAM, RestProcess, fill_stream, rest_process
from tests.rest.test_slow_values import LIST_2, LIST_3
from tests.servers import RedisServer

CHECK = Path(__file__).with_name("cozify_han_check.py")
STALE_AFTER_S = 8
TIMEOUT_S = 60


class Integration:
    """The integration's check process: `refresh()` runs one coordinator update."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def refresh(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("refresh\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, (
            f"the integration's check ended: {self.proc.stderr and self.proc.stderr.read()}"
        )
        report: dict[str, Any] = json.loads(line)
        return report


@pytest.fixture
def served(redis_server: RedisServer, tmp_path: Path) -> Iterator[RestProcess]:
    log = tmp_path / "rest.log"
    with rest_process(redis_server, log, HANPORT_REST_STALE_AFTER=str(STALE_AFTER_S)) as rest:
        yield rest


@pytest.fixture(params=[HOME_ASSISTANT_OLDEST, HOME_ASSISTANT_NEWEST], ids=lambda c: c.name)
def integration(
    redis_server: RedisServer, served: RestProcess, request: pytest.FixtureRequest
) -> Iterator[Integration]:
    client: Client = request.param
    python = provision(client)
    host = served.url.removeprefix("http://")
    proc = subprocess.Popen(
        [str(python), str(CHECK), str(integration_root()), host],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n", proc.stderr
        fill_stream(redis_server, 3)  # fresh now: the integration's setup needs a reading
        yield Integration(proc)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def wait_until_stale(rest: RestProcess) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while httpx.get(rest.url + "/meter").status_code != 503:
        assert time.monotonic() < deadline, "/meter never turned stale"
        time.sleep(0.2)


@pytest.mark.timeout(900)  # the first run makes the Home Assistant venv
def test_stale_data_makes_the_entities_unavailable_never_zero(
    served: RestProcess, integration: Integration
) -> None:
    fresh = integration.refresh()
    assert fresh["success"], fresh
    energy = fresh["entities"]["Cozify HAN Total Power Imported"]
    assert energy["available"] and energy["value"] > 0, energy
    wait_until_stale(served)
    stale = integration.refresh()
    assert not stale["success"]
    measured = [name for name in stale["entities"] if "Max" not in name and "MAX" not in name]
    for name in measured:
        if name.endswith(("MAC Address", "Serial Number", "IP Address")):
            continue  # fixed at setup, not read from the reader
        assert not stale["entities"][name]["available"], (name, stale["entities"][name])


@pytest.mark.timeout(900)
def test_the_diagnostic_sensors_show_hanports_values_or_nothing(
    integration: Integration,
) -> None:
    entities = integration.refresh()["entities"]
    value = {name.removeprefix("Cozify HAN "): e["value"] for name, e in entities.items()}
    assert value["Firmware Version"] == VERSION
    assert value["Cloud Connection"] == "Offline"  # hanport has no cloud
    # no price is served: the integration reads that as 0.0 (a null would raise, see below)
    assert value["Fixed Electricity Price"] == 0.0
    # it reads `ts` as seconds; a Cozify reader sends ms, as hanport does: no time shown
    assert value["Last Update"] is None
    for name in ("Timezone",):
        assert isinstance(value[name], str) and value[name], (name, value[name])
    for name in ("Main Fuse Size", "Ethernet Mode", "WiFi SSID", "WiFi Mode", "WiFi Channel",
                 "WiFi Beacon Active", "Update Channel", "WiFi IP Address",
                 "Ethernet IP Address"):  # fmt: skip
        assert value[name] is None, (name, value[name])
    errors = {name: v for name, v in value.items() if isinstance(v, str) and v.startswith("error")}
    assert errors == {}


@pytest.mark.timeout(900)
def test_energy_between_hourly_lists_stays_known(
    redis_server: RedisServer, integration: Integration
) -> None:
    """Aidon's hourly list 3 and then its list 2 (real captures, tests/rest/test_slow_values.py)
    as ingest adds them: the energy sensor keeps the list 3 counter, power is list 2's."""
    now_ms = int(time.time() * 1000)
    redis = Redis.from_url(redis_server.url)
    try:
        for reading, age_ms in ((LIST_3, 20_000), (LIST_2, 0)):
            at = now_ms - age_ms
            entry = encode_reading(msgspec.structs.replace(reading, ts=at, received=at))
            redis.xadd(STREAM, {READING_FIELD: entry})
    finally:
        redis.close()
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        entities = integration.refresh()["entities"]
        if entities["Cozify HAN Power Total"]["value"] == LIST_2.p[0]:
            break
        assert time.monotonic() < deadline, entities
        time.sleep(0.2)
    assert entities["Cozify HAN Total Power Imported"] == {"available": True, "value": LIST_3.ic}
    assert entities["Cozify HAN Total Power Exported"] == {"available": True, "value": LIST_3.ec}
