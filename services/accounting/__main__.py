"""`hanport accounting`: energy per interval and capacity-tariff state, per meter.

Consumes every meter's readings stream (the classic `HANPORT_STREAM` and each meter's
`hanport:{<meter>}:readings`) through the consumer group `HANPORT_ACCOUNTING_GROUP`, keyed by
`shared.meters.meter_of(reading)`. Produces, in the same Redis (persisted with its AOF):
energy per quarter-hour, hour, day and month (import/export, active and reactive, `estimated`
where a gap was spread) in `hanport:{<meter>}:accounting:15m|1h|1d|1mo`, the meter's state in
`...:accounting:state` and the live tariff answer (month peaks, value, step, window energy,
projection, headroom) by `HANPORT_TARIFF_RULE` in `...:accounting:tariff`; Prometheus gauges
with a `meter` label on `HANPORT_METRICS_PORT` (9104). REST, MQTT and Modbus read these keys
(docs/accounting.md). An unknown rule stops it at start with one line listing the rules (exit 2).
"""

from __future__ import annotations

from shared.log import redact_url
from shared.service import run_on_redis, start

from .service import run_service
from .settings import AccountingSettings


def main(argv: list[str] | None = None) -> int:
    settings = start(
        "accounting",
        AccountingSettings,
        argv,
        "Keep energy per interval and capacity-tariff state per meter in Redis.",
    )
    return run_on_redis(
        settings,
        lambda redis: run_service(settings, redis),
        f"accounting every meter's readings (classic stream {settings.stream}) on "
        f"{redact_url(settings.redis_url)}; rule {settings.tariff_rule}, clock {settings.zone()}",
    )


if __name__ == "__main__":
    raise SystemExit(main())
