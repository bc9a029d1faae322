"""The hub unreachable while readings flow, then back: every reading at the hub exactly once, in
order per meter, with and without the box's disk spool.

Compressed: 10 minutes of one meter at 1 Hz is 600 readings; here two meters flow at 200
readings/s and the hub stays away until 600 readings were sent (about 3 s). The full-length run is
`python -m bench.fleet outage` (docs/fleet.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nats.js.errors import NotFoundError

from services.uplink import spool as spool_module
from services.uplink.messages import decode_health, health_subject
from services.uplink.spool import SPOOL_STREAM
from services.uplink.uplink import run_uplink
from shared.entitlements import FEATURES
from shared.stream import connect
from tests.fleet.nats import NatsServer
from tests.fleet.support import (
    BOX,
    Feeder,
    create_hub_stream,
    eventually,
    hub_client,
    hub_health,
    settings,
    wait_all,
)
from tests.servers import RedisServer

OUTAGE_READINGS = 600
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

        async def outage_over() -> bool:  # 600 readings sent while the hub is away
            return feeder.count - before >= OUTAGE_READINGS

        await eventually(outage_over, "readings during the outage")
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


async def test_box_starting_while_the_hub_is_away_spools(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """A box that boots with the hub unreachable keeps every reading on its spool, and sends
    them all once the hub answers."""
    hub = NatsServer(tmp_path / "hub")
    spool = NatsServer(tmp_path / "spool", "spool")
    spool.start()
    redis = await connect(redis_server.url)
    config = settings(hub.url, redis_server.url, uplink_spool_url=spool.url)
    feeder = Feeder(redis, config.stream)
    await feeder.add(300)
    uplink = asyncio.create_task(run_uplink(config, redis))
    spool_nc = await hub_client(spool.url)
    nc = None
    try:

        async def spooled() -> bool:
            try:
                info = await spool_nc.jetstream().stream_info(SPOOL_STREAM)
            except NotFoundError:  # not yet made by the uplink
                return False
            if info.state.messages < 300:
                return False
            # and a health message on the spool that says so
            try:
                last = await spool_nc.jetstream().get_last_msg(SPOOL_STREAM, health_subject(BOX))
            except NotFoundError:  # no health message yet
                return False
            return decode_health(last.data or b"").spool >= 300

        await eventually(spooled, "the readings on the spool")
        hub.start()
        nc = await hub_client(hub.url)
        await create_hub_stream(nc)
        assert dict(await wait_all(nc, feeder, hub.log)) == dict(feeder.sent)
        # the health sent while the hub was away arrives too, and says what was waiting
        health = await hub_health(nc)
        assert health and all(h.box == BOX and h.version for h in health)
        assert max(h.spool for h in health) >= 300
        assert set(health[0].licence) == set(FEATURES)  # every licence feature
    finally:
        uplink.cancel()
        await asyncio.gather(uplink, return_exceptions=True)
        await spool_nc.close()
        if nc is not None:
            await nc.close()
        hub.stop()
        spool.stop()


async def test_forwarder_recovers_its_consumer(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spool's consumer gone while the forwarder waits (deleted by hand; an ephemeral one
    would be deleted by the server after an idle spell, as a days-long retry is): the forwarder
    notices, makes it again, and the readings after it still reach the hub, all once."""
    monkeypatch.setattr(spool_module, "CHECK_EVERY", 1)
    hub = NatsServer(tmp_path / "hub")
    hub.start()
    spool = NatsServer(tmp_path / "spool", "spool")
    spool.start()
    redis = await connect(redis_server.url)
    nc = await hub_client(hub.url)
    spool_nc = await hub_client(spool.url)
    await create_hub_stream(nc)
    config = settings(hub.url, redis_server.url, uplink_spool_url=spool.url)
    feeder = Feeder(redis, config.stream)
    uplink = asyncio.create_task(run_uplink(config, redis))
    try:
        await feeder.add(50)
        await wait_all(nc, feeder, hub.log)
        await spool_nc.jetstream().delete_consumer(SPOOL_STREAM, spool_module.FORWARDER)
        await feeder.add(50)
        assert dict(await wait_all(nc, feeder, hub.log)) == dict(feeder.sent)
    finally:
        uplink.cancel()
        await asyncio.gather(uplink, return_exceptions=True)
        await nc.close()
        await spool_nc.close()
        hub.stop()
        spool.stop()
