"""Fleet: readings/s from a box's Redis to the hub's R3 stream and on to VictoriaMetrics, next to
a bare nats-py publisher into the same stream (the ceiling); the hub's CPU per reading; a day
offline on the box's disk spool (disk, RAM, catch-up rate); many boxes at 1 Hz.

    python -m bench.fleet                 ceiling, uplink, sink, catchup (the `make bench` set)
    python -m bench.fleet outage          the full 10-minute hub outage at 1 Hz (two meters)
    python -m bench.fleet boxes [N] [S]   N boxes (200) at 1 Hz for S seconds (60)

Every server is a real process on loopback (tests/fleet/nats.py, a 3-node cluster; Redis;
VictoriaMetrics). The uplink runs as its own process (`python -m services.uplink`), so its CPU
and memory are its own. Figures go to docs/fleet.md.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import APIError

from bench.common import cpu_seconds
from services.hub.credentials import Fleet, box_inbox
from services.hub.sink import SinkWorker
from services.hub.stream import HUB_STREAM, ensure_hub_stream, hub_stream_config
from services.hub.writer import FleetLineWriter
from services.uplink.messages import MSG_ID, readings_subject
from services.uplink.spool import DUPLICATE_WINDOW_S, SPOOL_STREAM
from shared.reading import Reading, encode_reading
from shared.stream import ReadingStream, connect
from tests.fleet.nats import NatsServer, cluster
from tests.servers import RedisServer

ROOT = Path(__file__).resolve().parent.parent
BOX = "HPBENCH0001"
T0 = 1_764_000_000_000
WINDOW = 100  # messages in flight, as the uplink's default HANPORT_UPLINK_BATCH
SPOOL_GOMEMLIMIT = "40MiB"  # compose.yaml gives the spool this soft memory limit


def reading(n: int, meter: str = "main") -> Reading:
    return Reading(
        ts=T0 + 1000 * n, received=T0 + 1000 * n, meter=meter, ic=12345.678 + n / 1000, ec=10.5,
        p=[1500.0, 500.0, 500.0, 500.0], pi=[1500.0, 500.0, 500.0, 500.0],
        pe=[0.0, 0.0, 0.0, 0.0], u=[230.1, 231.2, 229.9], i=[2.2, 2.1, 2.3],
    )  # fmt: skip


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def du_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@contextmanager
def hub_cluster(work: Path, extra: str = "") -> Iterator[list[NatsServer]]:
    nodes = cluster(work / "hub", extra=extra)
    for node in nodes:
        node.start()
    try:
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def hub_cpu(nodes: list[NatsServer]) -> float:
    return sum(cpu_seconds(n.proc.pid) for n in nodes if n.proc is not None)


async def quiet(_error: Exception) -> None:
    """The bench's own clients: reconnect errors while the hub is down on purpose are expected."""


async def admin_client(nodes: list[NatsServer], creds: Path | None = None) -> Client:
    return await nats.connect(
        [n.url for n in nodes], user_credentials=str(creds) if creds else None,
        max_reconnect_attempts=-1, reconnect_time_wait=0.2, error_cb=quiet,
    )  # fmt: skip


async def fresh_stream(nc: Client, replicas: int = 3) -> None:
    js = nc.jetstream()
    deadline = time.monotonic() + 60
    while True:
        try:
            with suppress(APIError):
                await js.delete_stream(HUB_STREAM)
            await ensure_hub_stream(js, hub_stream_config(replicas=replicas))
            return
        except (APIError, NatsTimeout):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def stored(nc: Client, stream: str = HUB_STREAM) -> int:
    return int((await nc.jetstream().stream_info(stream)).state.messages)


async def poll(
    check: Callable[[], Awaitable[bool]], what: str, every: float = 0.02, within: float = 900
) -> float:
    """Seconds until `check()` holds, polled every `every` s."""
    start = time.monotonic()
    for _ in itertools.count():
        if await check():
            break
        if time.monotonic() - start > within:
            raise TimeoutError(f"{what}: not after {within} s")
        await asyncio.sleep(every)
    return time.monotonic() - start


async def wait_stored(nc: Client, n: int, stream: str = HUB_STREAM) -> float:
    """Seconds until `stream` holds `n` messages."""

    async def check() -> bool:
        return await stored(nc, stream) >= n

    return await poll(check, f"{n} messages in {stream}")


class UplinkProcess:
    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.log = work / "uplink.log"
        self.env = {**os.environ, "HANPORT_UPLINK_BOX": BOX, "HANPORT_METRICS_PORT": "0",
                    "HANPORT_LOG_FORMAT": "text", "HANPORT_LICENSE_DIR": str(work / "none"),
                    **env}  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.uplink"], cwd=ROOT, env=self.env,
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=15)


async def fill_redis(url: str, n: int, meters: tuple[str, ...] = ("main",)) -> None:
    redis = await connect(url)
    stream = ReadingStream(redis, "hanport:readings")
    pipe = redis.pipeline(transaction=False)
    for k in range(n):
        meter = meters[k % len(meters)]
        pipe.xadd(stream.key, {b"reading": encode_reading(reading(k, meter))}, id=f"{T0 + k}-0")
        if k % 1000 == 999:
            await pipe.execute()
    await pipe.execute()
    await redis.aclose()


# ---------------------------------------------------------------- the measurements


async def ceiling(nodes: list[NatsServer], n: int) -> tuple[float, float]:
    """A bare nats-py publisher, WINDOW in flight: (readings/s, hub CPU s per 1,000)."""
    nc = await admin_client(nodes)
    await fresh_stream(nc)
    js = nc.jetstream()
    payload = encode_reading(reading(0))
    subject = readings_subject(BOX, "main")
    cpu0, start = hub_cpu(nodes), time.monotonic()
    for first in range(0, n, WINDOW):
        await asyncio.gather(*(
            js.publish(subject, payload, headers={MSG_ID: f"{BOX}:main:{k}-0"}, timeout=10)
            for k in range(first, min(n, first + WINDOW))
        ))  # fmt: skip
    elapsed = time.monotonic() - start
    cpu = hub_cpu(nodes) - cpu0
    await nc.close()
    return n / elapsed, 1000 * cpu / n


async def uplink_rate(
    nodes: list[NatsServer], redis: RedisServer, work: Path, n: int
) -> dict[str, float]:
    """A backlog of n readings in Redis through the uplink (direct) into the R3 stream."""
    nc = await admin_client(nodes)
    await fresh_stream(nc)
    await fill_redis(redis.url, n)
    uplink = UplinkProcess(work, {"HANPORT_UPLINK_URL": ",".join(x.url for x in nodes),
                                  "HANPORT_REDIS_URL": redis.url})  # fmt: skip
    cpu0 = hub_cpu(nodes)
    uplink.start()
    assert uplink.proc is not None
    elapsed = await wait_stored(nc, n)
    result = {
        "readings_per_s": n / elapsed,
        "uplink_cpu_s_per_1k": 1000 * cpu_seconds(uplink.proc.pid) / n,
        "hub_cpu_s_per_1k": 1000 * (hub_cpu(nodes) - cpu0) / n,
        "uplink_rss_mib": rss_kib(uplink.proc.pid, "VmHWM") / 1024,
    }
    uplink.stop()
    await nc.close()
    return result


async def sink_rate(nodes: list[NatsServer], victoria_url: str, n: int) -> float:
    """The sink worker draining n readings from the R3 stream into VictoriaMetrics."""
    nc = await admin_client(nodes)
    worker = SinkWorker(nc, FleetLineWriter(victoria_url), durable="bench-sink", batch=500)
    task = asyncio.create_task(worker.run())

    async def done() -> bool:
        return worker.written >= n

    elapsed = await poll(done, f"the sink writing {n}")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await nc.close()
    return n / elapsed


async def catchup(
    nodes: list[NatsServer], redis: RedisServer, work: Path, day: int
) -> dict[str, float]:
    """A day offline: `day` readings spooled on the box while the hub is down, then the hub back."""
    spool = NatsServer(work / "spool", "spool")
    os.environ["GOMEMLIMIT"] = SPOOL_GOMEMLIMIT  # as compose.yaml's spool service
    try:
        spool.start()
    finally:
        del os.environ["GOMEMLIMIT"]
    nc = await admin_client(nodes)
    await fresh_stream(nc)
    await nc.close()
    await fill_redis(redis.url, day)
    uplink = UplinkProcess(work, {"HANPORT_UPLINK_URL": ",".join(x.url for x in nodes),
                                  "HANPORT_UPLINK_SPOOL_URL": spool.url,
                                  "HANPORT_REDIS_URL": redis.url})  # fmt: skip
    for node in nodes:
        node.stop()
    spool_nc = await nats.connect(spool.url)
    uplink.start()
    assert uplink.proc is not None and spool.proc is not None
    spool_rss0 = rss_kib(spool.proc.pid)

    async def spooled() -> bool:
        try:
            return await stored(spool_nc, SPOOL_STREAM) >= day
        except (APIError, NatsTimeout):  # not made by the uplink yet
            return False

    await poll(spooled, "a day on the spool", every=0.2)
    spool_bytes = du_bytes(spool.workdir / "js")
    result = {
        "spool_mib_per_day": spool_bytes / 2**20,
        "spool_rss_mib": rss_kib(spool.proc.pid) / 1024,
        "spool_rss_idle_mib": spool_rss0 / 1024,
        "uplink_rss_mib": rss_kib(uplink.proc.pid) / 1024,
    }
    # at 1 Hz the spool's duplicate window holds a few hundred ids, not the whole backlog the
    # bench wrote in a minute: measure once the window has passed over it
    await asyncio.sleep(DUPLICATE_WINDOW_S + 30)
    result["spool_rss_settled_mib"] = rss_kib(spool.proc.pid) / 1024
    hwm0 = rss_kib(spool.proc.pid, "VmHWM")
    for node in nodes:
        node.start()
    nc = await admin_client(nodes)

    async def caught_up() -> bool:
        return await stored(spool_nc, SPOOL_STREAM) == 0 and await stored(nc, HUB_STREAM) >= day

    result["catchup_readings_per_s"] = day / await poll(caught_up, "the catch-up", every=0.1)
    result["hub_stored"] = await stored(nc, HUB_STREAM)
    result["spool_peak_catchup_mib"] = rss_kib(spool.proc.pid, "VmHWM") / 1024
    result["spool_peak_before_mib"] = hwm0 / 1024
    uplink.stop()
    await spool_nc.close()
    await nc.close()
    spool.stop()
    return result


async def standard() -> None:
    n = int(os.environ.get("BENCH_FLEET_N", "20000"))
    day = int(os.environ.get("BENCH_FLEET_DAY", "86400"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        redis = RedisServer(work / "redis")
        redis.start()
        victoria = None
        if shutil.which("victoria-metrics"):
            from tests.export.servers import VictoriaMetricsServer

            victoria = VictoriaMetricsServer(work / "victoria")
            victoria.start()
        try:
            with hub_cluster(work) as nodes:
                rate, cpu = await ceiling(nodes, n)
                print(f"   bare nats-py publisher -> R3 stream: {rate:9.0f} readings/s, hub "
                      f"{cpu:.3f} CPU-s per 1,000")  # fmt: skip
                up = await uplink_rate(nodes, redis, work, n)
                print(f"   uplink Redis -> R3 stream:           {up['readings_per_s']:9.0f} "
                      f"readings/s ({up['readings_per_s'] / rate:.2f} of the bare publisher), hub "
                      f"{up['hub_cpu_s_per_1k']:.3f} CPU-s per 1,000, uplink "
                      f"{up['uplink_cpu_s_per_1k']:.3f} CPU-s per 1,000 and peak RSS "
                      f"{up['uplink_rss_mib']:.0f} MiB")  # fmt: skip
                if victoria is not None:
                    sink = await sink_rate(nodes, victoria.url, n)
                    print(f"   sink worker R3 -> VictoriaMetrics:   {sink:9.0f} readings/s "
                          "(one worker)")  # fmt: skip
                await redis_flush(redis.url)
                c = await catchup(nodes, redis, work, day)
                print(f"   offline ({day} readings, 1 meter at 1 Hz): spool "
                      f"{c['spool_mib_per_day']:.0f} MiB on disk; spool nats-server RSS "
                      f"{c['spool_rss_idle_mib']:.0f} MiB idle, {c['spool_rss_mib']:.0f} MiB "
                      f"full; uplink RSS {c['uplink_rss_mib']:.0f} MiB")  # fmt: skip
                print(f"   spool nats-server (GOMEMLIMIT={SPOOL_GOMEMLIMIT}) RSS once the duplicate "
                      f"window has passed: {c['spool_rss_settled_mib']:.0f} MiB; peak while "
                      f"spooling {c['spool_peak_before_mib']:.0f} MiB, while catching up "
                      f"{c['spool_peak_catchup_mib']:.0f} MiB")  # fmt: skip
                print(f"   catch-up after it: {c['catchup_readings_per_s']:.0f} readings/s "
                      f"({day / c['catchup_readings_per_s'] / 60:.1f} min for them; "
                      f"{c['hub_stored']:.0f} at the hub)")  # fmt: skip
        finally:
            redis.stop()
            if victoria is not None:
                victoria.stop()


async def redis_flush(url: str) -> None:
    redis = await connect(url)
    await redis.flushall()
    await redis.aclose()


async def outage(minutes: float = 10.0) -> None:
    """Two meters at 1 Hz; the hub (3 nodes) down for `minutes`; then every reading exactly
    once, in order per meter (checked), and the catch-up time."""
    from tests.fleet.support import Feeder, hub_readings

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        redis_server = RedisServer(work / "redis")
        redis_server.start()
        spool = NatsServer(work / "spool", "spool")
        spool.start()
        with hub_cluster(work) as nodes:
            nc = await admin_client(nodes)
            await fresh_stream(nc)
            redis = await connect(redis_server.url)
            feeder = Feeder(redis, "hanport:readings", meters=("a", "b"))
            uplink = UplinkProcess(work, {"HANPORT_UPLINK_URL": ",".join(x.url for x in nodes),
                                          "HANPORT_UPLINK_SPOOL_URL": spool.url,
                                          "HANPORT_REDIS_URL": redis_server.url})  # fmt: skip
            uplink.env["HANPORT_UPLINK_BOX"] = "HPTESTBOX01"
            uplink.start()
            stop = asyncio.Event()
            flow = asyncio.create_task(feeder.flow(2.0, stop))  # 2 meters at 1 Hz
            await asyncio.sleep(10)
            for node in nodes:
                node.stop()
            await asyncio.sleep(minutes * 60)
            for node in nodes:
                node.start()
            start = time.monotonic()
            await asyncio.sleep(10)
            stop.set()
            await flow

            async def arrived() -> bool:
                try:
                    return sum(map(len, (await hub_readings(nc)).values())) >= feeder.count
                except (APIError, NatsTimeout):  # the cluster is still electing its leaders
                    return False

            await poll(arrived, "every reading at the hub", every=0.5)
            got = await hub_readings(nc)
            ok = dict(got) == dict(feeder.sent)
            print(f"   hub down {minutes:.0f} min, 2 meters at 1 Hz: {feeder.count} readings, "
                  f"exactly once and in order: {ok}; all at the hub "
                  f"{time.monotonic() - start:.1f} s after it came back")  # fmt: skip
            uplink.stop()
            await nc.close()
        spool.stop()
        redis_server.stop()


async def boxes(count: int = 200, seconds: int = 60) -> None:
    """`count` boxes (own credentials, operator mode) at 1 Hz into the 3-node hub."""
    fleet = Fleet.new()
    payload = encode_reading(reading(0))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with hub_cluster(work, fleet.server_config()) as nodes:
            admin_creds = work / "admin.creds"
            admin_creds.write_text(fleet.service_creds("admin"))
            nc = await admin_client(nodes, admin_creds)
            await fresh_stream(nc)
            clients = []
            for k in range(count):
                box = f"HPSIM{k:06d}"
                path = work / f"{box}.creds"
                path.write_text(fleet.box_creds(box))
                urls = [n.url for n in nodes]
                clients.append((box, await nats.connect(
                    urls[k % 3:] + urls[:k % 3], user_credentials=str(path),
                    inbox_prefix=box_inbox(box), dont_randomize=True)))  # fmt: skip
            start = time.monotonic() + 1
            late: list[float] = []

            async def loop(box: str, c: Client) -> None:
                js = c.jetstream()
                for tick in range(seconds):
                    await asyncio.sleep(max(0.0, start + tick - time.monotonic()))
                    sent = time.monotonic()
                    await js.publish(readings_subject(box, "m"), payload,
                                     headers={MSG_ID: f"{box}:m:{tick}-0"}, timeout=10)  # fmt: skip
                    late.append(time.monotonic() - sent)

            cpu0 = hub_cpu(nodes)
            await asyncio.gather(*(loop(b, c) for b, c in clients))
            cpu = hub_cpu(nodes) - cpu0
            n = await stored(nc, HUB_STREAM)
            late.sort()
            print(f"   {count} boxes at 1 Hz for {seconds} s: {n} of {count * seconds} stored; "
                  f"ack p50 {late[len(late) // 2] * 1000:.1f} ms, p99 "
                  f"{late[int(len(late) * 0.99)] * 1000:.1f} ms; hub "
                  f"{cpu / seconds:.2f} cores ({1000 * cpu / n:.3f} CPU-s per 1,000)")  # fmt: skip
            for _box, c in clients:
                await c.close()
            await nc.close()


def main(argv: list[str] | None = None) -> None:
    """`make bench` calls it without arguments: the standard set."""
    args = argv or []
    if not args:
        asyncio.run(standard())
    elif args[0] == "outage":
        asyncio.run(outage(float(args[1]) if len(args) > 1 else 10.0))
    elif args[0] == "boxes":
        asyncio.run(boxes(*(int(a) for a in args[1:3])))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
