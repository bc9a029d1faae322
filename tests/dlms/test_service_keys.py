"""Wrong keys through the ingest service: the frame is rejected with a clear, counted error that
names the meter and never shows a key; the service goes on and publishes the next good frame."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.ingest.__main__ import serve
from services.ingest.settings import IngestSettings
from shared.stream import ReadingStream, connect
from tests.servers import RedisServer

from .conftest import frame

ENCRYPTION = "34743677397A24432646294A404E6352"
WRONG_AUTH = "000102030405060708090A0B0C0D0E0F"


def count(result: str) -> float:
    return REGISTRY.get_sample_value("hanport_ingest_telegrams_total", {"result": result}) or 0.0


async def test_wrong_auth_key_is_counted_and_named_without_the_key(
    tmp_path: Path, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    capture = tmp_path / "capture.bin"
    capture.write_bytes(frame("encrypted/lg_e450_at_hdlc_gcm.hex") + frame("hdlc/kaifa_gh180.hex"))
    values: dict[str, Any] = {
        "redis_url": redis_server.url,
        "metrics_port": 0,
        "source": f"file://{capture}?pace=fast",
        "meter_key": ENCRYPTION,
        "meter_auth_key": WRONG_AUTH,
    }
    settings = IngestSettings(**values)
    assert ENCRYPTION.lower() not in repr(settings).lower()
    before = count("auth_error")
    with caplog.at_level(logging.INFO):
        await asyncio.wait_for(serve(settings), 30)  # a file source ends; serve drains and returns
    assert count("auth_error") == before + 1
    redis = await connect(redis_server.url)
    try:
        readings = [r for _id, r in await ReadingStream(redis, settings.stream).range()]
        raw: Any = await redis.xrange(settings.raw_stream)
    finally:
        await redis.aclose()
    assert [r.meter_id for r in readings] == ["6970631403275928"]
    assert [fields[b"result"] for _id, fields in raw if fields[b"result"] != b"ok"] == [
        b"auth_error"
    ]
    text = caplog.text
    assert "auth_error" in text and "LGZ" in text
    for key in (ENCRYPTION, WRONG_AUTH):
        assert key.lower() not in text.lower()


def test_malformed_key_stops_with_one_line_naming_the_setting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        bad: dict[str, Any] = {"meter_key": "34743677397A24432646294A404E63"}
        IngestSettings(**bad)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "HANPORT_METER_KEY" in err and "15 bytes" in err
    assert "34743677" not in err
