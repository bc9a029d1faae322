"""The ingest service end to end against a real redis-server: a serial port through a
pseudo-terminal (closed and reopened), a Redis outage while the simulator keeps sending, TCP and
file sources, the exactly-once publisher and the settings."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import cast

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from services.ingest.__main__ import serve
from services.ingest.codec.decoded import Decoded, DecodeError
from services.ingest.codec.p1.parser import parse_telegram
from services.ingest.metrics import SOURCE_CONNECTED
from services.ingest.publisher import Pending, Publisher
from services.ingest.settings import IngestSettings
from services.ingest.sources.simulator import SimulatorSource
from services.ingest.sources.spec import parse_source
from shared.reading import Reading, decode_reading
from shared.settings import load_settings
from shared.stream import ReadingStream
from tests.readings import simulated_readings, simulated_telegrams
from tests.servers import RedisServer

WAIT = 30.0  # seconds any single wait in these tests may take at most


def settings_for(redis_url: str, **values: object) -> IngestSettings:
    return IngestSettings(redis_url=redis_url, metrics_port=0, **values)  # type: ignore[arg-type]


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait (bounded) for a condition only observable by looking."""
    try:
        async with asyncio.timeout(WAIT):
            while not await condition():  # noqa: ASYNC110 - only observable by looking
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def read_entries(redis: Redis, key: str, count: int) -> list[tuple[str, dict[bytes, bytes]]]:
    """Block on the stream (XREAD BLOCK) until it holds `count` entries; returns them all."""
    entries: list[tuple[str, dict[bytes, bytes]]] = []
    last = "0-0"
    async with asyncio.timeout(WAIT):
        while len(entries) < count:
            response = cast(
                list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]],
                await redis.xread({key: last}, block=1000),
            )
            for _key, items in response or ():
                for raw_id, fields in items:
                    last = raw_id.decode()
                    entries.append((last, fields))
    return entries


async def xrange(redis: Redis, key: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(key))


@contextlib.asynccontextmanager
async def running(settings: IngestSettings) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(serve(settings))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Pty:
    """A pseudo-terminal behind a stable path (like /dev/serial/by-id/...): `replug` closes it
    and makes a new one behind the same path, as when an adapter is unplugged and plugged in."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self.plug()

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # what pyserial also does; set here so nothing is echoed meanwhile
        name = os.ttyname(slave)
        os.close(slave)
        self.master = master
        tmp = self.link.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(name)
        tmp.replace(self.link)

    def unplug(self) -> None:
        os.close(self.master)
        self.link.unlink()

    def write(self, data: bytes) -> None:
        os.write(self.master, data)


async def test_serial_pty_telegrams_arrive_including_after_replug(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    telegrams = simulated_telegrams(6)
    expected = simulated_readings(6)
    port = Pty(tmp_path / "ttyP1")
    settings = settings_for(redis_server.url, source=f"serial://{port.link}?baud=115200")
    redis = Redis.from_url(redis_server.url)
    SOURCE_CONNECTED.set(0)

    def port_open(state: float) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return REGISTRY.get_sample_value("hanport_ingest_source_connected") == state

        return check

    try:
        async with running(settings):
            # pyserial discards what arrived before it opened the port, as a real port would
            await until(port_open(1), "the service opened the port")
            port.write(b"\x00\xffnoise" + telegrams[0] + telegrams[1][:50])
            port.write(telegrams[1][50:] + telegrams[2])
            first = await read_entries(redis, "hanport:readings", 3)
            port.unplug()  # the adapter goes away ...
            await until(port_open(0), "the service noticed")
            port.plug()  # ... and comes back behind the same path
            await until(port_open(1), "the service reopened the port")
            for telegram in telegrams[3:]:
                port.write(telegram)
            entries = await read_entries(redis, "hanport:readings", 6)
        readings = [decode_reading(fields[b"reading"]) for _id, fields in entries]
        assert entries[:3] == first
        assert [r.ts for r in readings] == [r.ts for r in expected]
        assert [r.ic for r in readings] == [r.ic for r in expected]
        assert [r.pi for r in readings] == [r.pi for r in expected]
        assert all(r.crc == "ok" for r in readings)
        raw = await xrange(redis, "hanport:raw")
        assert [fields[b"result"] for _id, fields in raw] == [b"ok"] * 6, raw
        assert [fields[b"raw"] for _id, fields in raw] == [t.rstrip(b"\r\n") for t in telegrams]
    finally:
        await redis.aclose()


class RecordingSimulator(SimulatorSource):
    """The real simulator source, remembering what it sent, ending after `limit` telegrams."""

    sent: list[bytes]
    limit = 150

    async def chunks(self) -> AsyncIterator[bytes]:
        self.sent = []
        async for chunk in super().chunks():
            self.sent.append(chunk)
            yield chunk
            if len(self.sent) == self.limit:
                return


async def test_redis_outage_every_reading_once_in_order(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.ingest import __main__ as service

    sources: list[RecordingSimulator] = []
    publishers: list[Publisher] = []

    def open_recording(spec: object, **kwargs: object) -> RecordingSimulator:
        source = RecordingSimulator(parse_source("simulator"), interval=0.02)
        sources.append(source)
        return source

    def recording_publisher(*args: object, **kwargs: object) -> Publisher:
        publisher = Publisher(*args, **kwargs)  # type: ignore[arg-type]
        publishers.append(publisher)
        return publisher

    monkeypatch.setattr(service, "open_source", open_recording)
    monkeypatch.setattr(service, "Publisher", recording_publisher)
    redis = Redis.from_url(redis_server.url)
    async with running(settings_for(redis_server.url)) as task:
        await read_entries(redis, "hanport:readings", 5)
        await redis.aclose()
        redis_server.stop()  # Redis goes away while the meter keeps sending
        publisher = publishers[0]

        async def buffering() -> bool:
            return len(publisher.queue) >= 20

        await until(buffering, "readings buffered while Redis is down")
        assert len(sources[0].sent) < RecordingSimulator.limit, "the outage came too late"
        redis_server.start()
        async with asyncio.timeout(WAIT):
            await task  # the source ends after `limit` telegrams; serve drains, then returns
    redis = Redis.from_url(redis_server.url)
    try:
        entries = await xrange(redis, "hanport:readings")
        sent = sources[0].sent
        assert len(sent) == RecordingSimulator.limit
        ids = [entry_id.decode() for entry_id, _ in entries]
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))) and len(
            set(ids)
        ) == len(ids)
        readings = [decode_reading(fields[b"reading"]) for _id, fields in entries]
        expected = [parse_telegram(t, received_ms=0) for t in sent]

        def key(r: Reading) -> tuple[object, ...]:
            return (r.meter_time, r.ic, r.ec, *r.u, *r.i, *r.pi, *r.pe)

        assert [key(r) for r in readings] == [key(r) for r in expected]  # all, in order, once
        assert len({key(r) for r in expected}) > len(expected) * 0.9  # the keys tell them apart
        assert publisher.dropped == 0 and not publisher.queue
    finally:
        await redis.aclose()


async def test_published_entries_are_not_repeated_on_retry(redis_server: RedisServer) -> None:
    publisher = Publisher(redis_server.url, "t:readings", "t:raw")
    readings = simulated_readings(3)
    for reading in readings:
        publisher.put(reading, b"/raw", "ok", reading.received)
    publisher.put(None, b"/bad", "crc_error", readings[-1].received)
    task = asyncio.create_task(publisher.run())
    try:
        assert await publisher.drain(WAIT)
        redis = Redis.from_url(redis_server.url)
        stream = ReadingStream(redis, "t:readings")
        stored = await stream.range()
        assert [r for _id, r in stored] == readings
        # A retry after a lost reply re-sends the same ids: Redis refuses, nothing doubles.
        first_id = stored[0][0]
        publisher.queue.append(
            Pending(readings[0], b"/raw", "ok", readings[0].received, 10, entry_id=first_id)
        )
        assert await publisher.drain(WAIT)
        assert len(await stream.range()) == 3
        raw = await xrange(redis, "t:raw")
        assert [fields[b"result"] for _id, fields in raw] == [b"ok", b"ok", b"ok", b"crc_error"]
        await redis.aclose()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_buffer_drops_oldest_and_counts() -> None:
    publisher = Publisher("redis://127.0.0.1:1/0", "k", "raw", max_items=5)
    readings = simulated_readings(8)
    for reading in readings:
        publisher.put(reading, b"x", "ok", reading.received)
    assert [p.received for p in publisher.queue] == [r.received for r in readings[3:]]
    assert publisher.dropped == 3
    small = Publisher("redis://127.0.0.1:1/0", "k", "raw", max_bytes=4000)
    for reading in readings:
        small.put(reading, b"x" * 1000, "ok", reading.received)
    assert small.queued_bytes <= 4000 and small.dropped == 8 - len(small.queue)


async def test_tcp_source_reconnects(redis_server: RedisServer) -> None:
    telegrams = simulated_telegrams(4)
    connections = 0

    async def meter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        half = telegrams[:2] if connections == 1 else telegrams[2:]
        for telegram in half:
            writer.write(telegram)
        await writer.drain()
        writer.close()  # the dongle drops the connection after each pair

    server = await asyncio.start_server(meter, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    redis = Redis.from_url(redis_server.url)
    try:
        async with running(settings_for(redis_server.url, source=f"tcp://127.0.0.1:{port}")):
            entries = await read_entries(redis, "hanport:readings", 4)
        readings = [decode_reading(fields[b"reading"]) for _id, fields in entries[:4]]
        assert [r.ts for r in readings] == [r.ts for r in simulated_readings(4)]
        assert connections >= 2
    finally:
        server.close()
        await redis.aclose()


@pytest.mark.parametrize("pace", ["fast", "recorded"])
async def test_file_source_replays_and_ends(
    redis_server: RedisServer, tmp_path: Path, pace: str
) -> None:
    capture = tmp_path / "capture.txt"
    good = simulated_telegrams(2, interval_ms=200)  # the clock ticks in seconds: gap 0 or 1 s
    bad = good[0].replace(b"1-0:1.8.0(", b"1-0:1.8.0(9")
    capture.write_bytes(good[0] + bad + good[1])
    settings = settings_for(redis_server.url, source=f"file://{capture}?pace={pace}")

    def metric(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = {
        "ok": metric("hanport_ingest_telegrams_total", result="ok"),
        "crc": metric("hanport_ingest_telegrams_total", result="crc_error"),
        "bytes": metric("hanport_ingest_bytes_read_total"),
        "published": metric("hanport_ingest_published_total"),
        "decoded": metric("hanport_ingest_decode_seconds_count"),
    }
    async with asyncio.timeout(WAIT):
        await serve(settings)  # returns when the file is done and everything is published
    assert metric("hanport_ingest_telegrams_total", result="ok") - before["ok"] == 2
    assert metric("hanport_ingest_telegrams_total", result="crc_error") - before["crc"] == 1
    assert metric("hanport_ingest_bytes_read_total") - before["bytes"] == capture.stat().st_size
    assert metric("hanport_ingest_published_total") - before["published"] == 2
    assert metric("hanport_ingest_decode_seconds_count") - before["decoded"] == 3
    assert metric("hanport_ingest_buffer_depth") == 0
    redis = Redis.from_url(redis_server.url)
    try:
        assert await redis.xlen("hanport:readings") == 2
        raw = await xrange(redis, "hanport:raw")
        assert [fields[b"result"] for _id, fields in raw] == [b"ok", b"crc_error", b"ok"]
    finally:
        await redis.aclose()


async def test_fast_replay_waits_for_redis_instead_of_dropping(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A capture replayed as fast as possible is far quicker than Redis round trips: with a
    buffer of 300 readings, 3,000 telegrams must all be stored, in order, none dropped."""
    telegrams = simulated_telegrams(3000, interval_ms=1000)
    capture = tmp_path / "big.txt"
    capture.write_bytes(b"".join(telegrams))
    settings = settings_for(
        redis_server.url, source=f"file://{capture}?pace=fast", buffer_max_readings=300
    )
    dropped = REGISTRY.get_sample_value("hanport_ingest_dropped_readings_total") or 0.0
    async with asyncio.timeout(WAIT):
        await serve(settings)
    assert (REGISTRY.get_sample_value("hanport_ingest_dropped_readings_total") or 0.0) == dropped
    stream = ReadingStream(Redis.from_url(redis_server.url), "hanport:readings")
    try:
        stored = await stream.range()
    finally:
        await stream.redis.aclose()
    expected = [parse_telegram(t, received_ms=0).ts for t in telegrams]
    assert [reading.ts for _id, reading in stored] == expected


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("HANPORT_SOURCE", "ftp://meter", "unknown source"),
        ("HANPORT_SOURCE", "serial:///dev/ttyUSB0?parity=X", "parity must be N, E or O"),
        ("HANPORT_SOURCE", "tcp://meter", "expected tcp://host:port"),
        ("HANPORT_SOURCE", "file:///no/such/capture.txt", "cannot read the capture file"),
        ("HANPORT_METER_TIMEZONE", "Mars/Olympus", "IANA time zone"),
        ("HANPORT_SIMULATOR_INTERVAL", "0", "greater than 0"),
        ("HANPORT_STREAM_MAXLEN", "lots", "integer"),
        ("HANPORT_CRC_CHECK", "maybe", "boolean"),
    ],
)
def test_bad_settings_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    words: str,
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as caught:
        load_settings(IngestSettings)
    assert caught.value.code == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and variable in line and value in line and words in line


def test_source_forms() -> None:
    assert parse_source("simulator").kind == "simulator"
    spec = parse_source("serial:///dev/ttyUSB0?baud=9600&parity=e&bytesize=7&stopbits=1")
    assert (spec.path, spec.baud, spec.parity, spec.bytesize) == ("/dev/ttyUSB0", 9600, "E", 7)
    assert parse_source("/dev/ttyAMA0").path == "/dev/ttyAMA0"
    tcp = parse_source("tcp://dongle.local:2000")
    assert (tcp.kind, tcp.host, tcp.port) == ("tcp", "dongle.local", 2000)
    assert parse_source("file:///tmp/x.txt?pace=fast").pace == "fast"
    assert parse_source("file:///tmp/x.txt").pace == "recorded"


async def test_a_failing_decoder_does_not_stop_the_service(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.ingest import __main__ as service
    from services.ingest.codec.p1.decoder import P1Decoder

    made: list[P1Decoder] = []

    class Flaky(P1Decoder):
        def feed(self, data: bytes, received_ms: int) -> list[Decoded | DecodeError]:
            if len(made) == 1:  # the first decoder breaks on its first chunk
                raise RuntimeError("decoder bug")
            return super().feed(data, received_ms)

    def new_decoder(options: object) -> P1Decoder:
        made.append(Flaky())
        return made[-1]

    monkeypatch.setattr(service, "make_decoder", new_decoder)
    capture = tmp_path / "capture.txt"
    capture.write_bytes(b"".join(simulated_telegrams(3, interval_ms=200)))
    errors = REGISTRY.get_sample_value(
        "hanport_ingest_telegrams_total", {"result": "decoder_error"}
    )
    settings = settings_for(redis_server.url, source=f"file://{capture}")
    async with asyncio.timeout(WAIT):
        await serve(settings)
    after = REGISTRY.get_sample_value("hanport_ingest_telegrams_total", {"result": "decoder_error"})
    assert (after or 0) - (errors or 0) == 1 and len(made) == 2
    redis = Redis.from_url(redis_server.url)
    try:
        assert await redis.xlen("hanport:readings") == 2  # the other telegrams still arrive
    finally:
        await redis.aclose()


def test_rejection_log_is_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.ingest.__main__ import LogLimit

    clock = [1000.0]
    monkeypatch.setattr("services.ingest.__main__.time.monotonic", lambda: clock[0])
    limit = LogLimit(per_minute=3)
    assert [limit.allow() for _ in range(5)] == [True, True, True, False, False]
    clock[0] += 61
    assert limit.allow() and limit.suppressed == 0
