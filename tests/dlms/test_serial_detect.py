"""baud=auto through a pseudo-terminal: a simulated meter sends HDLC frames only while the port
is at 2400 baud (and line noise otherwise); detection walks the line settings, finds 2400 8E1
and HDLC, reports it in metrics, and the frames read at that setting land on a real Redis
stream. A pty ignores parity and really ignores speed too, so the simulator reads the speed the
reader set from the pty's termios and answers accordingly: detection picks by valid frames."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from services.ingest.codec.decoded import Decoded
from services.ingest.codec.dlms.decoder import DlmsDecoder
from services.ingest.sources.line_settings import LineSetting, detect_line, sample_serial
from services.ingest.sources.line_settings import PortProber as Prober
from shared.stream import ReadingStream, connect
from tests.servers import RedisServer

from .conftest import frame
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
