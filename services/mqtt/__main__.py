"""`hanport mqtt` / `python -m services.mqtt`: run the MQTT bridge.

Consumes the `HANPORT_*` settings (see services/mqtt/settings.py); serves Prometheus metrics on
`HANPORT_METRICS_PORT` (9102) and publishes readings until stopped. Without `HANPORT_MQTT_URL`
the bridge stays off (and idles, so a container with a restart policy does not loop).
"""

from __future__ import annotations

import asyncio
import logging

from shared.metrics import serve_metrics
from shared.service import run, start
from shared.stream import connect

from .bridge import Bridge
from .settings import MqttSettings

log = logging.getLogger("services.mqtt")


async def serve(settings: MqttSettings) -> None:
    if not settings.mqtt_url:
        log.info("HANPORT_MQTT_URL is unset: the MQTT bridge stays off")
        await asyncio.Event().wait()
    redis = await connect(settings.redis_url)
    await Bridge(settings, redis).run()


def main(argv: list[str] | None = None) -> int:
    settings = start(
        "mqtt",
        MqttSettings,
        argv,
        "Publish every reading to an MQTT broker (HANPORT_MQTT_*, docs/mqtt.md).",
    )
    serve_metrics(settings.metrics_port, settings.metrics_host)
    return run(lambda: serve(settings))


if __name__ == "__main__":
    raise SystemExit(main())
