"""`hanport emulate` / `python -m services.emulate`: appear as the meters batteries, inverters
and chargers already read.

Consumes the readings stream (every meter's newest reading), the raw stream and the license
entitlements `shelly` / `homewizard` / `sma`; produces, per `HANPORT_EMULATE`, a Shelly Pro 3EM
(Gen2 RPC over HTTP, WebSocket and UDP, mDNS), a HomeWizard P1 meter (local API v1, mDNS) and
an SMA Energy Meter (Speedwire multicast), each serving its chosen meter and answering as the
real device does when that meter's data is stale. Prometheus metrics on `HANPORT_METRICS_PORT`
(9106). Settings: docs/configuration.md; the devices: docs/emulate.md.
"""

from __future__ import annotations

import logging

from shared.log import redact_url
from shared.metrics import serve_metrics
from shared.service import run, start
from shared.stream import connect

from .service import run_service
from .settings import EmulateSettings

log = logging.getLogger("services.emulate")


def main(argv: list[str] | None = None) -> int:
    settings = start(
        "emulate",
        EmulateSettings,
        argv,
        "Appear as a Shelly Pro 3EM, a HomeWizard P1 meter and an SMA Energy Meter.",
    )
    serve_metrics(settings.metrics_port, settings.metrics_host)

    async def service() -> None:
        log.info(
            "emulating %s from %s on %s",
            ", ".join(settings.personalities) or "nothing",
            settings.stream,
            redact_url(settings.redis_url),
        )
        redis = await connect(settings.redis_url)
        try:
            await run_service(settings, redis)
        finally:
            await redis.aclose()

    return run(service)


if __name__ == "__main__":
    raise SystemExit(main())
