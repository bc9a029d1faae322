"""`hanport uplink` / `python -m services.uplink`: every reading to the fleet's hub.

Consumes every meter's readings stream in Redis (consumer group `HANPORT_UPLINK_GROUP`), the
accounting intervals (services/accounting/store.py) and the licence records; produces, on the
hub's NATS JetStream (`HANPORT_UPLINK_URL`), one message per reading on `hanport.<box>.<meter>.readings` with `Nats-Msg-Id` = `<box>:<meter>:<entry id>`, and
every accounting interval (and each revision of one) on `hanport.<box>.<meter>.energy`, the
box's health on `hanport.<box>.health`; through the box's disk spool
(`HANPORT_UPLINK_SPOOL_URL`) when set. Serves Prometheus metrics on `HANPORT_METRICS_PORT`
(9107). Without `HANPORT_UPLINK_URL` the uplink stays off (and idles). See docs/fleet.md.
"""

from __future__ import annotations

import asyncio
import logging

from shared.metrics import serve_metrics
from shared.service import run, start
from shared.stream import connect

from .settings import UplinkSettings
from .uplink import run_uplink

log = logging.getLogger("services.uplink")


async def serve(settings: UplinkSettings) -> None:
    if not settings.uplink_url:
        log.info("HANPORT_UPLINK_URL is unset: the uplink stays off")
        await asyncio.Event().wait()
    redis = await connect(settings.redis_url)
    await run_uplink(settings, redis)


def main(argv: list[str] | None = None) -> int:
    settings = start(
        "uplink",
        UplinkSettings,
        argv,
        "Send every reading to the fleet's NATS JetStream hub (HANPORT_UPLINK_*, docs/fleet.md).",
    )
    serve_metrics(settings.metrics_port, settings.metrics_host)
    return run(lambda: serve(settings))


if __name__ == "__main__":
    raise SystemExit(main())
