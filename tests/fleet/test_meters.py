"""Every meter of the box: the classic stream and each named meter's own stream (found in the
directory, also one that appears while the uplink runs) reach the hub, each meter's readings
once and in order. (Each Feeder numbers its entry ids from the same start: the ids repeat across
streams, as they may on a box, and the message ids still differ by meter.)"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from services.uplink.uplink import run_uplink
from shared.meters import MeterDirectory, MeterKeys, MeterRecord
from shared.stream import connect
from tests.fleet.nats import NatsServer
from tests.fleet.support import (
    Feeder,
    create_hub_stream,
    eventually,
    hub_client,
    hub_readings,
    settings,
)
from tests.servers import RedisServer


async def register(directory: MeterDirectory, name: str) -> str:
    keys = MeterKeys.named(name)
    now = int(time.time() * 1000)
    await directory.put(
        MeterRecord(
            name=name,
            readings=keys.readings,
            raw=keys.raw,
            status=keys.status,
            started=now,
            updated=now,
        )  # fmt: skip
    )
    return keys.readings


async def test_every_meter_stream_reaches_the_hub(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    hub = NatsServer(tmp_path / "hub")
    hub.start()
    redis = await connect(redis_server.url)
    nc = await hub_client(hub.url)
    await create_hub_stream(nc)
    directory = MeterDirectory(redis)
    config = settings(hub.url, redis_server.url)
    classic = Feeder(redis, config.stream, meters=("main",))
    first = Feeder(redis, await register(directory, "flat.1"), meters=("flat.1",))
    await classic.add(50)
    await first.add(70)
    uplink = asyncio.create_task(run_uplink(config, redis))
    try:

        async def arrived(expected: dict[str, list[str]]) -> bool:
            return dict(await hub_readings(nc)) == expected

        await eventually(lambda: arrived({**classic.sent, **first.sent}), "the first meters")
        # a meter whose ingest starts now: found in the directory, its stream followed
        later = Feeder(redis, await register(directory, "heat-pump"), meters=("heat-pump",))
        await later.add(30)
        await first.add(30)
        await eventually(
            lambda: arrived({**classic.sent, **first.sent, **later.sent}), "every meter"
        )
    finally:
        uplink.cancel()
        await asyncio.gather(uplink, return_exceptions=True)
        await nc.close()
        hub.stop()
