"""`hanport modbus`: run the Modbus TCP server (settings from HANPORT_* variables, see
docs/configuration.md; register maps in docs/modbus.md)."""

from __future__ import annotations

import logging

from shared.log import redact_url
from shared.metrics import serve_metrics
from shared.service import run, start
from shared.stream import connect

from .service import run_service
from .settings import ModbusSettings

log = logging.getLogger("services.modbus")


def main(argv: list[str] | None = None) -> int:
    settings = start(
        "modbus",
        ModbusSettings,
        argv,
        "Serve the newest meter reading over Modbus TCP (SunSpec, SDM630, native maps).",
    )
    serve_metrics(settings.metrics_port, settings.metrics_host)

    async def service() -> None:
        log.info("following %s on %s", settings.stream, redact_url(settings.redis_url))
        redis = await connect(settings.redis_url)
        try:
            await run_service(settings, redis)
        finally:
            await redis.aclose()

    return run(service)


if __name__ == "__main__":
    raise SystemExit(main())
