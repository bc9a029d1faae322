"""The ingest service itself reading a binary meter: `serial://PTY?baud=auto` with
`HANPORT_METER_PROTOCOL=auto` and the meter's keys. The simulated meter speaks only at 2400 baud
(see `meter.py`): an encrypted, authenticated Landis+Gyr E450 frame (Netz Burgenland) and a
Kaifa frame in turn. Readings must land on a real Redis stream, and the detection metrics say
what was found."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.ingest.__main__ import serve
from services.ingest.settings import IngestSettings
from services.ingest.sources import line_settings as detect
from shared.stream import ReadingStream, connect
from tests.servers import RedisServer

from .conftest import frame
from .meter import Meter

LG = frame("encrypted/lg_e450_at_hdlc_gcm.hex")
KAIFA = frame("hdlc/kaifa_gh180.hex")


@pytest.fixture
def meter(monkeypatch: pytest.MonkeyPatch) -> Iterator[Meter]:
    monkeypatch.setattr(detect, "DETECT_SECONDS", 1.5)  # the simulator sends every 50 ms
    with Meter([LG, KAIFA]) as simulated:
        yield simulated


async def test_service_detects_line_and_protocol_and_decrypts(
    meter: Meter, redis_server: RedisServer
) -> None:
    values: dict[str, Any] = {
        "redis_url": redis_server.url,
        "metrics_port": 0,
        "source": f"serial://{meter.path}?baud=auto",
        "meter_timezone": "Europe/Vienna",
        "meter_key": "34743677397A24432646294A404E6352",
        "meter_auth_key": "C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF",
    }
    settings = IngestSettings(**values)
    assert settings.meter_protocol == "auto"
    redis = await connect(redis_server.url)
    stream = ReadingStream(redis, settings.stream)
    task = asyncio.create_task(serve(settings))
    try:
        readings = []
        async with asyncio.timeout(60):
            async for _id, reading in stream.follow("0-0"):
                readings.append(reading)
                if {r.meter_id for r in readings} >= {"30137181", "6970631403275928"}:
                    break
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await redis.aclose()
    lg = next(r for r in readings if r.meter_id == "30137181")
    assert lg.u == [236.0, 237.0, 236.0] and lg.crc == "ok" and lg.protocol == "hdlc"
    kaifa = next(r for r in readings if r.meter_id == "6970631403275928")
    assert kaifa.i == [12.056, 5.754, 13.412]
    detected = REGISTRY.get_sample_value(
        "hanport_ingest_line_detected", {"setting": "2400 8E1", "protocol": "hdlc"}
    )
    assert detected == 1
    assert REGISTRY.get_sample_value("hanport_ingest_protocol_detected", {"protocol": "hdlc"}) == 1
