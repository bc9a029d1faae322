"""`hanport doctor` as a user runs it (the `hanport` command, the HANPORT_* settings, a real
redis-server, meters behind pseudo-terminals), and the status the ingest service keeps in
Redis for it (`hanport:ingest:status`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import termios
from pathlib import Path

from services.ingest.__main__ import serve
from services.ingest.codec.factory import DecoderOptions, make_decoder
from services.ingest.diagnosis import FIXES
from services.ingest.settings import IngestSettings
from services.ingest.sources import open_source
from services.ingest.sources.spec import parse_source
from services.ingest.status import StatusWriter
from shared.cancellation import stop
from shared.entitlements import Record, encode_record, record_key
from shared.ingest_status import STATUS_KEY, read_status
from shared.stream import connect
from tests.dlms.conftest import frame
from tests.dlms.meter import Meter
from tests.servers import RedisServer

ROOT = Path(__file__).resolve().parents[2]
P1 = frame("p1/kam5_b.txt")
ENCRYPTED = frame("encrypted/lg_e450_at_hdlc_gcm.hex")  # Landis+Gyr E450, Austria: HDLC, GCM


def doctor(
    tmp_path: Path, redis_url: str, *args: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    """`hanport doctor` in a folder of its own (no .env) with only these HANPORT_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANPORT_")}
    env |= {"PYTHONPATH": str(ROOT), "HANPORT_REDIS_URL": redis_url, **settings}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "doctor", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def lines(result: subprocess.CompletedProcess[str], check: str) -> list[str]:
    """The report's lines about `check`, each followed by its fix line when it has one."""
    out = result.stdout.splitlines()
    found = []
    for n, line in enumerate(out):
        if line.split()[1:2] == [check]:
            found.append(line)
            if n + 1 < len(out) and out[n + 1].strip().startswith("fix: "):
                found.append(out[n + 1].strip())
    return found


def test_a_missing_device_is_named_with_what_to_do(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    missing = str(tmp_path / "ttyUSB0")
    result = doctor(tmp_path, redis_server.url, HANPORT_SOURCE=missing)
    assert result.returncode == 1, result
    source, fix = lines(result, "source")
    assert source.startswith(f"FAIL  source      serial {missing} (line settings detected): ")
    assert "the device is missing" in source and "No such file or directory" in source
    assert fix.startswith("fix: plug the adapter in") and "HANPORT_SOURCE" in fix
    assert "HANPORT_DEVICE" in fix
    assert lines(result, "redis")[0].startswith("ok    redis       Redis at redis://127.0.0.1:")
    assert result.stdout.endswith("data flows (readings decode, Redis answers): no\n")


def test_an_encrypted_meter_without_a_key_is_named(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with Meter([ENCRYPTED], termios.B2400) as meter:  # the E450's HAN port: 2400 8E1
        source = f"serial://{meter.path}?baud=2400&parity=E"
        result = doctor(tmp_path, redis_server.url, HANPORT_SOURCE=source)
    assert result.returncode == 1, result
    assert lines(result, "source")[0].startswith("ok ")
    assert "protocol hdlc: 3 frames (3 key_error)" in lines(result, "frames")[0]
    says, fix = lines(result, "encryption")
    assert says == "FAIL  encryption  encrypted frames and no key to open them"
    assert "HANPORT_METER_KEY" in fix


def test_a_good_p1_meter_exits_0(tmp_path: Path, redis_server: RedisServer) -> None:
    with Meter([P1], termios.B115200) as meter:
        result = doctor(tmp_path, redis_server.url, HANPORT_SOURCE=meter.path)
    assert result.returncode == 0, result
    assert lines(result, "line") == ["ok    line        line settings found: 115200 8N1"]
    assert lines(result, "frames") == ["ok    frames      protocol p1: 3 frames (3 ok)"]
    assert lines(result, "crc") == ["ok    crc         CRC OK (3 ok)"]
    # Neither ingest nor licensing ran: notes say so (they do not change the exit status).
    assert lines(result, "ingest")[0].startswith("note  ingest      no ingest service reported")
    assert lines(result, "license") == [
        "note  license     no license records: the licensing service has not run",
        "fix: start it: `hanport licensing`",
    ]
    assert result.stdout.endswith("data flows (readings decode, Redis answers): yes\n")


async def test_ingest_keeps_its_source_status_in_redis_and_doctor_reads_it(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """The ingest loop's status writer says why nothing arrives (the port is missing), and
    `hanport doctor` reports what the running ingest says instead of opening the port."""
    missing = str(tmp_path / "ttyACM0")
    source = open_source(parse_source(missing))
    status = StatusWriter(redis_server.url, source, every=0.05)
    decoder = make_decoder(DecoderOptions(protocol="auto"))

    async def ingest_loop() -> None:  # as services.ingest.__main__.ingest counts
        async for chunk in source.chunks():
            status.counted(len(chunk), decoder.feed(chunk, 0), decoder.protocol)

    redis = await connect(redis_server.url)
    await redis.config_set("notify-keyspace-events", "Kh")  # a message at each HSET
    changes = redis.pubsub()
    await changes.subscribe(f"__keyspace@0__:{STATUS_KEY}")
    tasks = [asyncio.create_task(ingest_loop()), asyncio.create_task(status.run())]
    try:
        fields: dict[str, str] = {}
        async with asyncio.timeout(20):
            while fields.get("state") != "source":
                await changes.get_message(ignore_subscribe_messages=True, timeout=5)
                fields = read_status(await redis.hgetall(STATUS_KEY))
        assert fields["source"] == f"serial {missing} (line settings detected)"
        assert "the device is missing" in fields["reason"]
        assert "HANPORT_SOURCE" in fields["fix"] and int(fields["updated"]) > 0
        assert fields["bytes"] == "0"
        result = await asyncio.to_thread(doctor, tmp_path, redis_server.url)
    finally:
        for task in tasks:
            await stop(task)  # cancels again should redis-py swallow one
        await changes.aclose()
        await redis.aclose()
    assert result.returncode == 1, result
    assert lines(result, "ingest")[0].startswith("ok    ingest      ingest service (")
    says, fix = lines(result, "source")
    assert says.startswith("FAIL  source      ") and "the device is missing" in says
    assert "HANPORT_SOURCE" in fix


async def test_license_records_are_reported(tmp_path: Path, redis_server: RedisServer) -> None:
    """The records the licensing service writes, one line per feature."""
    redis = await connect(redis_server.url)
    try:
        for record in (
            Record(feature="rest", granted=True, reason="consumer use needs no license"),
            Record(feature="mqtt", granted=False, reason="no activation installed"),
        ):
            await redis.set(record_key(record.feature), encode_record(record))
    finally:
        await redis.aclose()
    result = await asyncio.to_thread(
        doctor, tmp_path, redis_server.url, HANPORT_SOURCE=str(tmp_path / "none")
    )
    assert lines(result, "license") == [
        "ok    license     rest: granted (consumer use needs no license)",
        "note  license     mqtt: not granted (no activation installed)",
        "fix: install a license: docs/licensing.md (`curl -s localhost:8090/license` says more)",
        "note  license     modbus: no record",
        "note  license     shelly: no record",
        "note  license     homewizard: no record",
        "note  license     sma: no record",
        "note  license     export: no record",
    ]


async def test_the_ingest_service_says_at_once_that_its_device_is_missing(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """`hanport ingest` with a missing adapter: within seconds (not at the next 10 s round) the
    status hash says the device is missing and what to do."""
    missing = str(tmp_path / "ttyUSB0")
    settings = IngestSettings(redis_url=redis_server.url, metrics_port=0, source=missing)  # type: ignore[call-arg]
    redis = await connect(redis_server.url)
    await redis.config_set("notify-keyspace-events", "Kh")
    changes = redis.pubsub()
    await changes.subscribe(f"__keyspace@0__:{STATUS_KEY}")
    service = asyncio.create_task(serve(settings))
    try:
        async with asyncio.timeout(5):
            message = None
            while message is None:
                message = await changes.get_message(ignore_subscribe_messages=True, timeout=5)
        fields = read_status(await redis.hgetall(STATUS_KEY))
    finally:
        service.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await service
        await changes.aclose()
        await redis.aclose()
    assert fields["state"] == "source", fields
    assert fields["reason"].startswith(f"serial {missing} (line settings detected): the device")
    assert fields["fix"] == FIXES["missing"]
