"""The hub unreachable while readings flow, then back: every reading at the hub exactly once, in
order per meter, with and without the box's disk spool.

Compressed: 10 minutes of one meter at 1 Hz is 600 readings; here two meters flow at 200
readings/s for 3 s of outage (600 readings sent while the hub is away). The full-length run is
`python -m bench.fleet outage` (docs/fleet.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.uplink.uplink import run_uplink
from shared.stream import connect
from tests.fleet.nats import NatsServer
from tests.fleet.support import Feeder, create_hub_stream, hub_client, settings, wait_all
from tests.servers import RedisServer

OUTAGE_S = 3.0
RATE = 200.0


@pytest.mark.parametrize("spooled", [False, True], ids=["direct", "spool"])
async def test_hub_outage_loses_nothing_and_repeats_nothing(
    tmp_path: Path, redis_server: RedisServer, spooled: bool
) -> None:
    hub = NatsServer(tmp_path / "hub")
    hub.start()
    spool = NatsServer(tmp_path / "spool", "spool")
    extra = {}
    if spooled:
        spool.start()
        extra["uplink_spool_url"] = spool.url
    redis = await connect(redis_server.url)
    nc = await hub_client(hub.url)
    await create_hub_stream(nc)
    config = settings(hub.url, redis_server.url, **extra)
    uplink = asyncio.create_task(run_uplink(config, redis))
    feeder = Feeder(redis, config.stream)
    stop = asyncio.Event()
    try:
        await feeder.add(100)
        flow = asyncio.create_task(feeder.flow(RATE, stop))
        await asyncio.sleep(0.5)
        hub.stop()
        before = feeder.count
        await asyncio.sleep(OUTAGE_S)
        assert feeder.count - before >= 300  # readings did flow during the outage
        hub.start()
        await asyncio.sleep(0.5)
        stop.set()
        await flow
        got = await wait_all(nc, feeder, hub.log)
        assert dict(got) == dict(feeder.sent)  # exactly once, in order, per meter
    finally:
        stop.set()
        uplink.cancel()
        await asyncio.gather(uplink, return_exceptions=True)
        await nc.close()
        hub.stop()
        spool.stop()
