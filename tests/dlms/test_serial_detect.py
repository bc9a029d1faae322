"""baud=auto through a pseudo-terminal: a simulated meter sends HDLC frames only while the port
is at 2400 baud (and line noise otherwise); detection walks the line settings, finds 2400 8E1
and HDLC, reports it in metrics, and the frames read at that setting land on a real Redis
stream. A pty ignores parity and really ignores speed too, so the simulator reads the speed the
reader set from the pty's termios and answers accordingly: detection picks by valid frames."""

from __future__ import annotations

import asyncio
import contextlib
import termios
from collections.abc import AsyncGenerator, Iterator
from typing import cast

import pytest
from prometheus_client import REGISTRY

from services.ingest.codec.decoded import Decoded
from services.ingest.codec.dlms.decoder import DlmsDecoder
from services.ingest.codec.factory import DecoderOptions, make_decoder
from services.ingest.sources import open_source
from services.ingest.sources.line_settings import (
    AutoSerialSource,
    LineSetting,
    detect_line,
    sample_serial,
)
from services.ingest.sources.line_settings import PortProber as Prober
from services.ingest.sources.spec import parse_source
from shared.stream import ReadingStream, connect
from tests.servers import RedisServer

from .conftest import FIXTURES, frame
from .meter import Meter

FRAMES = [frame("hdlc/kaifa_gh180.hex"), frame("hdlc/aidon_se_27items_doc.hex")]
SETTINGS = (
    LineSetting(115200, 8, "N", 1),
    LineSetting(2400, 8, "E", 1),
    LineSetting(9600, 8, "E", 1),
)


@pytest.fixture
def meter() -> Iterator[Meter]:
    with Meter(FRAMES) as simulated:
        yield simulated


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_baud_auto_finds_2400_8e1_and_readings_reach_redis(
    meter: Meter, redis_server: RedisServer
) -> None:
    before = metric("hanport_ingest_line_probes_total", setting="115200 8N1", result="nothing")

    probers: list[Prober] = []

    async def sample(setting: LineSetting, prober: Prober) -> str | None:
        probers.append(prober)
        return await asyncio.to_thread(sample_serial, meter.path, setting, prober, 1.5)

    found = await asyncio.wait_for(detect_line(sample, settings=SETTINGS, port=meter.path), 30)
    assert found == (LineSetting(2400, 8, "E", 1), "hdlc")
    assert metric("hanport_ingest_line_detected", setting="2400 8E1", protocol="hdlc") == 1
    after = metric("hanport_ingest_line_probes_total", setting="115200 8N1", result="nothing")
    assert after == before + 1

    # Go on reading the port detection left open, after the bytes detection already read, and
    # publish what decodes to a real Redis stream.
    redis = await connect(redis_server.url)
    stream = ReadingStream(redis, "hanport:readings")
    decoder = DlmsDecoder("hdlc", tz="Europe/Oslo")
    prober = probers[-1]
    port = prober.port
    assert port is not None and port.is_open and port.baudrate == 2400 and port.parity == "E"
    assert all(p.port is None for p in probers[:-1])  # ports of the failed settings are closed
    published = 0
    data = prober.sample
    try:
        async with asyncio.timeout(20):
            while published < 4:
                for item in decoder.feed(data, 1):
                    if isinstance(item, Decoded):
                        await stream.add(item.reading)
                        published += 1
                data = await asyncio.to_thread(port.read, 4096)
    finally:
        port.close()
    readings = [reading for _id, reading in await stream.range(count=10)]
    assert len(readings) == published >= 4
    assert {r.pi[0] for r in readings} == {4097.0, 1122.0}
    assert all(r.protocol == "hdlc" and r.crc == "ok" for r in readings)
    await redis.aclose()


@pytest.mark.parametrize(
    ("frames", "baud", "protocol", "setting"),
    [
        (FRAMES, termios.B2400, "hdlc", "2400 8E1"),  # a Nordic HAN port
        ([(FIXTURES / "p1/kam5_b.txt").read_bytes()], termios.B115200, "p1", "115200 8N1"),
    ],
    ids=["hdlc-2400-8E1", "p1-115200-8N1"],
)
async def test_a_bare_device_path_finds_the_line_settings_itself(
    frames: list[bytes], baud: int, protocol: str, setting: str
) -> None:
    """`HANPORT_SOURCE=/dev/ttyUSB0` alone: the source detects the line settings and what it
    reads decodes (a fixed 115200 8N1 would give a 2400 8E1 meter's port only noise)."""
    with Meter(frames, baud) as meter:
        spec = parse_source(meter.path)
        assert spec.describe() == f"serial {meter.path} (line settings detected)"
        source = open_source(spec)
        assert isinstance(source, AutoSerialSource)
        source.sample_seconds = 1.5  # the simulated meter sends every 0.05 s
        decoder = make_decoder(DecoderOptions(protocol="auto", timezone="Europe/Oslo"))
        readings = []
        async with (
            asyncio.timeout(30),
            contextlib.aclosing(cast(AsyncGenerator[bytes, None], source.chunks())) as chunks,
        ):
            async for chunk in chunks:
                items = decoder.feed(chunk, 1)
                readings += [item.reading for item in items if isinstance(item, Decoded)]
                if len(readings) >= 3:
                    break
    assert decoder.protocol == protocol
    assert all(r.protocol == protocol and r.crc == "ok" for r in readings)
    assert metric("hanport_ingest_line_detected", setting=setting, protocol=protocol) == 1
