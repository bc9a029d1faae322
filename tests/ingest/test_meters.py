"""Several meters per box, the ingest side: each ingest names its meter (configured, else the
equipment id decoded from hex ASCII, else the source), writes its own streams, lists itself in
the directory `hanport:meters`, and a second ingest claiming a running meter's name is refused
at start with one line naming both sources; against a real redis-server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from services.ingest.naming import MeterNaming, source_name
from services.ingest.registration import Registration, conflict
from services.ingest.sources.spec import parse_source
from shared.meters import MeterDirectory, MeterKeys, MeterRecord
from shared.reading import Reading
from shared.stream import ReadingStream, connect
from tests.ingest.test_service import WAIT, running, settings_for, until
from tests.servers import RedisServer


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = await connect(redis_server.url)
    yield client
    await client.aclose()


def test_a_name_from_the_source_when_the_meter_sends_no_id() -> None:
    assert source_name(parse_source("/dev/ttyUSB1")) == "ttyUSB1"
    assert source_name(parse_source("tcp://10.0.0.5:2000")) == "10.0.0.5-2000"
    assert source_name(parse_source("simulator")) == "simulator"


def test_the_equipment_id_names_an_unnamed_meter_and_a_new_id_is_followed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    naming = MeterNaming(None, "serial /dev/ttyUSB0", fallback="ttyUSB0")
    assert naming.stamp(Reading(ts=0, received=0)).meter == "ttyUSB0"
    hex_id = "4530303434303037333832323436303139"  # a DSMR 5 meter of the corpus
    assert naming.stamp(Reading(ts=0, received=0, meter_id=hex_id)).meter == "E0044007382246019"
    assert naming.stamp(Reading(ts=0, received=0, meter_id="3330303537373735")).meter == "30057775"
    assert "now sends equipment id 3330303537373735" in caplog.text


def test_a_configured_name_stays_when_the_meter_is_replaced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    naming = MeterNaming("main", "serial /dev/ttyUSB0")
    assert naming.stamp(Reading(ts=0, received=0, meter_id="A1")).meter == "main"
    assert naming.stamp(Reading(ts=0, received=0, meter_id="B2")).meter == "main"
    assert "its name stays 'main'" in caplog.text


def test_a_running_meter_of_the_same_name_elsewhere_is_a_conflict() -> None:
    now = int(time.time() * 1000)
    keys = MeterKeys.named("ev")
    mine = Registration(keys, MeterNaming("ev", "serial /dev/ttyUSB2"), host="box")
    other = MeterRecord(name="ev", readings=keys.readings, raw=keys.raw, status=keys.status,
                        source="serial /dev/ttyUSB1", host="box", updated=now - 3000)  # fmt: skip
    said = conflict(mine, [other], now)
    assert said is not None
    assert "'ev' is already read from serial /dev/ttyUSB1" in said
    assert "this ingest reads serial /dev/ttyUSB2" in said
    # the same source on the same host: this ingest restarted; a record gone quiet: no longer running
    assert conflict(Registration(keys, MeterNaming("ev", "serial /dev/ttyUSB1"), host="box"),
                    [other], now) is None  # fmt: skip
    assert conflict(mine, [other], now + 60_000) is None


async def test_two_named_meters_write_their_own_streams_and_the_directory(
    redis_server: RedisServer, redis: Redis
) -> None:
    settings = [
        settings_for(redis_server.url, meter_name=name, simulator_interval=0.05)
        for name in ("main", "heatpump")
    ]
    async with running(settings[0]), running(settings[1]):
        for name in ("main", "heatpump"):
            stream = ReadingStream(redis, MeterKeys.named(name).readings)

            async def has_reading(stream: ReadingStream = stream) -> bool:
                return await stream.latest() is not None

            await until(has_reading, f"a reading of {name}")
            latest = await stream.latest()
            assert latest is not None and latest[1].meter == name

        async def both_listed() -> bool:
            return len(await MeterDirectory(redis).records()) == 2

        await until(both_listed, "both meters in the directory")
        records = {r.name: r for r in await MeterDirectory(redis).records()}
        assert records["main"].readings == "hanport:{main}:readings"
        assert records["heatpump"].raw == "hanport:{heatpump}:raw"
        assert records["main"].source == "simulator"
        assert records["main"].alive()
        assert await redis.hget("hanport:{main}:ingest:status", "state") is not None
        assert await redis.xlen("hanport:readings") == 0  # the classic stream is not written


async def test_a_second_ingest_with_a_running_meters_name_is_refused_with_one_line(
    redis_server: RedisServer, redis: Redis
) -> None:
    record = MeterRecord(
        name="main", readings="hanport:{main}:readings", raw="hanport:{main}:raw",
        status="hanport:{main}:ingest:status", source="serial /dev/ttyUSB0", host="other-box",
        updated=int(time.time() * 1000),
    )  # fmt: skip
    await MeterDirectory(redis).put(record)
    env = {
        "HANPORT_REDIS_URL": redis_server.url,
        "HANPORT_METER_NAME": "main",
        "HANPORT_SOURCE": "simulator",
        "HANPORT_METRICS_PORT": "0",
        "PATH": "/usr/bin:/bin",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.ingest", env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(WAIT):
        _out, err = await proc.communicate()
    assert proc.returncode == 2
    said = [line for line in err.decode().splitlines() if line.startswith("hanport:")]
    assert len(said) == 1, err.decode()
    assert said[0].startswith(
        "hanport: meter name 'main' is already read from serial /dev/ttyUSB0 on host other-box"
    )
    assert said[0].endswith(
        "this ingest reads simulator: give each meter its own HANPORT_METER_NAME"
    )
