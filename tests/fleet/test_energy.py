"""The accounting intervals over the fleet: stored by the real accounting code (`MeterAccount`
fed readings, `store.save`), sent by the uplink (its own process, through the box's spool) on
`hanport.<box>.<meter>.energy`; a grown interval waits on the spool while the hub is down, then
is sent again and stored as a new message; a replay after the uplink is SIGKILLed is dropped by
the hub; a sink worker writes them to VictoriaMetrics (measurement `hanport_energy`) and
PostgreSQL (`hanport_intervals`)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import nats
import psycopg
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from services.accounting import store
from services.accounting.account import IntervalRow, MeterAccount
from services.accounting.tariffs import rule
from services.export.intervals import LOOKBACK_MS, changed_intervals
from services.export.sinks.intervals import Interval
from services.hub.pgwriter import FleetPostgresWriter
from services.hub.sink import SinkWorker, consumer_state
from services.hub.stream import HUB_STREAM
from services.hub.writer import Fanout, FleetLineWriter
from services.uplink.energy import HISTORY_SENT
from services.uplink.messages import MSG_ID, decode_interval, interval_message
from services.uplink.spool import SPOOL_STREAM
from shared.reading import Reading
from shared.stream import connect
from tests.accounting.examples import ELVIA
from tests.export.servers import PostgresServer, VictoriaMetricsServer
from tests.fleet.nats import NatsServer
from tests.fleet.support import BOX, create_hub_stream, eventually, hub_client
from tests.fleet.test_crash import Uplink
from tests.servers import RedisServer, free_port
from tests.stack.polling import until

STEP_MS = 300_000  # a reading every 5 minutes


def readings(start_ms: int, count: int, register: float) -> list[Reading]:
    return [
        Reading(
            ts=start_ms + k * STEP_MS,
            received=start_ms + k * STEP_MS,
            meter="m1",
            ic=round(register + 0.1 * k, 6),
            ec=0.0,
            pi=[1200.0, None, None, None],
        )  # fmt: skip
        for k in range(count)
    ]


async def stored(redis: Redis) -> dict[str, Interval]:
    """message id -> interval, of every interval in the accounting store now."""
    return {
        interval_message(BOX, i, member).msg_id: i
        for i, member in await changed_intervals(redis, {}, None)
    }


async def hub_energy(nc: Client) -> list[tuple[str, Interval]]:
    """(message id, interval) of the box's `.energy` messages in the hub stream, in order."""
    js = nc.jetstream()
    if (await js.stream_info(HUB_STREAM)).state.messages == 0:
        return []
    sub = await js.pull_subscribe(
        f"hanport.{BOX}.*.energy", durable=None, stream=HUB_STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )  # fmt: skip
    out: list[tuple[str, Interval]] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(500, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            out += [((m.headers or {})[MSG_ID], decode_interval(m.data)) for m in msgs]
            if msgs and msgs[-1].metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return out


def metric(port: int, name: str, **labels: str) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def test_intervals_revisions_replay_and_sink(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    hub = NatsServer(tmp_path / "hub")
    spool = NatsServer(tmp_path / "spool", "spool")
    hub.start()
    spool.start()
    victoria = VictoriaMetricsServer(tmp_path / "victoria")
    victoria.start()
    postgres = PostgresServer(tmp_path / "postgres")
    postgres.start()
    nc = await hub_client(hub.url)
    spool_nc = await hub_client(spool.url)
    await create_hub_stream(nc)
    port = free_port()
    env = {
        "HANPORT_UPLINK_URL": hub.url, "HANPORT_UPLINK_SPOOL_URL": spool.url,
        "HANPORT_REDIS_URL": redis_server.url, "HANPORT_UPLINK_BOX": BOX,
        "HANPORT_METRICS_PORT": str(port), "HANPORT_LOG_FORMAT": "text",
        "HANPORT_UPLINK_ENERGY_INTERVAL": "0.2", "HANPORT_LICENSE_DIR": str(tmp_path / "none"),
    }  # fmt: skip
    uplink = Uplink(tmp_path, env)
    redis = await connect(redis_server.url)
    task: asyncio.Task[None] | None = None

    def logs() -> str:
        return uplink.log() + hub.log()

    async def hub_has(ids: set[str]) -> bool:
        return {i for i, _ in await hub_energy(nc)} >= ids

    try:
        # two hours of readings up to now, counted by the real accounting code
        account = MeterAccount.new("m1", ZoneInfo(ELVIA.zone), rule(ELVIA.rule))
        now = int(time.time() * 1000) // STEP_MS * STEP_MS
        for r in readings(now - 24 * STEP_MS, 24, 1000.0):
            account.add(r)
        await store.save(redis, [account], {})
        # and a month of long ago: sent in the first full round, not again after a restart
        old = IntervalRow("month", now - 400 * 86_400_000, (300.0, 0.0, 1.0, 0.0), False)
        await redis.zadd(store.energy_key("m1", "1mo"), {store.encode_row(old): old.start_ms})
        first = await stored(redis)
        assert len(first) >= 8  # quarter-hours, hours, the day, the month

        uplink.start()
        await until(lambda: hub_has(set(first)), "the intervals at the hub", logs, 60, 0.2)
        got = await hub_energy(nc)
        assert sorted(i for i, _ in got) == sorted(first)  # each once
        assert {i: v for i, v in got} == first

        # the hub down; the running intervals grow: they wait on the box's disk spool, then are
        # sent again and stored as new messages (not deduplicated)
        hub.stop()
        for r in readings(now, 1, 1000.0 + 0.1 * 24 + 0.5):
            account.add(r)
        await store.save(redis, [account], {})
        second = await stored(redis)
        grown = set(second) - set(first)
        assert grown  # at least the running quarter-hour, hour, day and month

        async def spooled() -> bool:
            info = await spool_nc.jetstream().stream_info(SPOOL_STREAM)
            return info.state.messages >= len(grown)

        await until(spooled, "the grown intervals on the spool", logs, 60, 0.2)
        hub.start()
        await until(lambda: hub_has(grown), "the grown intervals at the hub", logs, 60, 0.2)
        got = await hub_energy(nc)
        assert sorted(i for i, _ in got) == sorted(set(first) | grown)
        latest = {(v.meter, v.resolution, v.start_ms): v for _i, v in got}  # in stream order
        assert sorted(latest.values(), key=str) == sorted(second.values(), key=str)

        # SIGKILL: the restarted uplink sends every interval again; the hub stores none twice
        uplink.kill()
        uplink.start()

        assert await redis.exists(HISTORY_SENT)
        recent = [v for v in second.values() if v.start_ms >= now - LOOKBACK_MS]
        assert len(recent) == len(second) - 1  # all but the old month

        async def replayed() -> bool:
            acked = metric(port, "hanport_uplink_intervals_acked_total", stage="spool")
            info = await spool_nc.jetstream().stream_info(SPOOL_STREAM)
            return acked >= len(recent) and info.state.messages == 0

        await until(replayed, "the last two months sent again and forwarded", logs, 60, 0.2)
        assert metric(port, "hanport_uplink_intervals_acked_total", stage="spool") == len(recent)
        assert sorted(i for i, _ in await hub_energy(nc)) == sorted(set(first) | grown)

        # a sink worker writes them through the export's write_intervals
        writer = Fanout([FleetLineWriter(victoria.url), FleetPostgresWriter(postgres.dsn)])
        worker = SinkWorker(nc, writer, durable="sink", batch=50)
        task = asyncio.create_task(worker.run())

        async def all_written() -> bool:
            try:
                state = await consumer_state(nc, "sink")
            except NotFoundError:  # the worker has not made it yet
                return False
            return state == {"pending": 0, "ack_pending": 0} and worker.intervals_written > 0

        await eventually(all_written, "every interval written", within=60)
        quarter = max(
            (v for v in second.values() if v.resolution == "15m"), key=lambda v: v.start_ms
        )
        samples = victoria.samples('{__name__="hanport_energy_import",resolution="15m"}')
        assert samples and samples[0]["metric"]["box"] == BOX
        assert samples[0]["metric"]["meter"] == "m1"
        at: dict[int, list[float]] = {}
        for ts, value in zip(samples[0]["timestamps"], samples[0]["values"], strict=True):
            at.setdefault(ts, []).append(value)
        assert set(at) == {v.start_ms for v in second.values() if v.resolution == "15m"}
        # the grown quarter-hour: its newest revision (the worker's one batch held both)
        assert at[quarter.start_ms] == [pytest.approx(quarter.imported, rel=1e-9)]
        assert worker.intervals_written == len(second)
        async with await psycopg.AsyncConnection.connect(postgres.dsn) as conn:
            cursor = await conn.execute(
                "SELECT box, meter, resolution, import FROM hanport_intervals "
                "ORDER BY resolution, start"
            )
            rows = await cursor.fetchall()
        expected = sorted(second.values(), key=lambda v: (v.resolution, v.start_ms))
        assert rows == [(BOX, "m1", v.resolution, v.imported) for v in expected]
    finally:
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=10)
        uplink.kill()
        await redis.aclose()
        await nc.close()
        await spool_nc.close()
        hub.stop()
        spool.stop()
        victoria.stop()
        postgres.stop()
        postgres.cleanup()
