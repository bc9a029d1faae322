"""`hanport modbus`: run the Modbus TCP server (settings from HANPORT_* variables, see
docs/configuration.md; register maps in docs/modbus.md)."""

from __future__ import annotations

from shared.log import redact_url
from shared.service import run_on_redis, start

from .service import run_service
from .settings import ModbusSettings


def main(argv: list[str] | None = None) -> int:
    settings = start(
        "modbus",
        ModbusSettings,
        argv,
        "Serve the newest meter reading over Modbus TCP (SunSpec, SDM630, native maps).",
    )
    return run_on_redis(
        settings,
        lambda redis: run_service(settings, redis),
        f"following {settings.stream} on {redact_url(settings.redis_url)}",
    )


if __name__ == "__main__":
    raise SystemExit(main())
