"""The stream's trimming keeps what an export group has not confirmed, within the budget: warns
at 50% and 90% of it, and past it drops the oldest and counts them (real redis-server)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY

from shared.reading import encode_reading
from shared.retention import Retention, choose_maxlen, group_backlogs
from shared.stream import connect
from tests.servers import RedisServer

from .support import reading

KEY = "hanport:readings"


def test_maxlen_grows_to_the_budget_only_when_a_group_is_half_the_usual_length_behind() -> None:
    assert choose_maxlen(100, 1000, 0) == 100
    assert choose_maxlen(100, 1000, 50) == 100
    assert choose_maxlen(100, 1000, 51) == 1000
    assert choose_maxlen(100, 10, 500) == 100  # a budget below MAXLEN never trims more


def dropped(group: str) -> float:
    value = REGISTRY.get_sample_value(
        "hanport_stream_retention_dropped_total", {"stream": KEY, "group": group}
    )
    return value or 0.0


async def test_budget_warnings_and_drops(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    redis = await connect(redis_server.url)
    await redis.xgroup_create(KEY, "export-influx", "0", mkstream=True, entries_read=0)
    await redis.xgroup_create(KEY, "mqtt", "$")  # not an export group: not retained for
    retention = Retention(budget=100, every=0)
    before = dropped("export-influx")
    maxlens = []
    caplog.set_level(logging.WARNING, "shared.retention")
    for n in range(130):
        maxlen = await retention.maxlen(redis, KEY, 20)
        maxlens.append(maxlen)
        await redis.xadd(
            KEY, {"reading": encode_reading(reading(n))}, maxlen=maxlen, approximate=False
        )
    assert maxlens[:11] == [20] * 11 and set(maxlens[11:]) == {100}  # past 10 (half of 20)
    backlog = (await group_backlogs(redis, KEY))["export-influx"]
    assert (backlog.entries, backlog.missing) == (100, 30) and backlog.oldest is not None
    assert await redis.xlen(KEY) == 100  # the budget holds
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w.split(", ")[1].split("%")[0] for w in warnings] == ["50", "90"]
    assert dropped("export-influx") - before == 29  # the 30th over is dropped by the next XADD
    assert dropped("mqtt") == 0
    # the group reads everything left and confirms it: back to the usual length
    entries: Any = await redis.xreadgroup("export-influx", "c", {KEY: ">"}, count=1000)
    await redis.xack(KEY, "export-influx", *[e[0] for e in entries[0][1]])
    assert await retention.maxlen(redis, KEY, 20) == 20
    await redis.aclose()
