"""The uplink's parts put together: Redis -> (the box's spool ->) the hub.

With `HANPORT_UPLINK_SPOOL_URL`: one `MeterRelay` per meter stream (`each_meter_stream`: the
classic one and every meter's in the directory, as they appear) and an `EnergyRelay` (the
accounting intervals) into the spool (stage `spool`), one `Forwarder` from the spool to the hub, health into the spool. Without it: the relays
publish to the hub directly (stage `hub`). Every part runs under `run_supervised`: an error
restarts it with backoff, and what was not acknowledged is sent again (and stored once).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from redis.asyncio import Redis

from services.hub.credentials import box_inbox
from shared.entitlements import Entitlements
from shared.identity import wait_for_serial
from shared.meter_streams import each_meter_stream
from shared.supervise import run_supervised

from .connection import Endpoint, connect_nats
from .energy import EnergyRelay
from .health import HealthReporter
from .messages import check_box
from .relay import MeterRelay
from .settings import UplinkSettings
from .spool import Forwarder, ensure_spool, spool_config, spooled

log = logging.getLogger(__name__)


def hub_endpoint(settings: UplinkSettings, box: str) -> Endpoint:
    return Endpoint(
        urls=settings.hub_urls(),
        creds_file=settings.uplink_creds_file,
        nkey_file=settings.uplink_nkey_file,
        ca_file=settings.uplink_ca_file,
        inbox_prefix=box_inbox(box),
        name=f"hanport-uplink-{box}",
        stage="hub",
    )


async def box_id(settings: UplinkSettings, redis: Redis) -> str:
    if settings.uplink_box:
        return check_box(settings.uplink_box)
    return check_box(await wait_for_serial(settings.serial, settings.license_dir, redis))


async def run_uplink(settings: UplinkSettings, redis: Redis) -> None:
    box = await box_id(settings, redis)
    clients: list[Client] = []
    works: dict[str, Callable[[], Awaitable[None]]] = {}
    spool_count: Callable[[], Awaitable[int]] | None = None
    if settings.uplink_spool_url:
        # the spool first: a box that starts while the hub is unreachable spools from the start
        spool = await connect_nats(
            Endpoint(urls=[settings.uplink_spool_url], name=f"hanport-spool-{box}", stage="spool")
        )
        clients.append(spool)
        spool_js = spool.jetstream()
        await ensure_spool(
            spool_js,
            spool_config(box, settings.uplink_spool_max_bytes,
                         settings.uplink_spool_max_days * 86400),
        )  # fmt: skip
        target, stage = spool_js, "spool"

        async def forward() -> None:
            hub = await connect_nats(hub_endpoint(settings, box))
            clients.append(hub)
            try:
                await Forwarder(
                    spool_js, hub.jetstream(), box, settings.uplink_batch,
                    settings.uplink_ack_timeout,
                ).run()  # fmt: skip
            finally:
                clients.remove(hub)
                await hub.close()

        works["forwarder"] = forward

        async def count() -> int:
            return await spooled(spool_js)

        spool_count = count
    else:
        hub = await connect_nats(hub_endpoint(settings, box))
        clients.append(hub)
        target, stage = hub.jetstream(), "hub"
    relays: dict[str, MeterRelay] = {}  # by stream key: every meter's, as they appear

    async def relay(key: str) -> None:
        if key not in relays:
            relays[key] = MeterRelay(
                redis, key, target, box, settings.uplink_group, settings.uplink_consumer, stage,
                settings.uplink_batch, settings.uplink_ack_timeout,
            )  # fmt: skip
        await relays[key].run()

    works["meter streams"] = lambda: each_meter_stream(redis, settings.stream, relay)
    works["energy"] = EnergyRelay(
        redis, target, box, stage, settings.uplink_energy_interval, settings.uplink_batch,
        settings.uplink_ack_timeout,
    ).run  # fmt: skip
    entitlements = Entitlements(redis, settings)
    works["entitlements"] = entitlements.run
    reporter = HealthReporter(
        redis, target, box, relays, entitlements, spool_count,
        settings.uplink_health_interval, stage, settings.uplink_ack_timeout,
    )  # fmt: skip
    works["health"] = reporter.run
    log.info(
        "uplink of box %s: every meter's stream -> %s", box,
        "the spool -> the hub" if settings.uplink_spool_url else "the hub",
    )  # fmt: skip
    try:
        await run_supervised(works)
    finally:
        for client in clients:
            if not client.is_closed:
                await client.close()
