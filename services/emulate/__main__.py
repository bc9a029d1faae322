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

from shared.log import redact_url
from shared.service import run_on_redis, start

from .service import run_service
from .settings import EmulateSettings


def main(argv: list[str] | None = None) -> int:
    settings = start(
        "emulate",
        EmulateSettings,
        argv,
        "Appear as a Shelly Pro 3EM, a HomeWizard P1 meter and an SMA Energy Meter.",
    )
    return run_on_redis(
        settings,
        lambda redis: run_service(settings, redis),
        f"emulating {', '.join(settings.personalities) or 'nothing'} from {settings.stream} on "
        f"{redact_url(settings.redis_url)}",
    )


if __name__ == "__main__":
    raise SystemExit(main())
