"""Sink workers: two share the durable consumer (each reading handled by one of them), write
many boxes' readings in each batch to VictoriaMetrics and PostgreSQL (the export's schema, each
row under its own box), and keep the fleet view from health messages."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import psycopg

from services.hub.pgwriter import FleetPostgresWriter
from services.hub.sink import SinkWorker
from services.hub.writer import Fanout, FleetLineWriter
from services.uplink.messages import Health, health_message, reading_message
from tests.export.servers import PostgresServer, VictoriaMetricsServer
from tests.fleet.nats import NatsServer
from tests.fleet.support import TS0, create_hub_stream, eventually, hub_client
from tests.readings import simulated_readings

BOXES = ("HPSINKA", "HPSINKB", "HPSINKC")
PER_BOX = 200


async def test_two_workers_many_boxes_both_stores(tmp_path: Path) -> None:
    hub = NatsServer(tmp_path / "hub")
    hub.start()
    victoria = VictoriaMetricsServer(tmp_path / "victoria")
    victoria.start()
    postgres = PostgresServer(tmp_path / "postgres")
    postgres.start()
    nc = await hub_client(hub.url)
    workers: list[SinkWorker] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        await create_hub_stream(nc)
        js = nc.jetstream()
        pool = simulated_readings(10)
        for k in range(PER_BOX):  # the boxes interleaved, as they arrive at the hub
            for box in BOXES:
                r = msgspec.structs.replace(pool[k % 10], meter="m", ts=TS0 + 1000 * k)
                m = reading_message(box, f"{TS0 + k}-0", r)
                await js.publish(m.subject, m.payload, headers=m.headers())
        h = health_message(Health(box="HPSINKA", ts=1, version="9.9", licence={"mqtt": "granted"},
                                  lag=5))  # fmt: skip
        await js.publish(h.subject, h.payload, headers=h.headers())
        for _ in range(2):
            writer = Fanout([FleetLineWriter(victoria.url), FleetPostgresWriter(postgres.dsn)])
            workers.append(SinkWorker(nc, writer, durable="sink", batch=50))
        tasks = [asyncio.create_task(w.run()) for w in workers]

        async def all_written() -> bool:
            return sum(w.written for w in workers) >= len(BOXES) * PER_BOX

        await eventually(all_written, "every reading written", within=60)
        assert sum(w.written for w in workers) == len(BOXES) * PER_BOX  # none twice
        assert all(w.written > 0 for w in workers)  # the work is shared

        async with await psycopg.AsyncConnection.connect(postgres.dsn) as conn:
            cursor = await conn.execute(
                "SELECT box, count(*), count(DISTINCT time) FROM hanport_readings GROUP BY box "
                "ORDER BY box"
            )
            assert await cursor.fetchall() == [(b, PER_BOX, PER_BOX) for b in BOXES]
        for box in BOXES:
            times: set[int] = set()
            for series in victoria.samples(f'{{box="{box}",meter="m"}}'):
                times.update(series["timestamps"])
            assert times == {TS0 + 1000 * k for k in range(PER_BOX)}
        views = [w.view for w in workers if "HPSINKA" in w.view.versions]
        assert len(views) == 1 and views[0].versions["HPSINKA"] == "9.9"

        async def all_acked() -> bool:
            info = await js.consumer_info("HANPORT", "sink")
            return info.num_pending == 0 and info.num_ack_pending == 0

        await eventually(all_acked, "every message acknowledged")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await nc.close()
        hub.stop()
        victoria.stop()
        postgres.stop()
        postgres.cleanup()
