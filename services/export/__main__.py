"""`hanport export` / `python -m services.export`: export every reading to time-series and SQL
stores (docs/export.md).

Consumes every meter's readings stream (the classic `HANPORT_STREAM` and each meter's
`hanport:{<name>}:readings`) through one Redis consumer group per sink (`export-influx`,
`export-postgres`), and produces writes to the sinks configured: InfluxDB line protocol over
HTTP (`HANPORT_EXPORT_INFLUX_*`: InfluxDB 1.x/2.x/3, VictoriaMetrics) and PostgreSQL/TimescaleDB
(`HANPORT_EXPORT_POSTGRES_DSN`). A group's position moves past an entry once its sink confirmed
it (services/export/position.py); readings a sink refuses for good go to the dead-letter stream `HANPORT_EXPORT_DEAD_LETTER_STREAM`. The
accounting service's energy intervals (`hanport:{<meter>}:accounting:15m|1h|1d|1mo`) go to the
same sinks (`HANPORT_EXPORT_INTERVALS`). Serves
Prometheus metrics on `HANPORT_METRICS_PORT` (9105): lag per sink in entries and seconds,
readings written and refused. Writes only while a license grants `export` (`.license`: held
off, nothing is read or acknowledged, the readings wait in Redis), and only the meters it
serves. Without a sink configured the
service idles.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Callable

from shared.entitlements import Entitlements
from shared.gate import while_granted
from shared.identity import wait_for_serial
from shared.log import redact_url
from shared.meter_streams import each_meter_stream
from shared.metrics import serve_metrics
from shared.service import run, start
from shared.stream import connect
from shared.supervise import Work, run_supervised

from .intervals import IntervalExport
from .license import (
    FEATURE,
    STARTUP_GRACE_S,
    ServedMeters,
    report,
    watch_lag,
    while_refused,
)
from .settings import ExportSettings
from .sinks import Sink
from .sinks.influx import InfluxSink
from .sinks.lineprotocol import COMPILED
from .sinks.postgres import PostgresSink, describe_dsn
from .worker import DeadLetters, SinkWorker

log = logging.getLogger("services.export")

SinkFactory = Callable[[], Sink]


def sink_factories(settings: ExportSettings, box: str) -> dict[str, SinkFactory]:
    """A maker of each configured sink, by name (one sink per stream: a PostgreSQL connection
    carries one transaction at a time)."""
    makers: dict[str, SinkFactory] = {}
    if settings.export_influx_url:
        url, token = settings.export_influx_url, settings.influx_token()

        def influx() -> Sink:
            return InfluxSink(
                url,
                box,
                api=settings.export_influx_api,
                database=settings.export_influx_database,
                org=settings.export_influx_org,
                bucket=settings.export_influx_bucket,
                token=token,
                timeout=settings.export_timeout,
            )

        makers["influx"] = influx
        log.info(
            "sink influx: %s API %s (token %s); lines made %s",
            redact_url(url),
            settings.export_influx_api,
            "set" if token else "none",
            "in C" if COMPILED else "in Python (the C fast path was not built: docs/export.md)",
        )
    dsn = settings.postgres_dsn()
    if dsn:

        def postgres() -> Sink:
            return PostgresSink(dsn, box, timeout=settings.export_timeout)

        makers["postgres"] = postgres
        log.info("sink postgres: %s", describe_dsn(dsn))
    return makers


async def serve(settings: ExportSettings) -> None:
    if not settings.export_influx_url and not settings.postgres_dsn():
        log.info(
            "no sink configured (HANPORT_EXPORT_INFLUX_URL, HANPORT_EXPORT_POSTGRES_DSN): "
            "the export stays off"
        )
        await asyncio.Event().wait()
    redis = await connect(settings.redis_url)
    box = await wait_for_serial(settings.serial, settings.license_dir, redis)
    makers = sink_factories(settings, box)
    dead = DeadLetters(
        redis, settings.export_dead_letter_stream, settings.export_dead_letter_maxlen
    )
    entitlements = Entitlements(redis, settings)
    meters = ServedMeters(entitlements)  # (one for the service: a refusal is logged once)

    def workers(key: str) -> list[SinkWorker]:
        """A worker per sink on the stream `key` (each with a sink of its own)."""
        return [
            SinkWorker(
                redis,
                key,
                make(),
                settings.export_consumer,
                dead,
                group_prefix=settings.export_group_prefix,
                batch_size=settings.export_batch_size,
                batch_wait=settings.export_batch_wait,
                meters=meters,
            )
            for make in makers.values()
        ]

    async def export_stream(key: str) -> None:
        running = workers(key)
        try:
            await run_supervised({f"export {w.sink.name} {key}": w.run for w in running})
        finally:
            for worker in running:
                await worker.sink.close()

    async def hold_stream(key: str) -> None:
        """Held off: the groups exist (so the ingest keeps what they have not confirmed, as
        while a sink is down) and their lag gauges stay current; nothing is read."""
        for worker in workers(key):
            await worker.redis_call(worker.create_group)
            await worker.sink.close()  # never used: nothing was written through it
        await watch_lag(redis, key, list(makers), settings.export_group_prefix)

    async def all_streams() -> None:
        await each_meter_stream(redis, settings.stream, export_stream)

    works: dict[str, Work] = {"readings": all_streams}
    if settings.export_intervals:
        for name, make in makers.items():
            works[f"intervals {name}"] = IntervalExport(
                redis, make(), settings.export_intervals_every, meters
            ).run

    async def held_off() -> None:
        await each_meter_stream(redis, settings.stream, hold_stream)

    await run_supervised(
        {
            "entitlements": entitlements.run,
            "export": lambda: while_granted(
                entitlements,
                FEATURE,
                lambda: run_supervised(works),
                report=report,
                grace=STARTUP_GRACE_S,
            ),
            "held off": lambda: while_refused(entitlements, held_off),
        }
    )


def main(argv: list[str] | None = None) -> int:
    settings = start(
        "export",
        ExportSettings,
        argv,
        "Export every reading to InfluxDB/VictoriaMetrics and PostgreSQL (docs/export.md).",
    )
    # httpx logs every request at INFO: one line per batch, and the URL with its query
    logging.getLogger("httpx").setLevel(logging.WARNING)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    lower_priority(settings.export_nice)
    quiet_garbage_collector()
    return run(lambda: serve(settings))


def lower_priority(nice: int) -> None:
    """The export's CPU priority lowered by `nice` (`HANPORT_EXPORT_NICE`). A backlog is bulk
    work: the scheduler then gives the CPU first to what must answer now (the ingest, MQTT,
    Modbus, REST) and to a store sharing the box's cores, which the export waits on anyway.
    VictoriaMetrics sharing both cores of the test machine took the backlog faster so: 0.845 of
    the bare client's rate against 0.795 without, medians of 24 rounds each, taking turns
    (docs/performance.md, Export)."""
    if nice:
        level = os.nice(nice)  # (raising it needs no privilege)
        log.info("CPU priority: nice %d (HANPORT_EXPORT_NICE %d)", level, nice)


def quiet_garbage_collector() -> None:
    """Fewer cycle collections while batches are decoded. A batch of 5000 readings allocates
    about 50,000 objects the cycle collector tracks (msgspec structs, lists, dicts), alive until
    the batch is confirmed. With the default threshold (700 allocations) the collector ran
    about 70 times a batch over those survivors, about half of the decoding time; every 50,000
    allocations it still took 12 % of the export's CPU (bench/export.py under py-spy), every
    200,000 (after a few batches: each collection walks only the batches still alive) 2 %
    (docs/performance.md, Export). The readings hold no reference cycles: reference counting
    frees them. The objects made at start-up are moved out of its way (`gc.freeze`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(200_000, 50, 50)


if __name__ == "__main__":
    raise SystemExit(main())
