"""The 3-node hub: SIGKILL of the stream's leader mid-stream loses nothing (R3) and the stream
keeps accepting; a sink worker writes every reading on to VictoriaMetrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import APIError

from services.hub.sink import SinkWorker
from services.hub.stream import HUB_STREAM
from services.hub.writer import FleetLineWriter
from services.uplink.uplink import run_uplink
from shared.stream import connect
from tests.export.servers import VictoriaMetricsServer
from tests.fleet.nats import NatsServer, cluster
from tests.fleet.support import (
    BOX,
    TS0,
    Feeder,
    create_hub_stream,
    eventually,
    hub_client,
    settings,
    wait_all,
)
from tests.servers import RedisServer

RATE = 150.0


async def start_cluster(tmp_path: Path) -> list[NatsServer]:
    nodes = cluster(tmp_path)
    for node in nodes:
        node.start()
    return nodes


async def test_leader_killed_mid_stream(tmp_path: Path, redis_server: RedisServer) -> None:
    nodes = await start_cluster(tmp_path)
    urls = ",".join(n.url for n in nodes)
    victoria = VictoriaMetricsServer(tmp_path / "victoria")
    victoria.start()
    admin = await hub_client(urls.split(","))  # type: ignore[arg-type]
    redis = await connect(redis_server.url)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    def logs() -> str:
        return "\n".join(n.log() for n in nodes)

    try:

        async def created() -> bool:
            try:
                await create_hub_stream(admin, replicas=3)
            except (APIError, NatsTimeout):  # the cluster is still forming
                return False
            return True

        await eventually(created, "the R3 stream (cluster formed)", within=60)
        config = settings(urls, redis_server.url)
        feeder = Feeder(redis, config.stream)
        worker = SinkWorker(admin, FleetLineWriter(victoria.url), batch=200)
        tasks += [asyncio.create_task(run_uplink(config, redis)), asyncio.create_task(worker.run())]
        flow = asyncio.create_task(feeder.flow(RATE, stop))
        await asyncio.sleep(1.0)
        leader = (await admin.jetstream().stream_info(HUB_STREAM)).cluster.leader  # type: ignore[union-attr]
        victim = next(n for n in nodes if n.name == leader)
        victim.kill()
        before = feeder.count

        async def more_sent() -> bool:  # 300 readings sent after the kill
            return feeder.count - before >= 300

        await eventually(more_sent, "readings after the kill")
        stop.set()
        await flow
        got = await wait_all(admin, feeder, logs)
        assert dict(got) == dict(feeder.sent)  # nothing lost, nothing twice, in order per meter
        info = await admin.jetstream().stream_info(HUB_STREAM)
        assert info.cluster is not None and info.cluster.leader != leader

        def stored_times(meter: str) -> set[int]:
            times: set[int] = set()
            for series in victoria.samples(f'{{box="{BOX}",meter="{meter}"}}'):
                times.update(series["timestamps"])
            return times

        async def all_written() -> bool:
            return all(len(stored_times(meter)) == len(ids) for meter, ids in feeder.sent.items())

        await eventually(all_written, "every reading in VictoriaMetrics", within=60)
        # the fleet view learnt the box from its health messages
        assert worker.view.boxes == {BOX}
        assert BOX in worker.view.versions
        for meter, ids in feeder.sent.items():
            counts = [int(i.split("-")[0]) - 1_700_000_000_000 for i in ids]  # Feeder's ids
            assert stored_times(meter) == {TS0 + 10 * c for c in counts}
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await admin.close()
        victoria.stop()
        for node in nodes:
            node.stop()
