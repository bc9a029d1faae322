"""Export benchmark: hanport's export service against a bare client writing the same points.

Consumes nothing but this machine (a redis-server, VictoriaMetrics and a PostgreSQL cluster it
starts in temporary folders); produces figures on stdout:
- readings/s the export service (`python -m services.export`, its own process) takes from a
  backlog of `--count` readings in the stream to VictoriaMetrics (line protocol, v1 /write) and
  to PostgreSQL (COPY, ON CONFLICT DO NOTHING), batches of `--batch`; next to a bare client
  (httpx posting line protocol made beforehand; psycopg COPY of COPY text made beforehand) writing
  the same points in the same batch sizes, one batch at a time (the ceiling); the ratio
  export / bare (goal >= 0.8, and >= 20,000 readings/s into VictoriaMetrics). Measured in two
  placements (`PLACEMENTS`): the store on a core of its own and the box's side (Redis, the
  export or the bare client, this script) on the other, as when the store is another machine
  (the cloud, a home server); and everything sharing both cores. Each placement: one round
  to warm the stores up, then `--rounds` rounds (bare and export taking turns to go first),
  the median ratio; with `--busy-loop`, next to it the bare client beside a busy loop that takes
  as much CPU as the export and Redis took (and does nothing with it): what that CPU alone
  costs the store in that placement;
- the export's CPU per reading at 1 reading/s per meter (`--meters` meters, `--seconds` s,
  both sinks on);
- the Redis memory of one readings-stream entry (what HANPORT_STREAM_RETAIN_MAX costs);
- with `--outage SECONDS` (the issue's case: 600): VictoriaMetrics stopped for that long while
  readings arrive at 10/s with the stream's MAXLEN far below it, then started: all there, none
  twice.

    python -m bench.export [--count 300000] [--batch 5000] [--rounds 3] [--meters 3]
                           [--seconds 60] [--outage 600] [--outage-only] [--cpu-only]
                           [--store victoria|postgres] [--placement own|shared]
                           [--compare-only] [--busy-loop]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.common import cpu_seconds, tree_cpu_seconds
from services.export.position import group_marks
from services.export.sinks import lineprotocol
from services.export.sinks.postgres import PostgresSink
from services.export.sinks.sql import READING_COLUMNS, readings_copy_text
from services.ingest.publisher import Publisher
from shared.meters import MeterDirectory, MeterKeys, MeterRecord
from shared.reading import Reading, encode_reading
from shared.retention import Retention, group_backlogs
from shared.stream import connect
from tests.export.servers import OwnPort, PostgresServer, VictoriaMetricsServer
from tests.licensing_helpers import grant
from tests.servers import RedisServer

ROOT = Path(__file__).resolve().parent.parent
STREAM = "hanport:readings"
BOX = "HPBENCH"
T0 = 1_764_547_200_000


class OwnRedis(OwnPort, RedisServer):
    """redis-server that is sure to own its port (other runs hand out the same ports)."""


def reading(n: int, meter: str = "main", start: int = T0) -> Reading:
    """A full P1 reading (every value an ELL5 sends), values varying with n."""
    return Reading(
        ts=start + n * 1000,
        received=start + n * 1000 + 120,
        meter=meter,
        ic=47522.278 + n / 1000,
        ec=0.001,
        ric=59.039,
        rec=12570.976 + n / 10000,
        p=[1231.0 + n % 100, 376.0, 824.0 + n % 100, 30.0],
        pi=[1231.0 + n % 100, 376.0, 824.0 + n % 100, 30.0],
        pe=[0.0, 0.0, 0.0, 0.0],
        r=[-451.0, -72.0, -349.0, -29.0],
        u=[232.8, 233.5, 238.5 - n % 7],
        i=[1.8, 4.0, 0.1],
        meter_model="ELL5\\253833635_A",
        meter_time="241212201348W",
        crc="ok",
    )


PROFILE = os.environ.get("BENCH_EXPORT_PROFILE")  # a path: the export runs under cProfile


def start_export(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "services.export"]
    if PROFILE:  # its profile (written when it stops), for `python -m pstats PATH`
        command = [sys.executable, "-m", "cProfile", "-o", PROFILE, "-m", "services.export"]
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def export_env(redis_url: str, **settings: str) -> dict[str, str]:
    """The export's environment, with a consumer activation of `export` published (it writes
    only while licensed), signed with a key pair kept in the temporary folder."""
    env = {
        "HANPORT_REDIS_URL": redis_url,
        "HANPORT_SERIAL": BOX,
        "HANPORT_LICENSE_DIR": "/nonexistent",
        "HANPORT_METRICS_PORT": "0",
        "HANPORT_LOG_FORMAT": "text",
    }
    env |= {f"HANPORT_EXPORT_{k.upper()}": v for k, v in settings.items()}
    keys = Path(tempfile.gettempdir()) / "bench-export-license"
    return env | await grant(redis_url, keys, BOX, ["export"])


async def fill(redis_url: str, count: int, meter: str = "main") -> None:
    redis = await connect(redis_url)
    pipe = redis.pipeline(transaction=False)
    for n in range(count):
        pipe.xadd(STREAM, {"reading": encode_reading(reading(n, meter))})
        if n % 5000 == 4999:
            await pipe.execute()
    await pipe.execute()
    await redis.aclose()


async def drain_rate(
    redis_url: str,
    group: str,
    count: int,
    proc: subprocess.Popen[bytes],
    watch: dict[str, int],
) -> tuple[float, dict[str, float]]:
    """Readings/s from the first confirmed batch until the group has confirmed all (the
    service's start-up excluded), and the CPU seconds per reading meanwhile of the service
    (`export`) and of each process of `watch` (name: pid, with its children)."""
    redis = await connect(redis_url)
    pids = {"export": proc.pid, **watch}
    first: tuple[float, int, dict[str, float]] | None = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the export service ended")
        mark = (await group_marks(redis, STREAM)).get(group)  # one light command a look
        now = time.monotonic()
        if mark is not None and mark.entries_read is not None:
            done = mark.entries_read  # (the stream was made afresh: its entries are `count`)
            if first is None and done > 0:
                first = (now, done, {name: tree_cpu_seconds(pid) for name, pid in pids.items()})
            if done >= count and first is not None:
                cpu = {
                    name: (tree_cpu_seconds(pid) - first[2][name]) / (count - first[1])
                    for name, pid in pids.items()
                }
                await redis.aclose()
                return (count - first[1]) / max(1e-9, now - first[0]), cpu
        await asyncio.sleep(0.01)
    raise TimeoutError("the export did not finish")


async def export_rate(
    redis_url: str,
    sink: str,
    count: int,
    batch: int,
    watch: dict[str, int],
    meter: str = "main",
    **settings: str,
) -> tuple[float, dict[str, float]]:
    """Readings/s of the export service draining a backlog of `count` readings of `meter`
    (another each round: new rows, new series), and the CPU per reading of it and of each
    process of `watch` (`drain_rate`)."""
    redis = await connect(redis_url)
    await redis.delete(STREAM)
    await redis.aclose()
    await fill(redis_url, count, meter)
    env = await export_env(redis_url, batch_size=str(batch), batch_wait="0", **settings)
    proc = start_export(env, Path(tempfile.gettempdir()) / f"bench-export-{sink}.log")
    try:
        return await drain_rate(redis_url, f"export-{sink}", count, proc, watch)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


async def bare_victoria(url: str, count: int, batch: int, meter: str = "bare") -> float:
    """httpx posting the same lines (made beforehand) in the same batches, one at a time."""
    bodies = [
        lineprotocol.body([reading(n, meter) for n in range(i, min(count, i + batch))], BOX)
        for i in range(0, count, batch)
    ]
    async with httpx.AsyncClient(timeout=30) as client:
        started = time.monotonic()
        for data in bodies:
            answer = await client.post(
                f"{url}/write", params={"db": "bare", "precision": "ms"}, content=data
            )
            answer.raise_for_status()
        return count / (time.monotonic() - started)


# One core kept busy `share` of every 10 ms (spinning, then sleeping): CPU taken, no work done
BUSY_LOOP = """
import sys, time
share = float(sys.argv[1])
while True:
    start = time.perf_counter()
    while time.perf_counter() - start < share * 0.01:
        pass
    time.sleep((1 - share) * 0.01)
"""


def busy_loops(cores: float) -> list[subprocess.Popen[bytes]]:
    """Processes keeping `cores` cores busy between them (each at most one), on this process's
    CPUs (the box's: `place`)."""
    count = max(1, math.ceil(cores))
    share = min(1.0, cores / count)
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(share)]) for _ in range(count)]


async def beside_busy_loop(
    bare: Callable[[str], Awaitable[float]], cores: float, tag: str, rounds: int
) -> tuple[float, float]:
    """The bare client's rate alone and beside `busy_loops(cores)`, taking turns (`rounds`
    each): the medians."""
    alone: list[float] = []
    beside: list[float] = []
    for n in range(rounds):
        for busy in (False, True) if n % 2 else (True, False):
            loops = busy_loops(cores) if busy else []
            try:
                (beside if busy else alone).append(await bare(f"{tag}-busy-{n}-{busy}"))
            finally:
                for loop in loops:
                    loop.kill()
                    loop.wait()
    return statistics.median(alone), statistics.median(beside)


async def bare_postgres(dsn: str, count: int, batch: int, meter: str = "bare") -> float:
    """psycopg COPY of the same rows in the same batches (their COPY text made beforehand, as
    the bare line protocol client's bodies) into a table of the same shape (partitioned, same
    key), one transaction per batch."""
    sink = PostgresSink(dsn, BOX)
    await sink.write([("0-1", reading(0))])  # the tables and this month's partition
    await sink.close()
    texts = [
        readings_copy_text([reading(n, meter) for n in range(i, min(count, i + batch))], BOX)
        for i in range(0, count, batch)
    ]
    columns = ", ".join(READING_COLUMNS)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        backend = conn.info.backend_pid
        started = time.monotonic()
        for text in texts:
            statement = f"COPY hanport_readings ({columns}) FROM STDIN"
            async with conn.cursor() as cursor, cursor.copy(statement) as copy:
                await copy.write(text)  # (one statement, a transaction of its own)
        rate = count / (time.monotonic() - started)
    async with asyncio.timeout(10):  # (its CPU is the postmaster's from then on: `bare_round`)
        await reaped(backend)
    return rate


async def reaped(pid: int) -> None:
    """Until the process `pid` has ended and its parent reaped it (its /proc entry gone)."""
    # (polled: no event tells that another process was reaped; /proc has no disk behind it)
    while os.path.exists(f"/proc/{pid}"):  # noqa: ASYNC110, ASYNC240
        await asyncio.sleep(0.01)


async def cpu_at_1_per_second(
    redis_url: str, meters: int, seconds: float, **settings: str
) -> tuple[float, int]:
    """The export's CPU seconds per reading while each of `meters` meters sends 1 reading/s,
    each on its own stream (as each meter's ingest writes), the settings' defaults otherwise."""
    redis = await connect(redis_url)
    await redis.delete(STREAM)
    keys = []
    for m in range(meters):
        meter_keys = MeterKeys.named(f"m{m}")
        await MeterDirectory(redis).put(
            MeterRecord(
                name=f"m{m}", readings=meter_keys.readings, raw=meter_keys.raw,
                status=meter_keys.status,
            )
        )  # fmt: skip
        keys.append(meter_keys.readings)
    env = await export_env(redis_url, **settings)
    proc = start_export(env, Path(tempfile.gettempdir()) / "bench-export-cpu.log")
    try:
        now = int(time.time() * 1000)
        for m, key in enumerate(keys):  # start-up (connections, tables) is not measured
            await redis.xadd(key, {"reading": encode_reading(reading(0, f"m{m}", now - 1000))})
        await asyncio.sleep(12)
        start_cpu, sent = cpu_seconds(proc.pid), 0
        next_at = time.monotonic()
        while sent < seconds * meters:
            for m, key in enumerate(keys):
                await redis.xadd(key, {"reading": encode_reading(reading(sent, f"m{m}", now))})
                sent += 1
            next_at += 1.0
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.sleep(7)  # the last batch (HANPORT_EXPORT_BATCH_WAIT 5 s)
        used = cpu_seconds(proc.pid) - start_cpu
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        await redis.aclose()
    return used / sent, sent


async def entry_bytes(redis_url: str, count: int = 100_000) -> float:
    redis = await connect(redis_url)
    await redis.delete("bench:memory")
    pipe = redis.pipeline(transaction=False)
    for n in range(count):
        pipe.xadd("bench:memory", {"reading": encode_reading(reading(n))})
        if n % 5000 == 4999:
            await pipe.execute()
    await pipe.execute()
    used = await redis.memory_usage("bench:memory", samples=0)
    await redis.delete("bench:memory")
    await redis.aclose()
    return float(used or 0) / count


async def outage(redis_url: str, victoria: VictoriaMetricsServer, seconds: float) -> None:
    """VictoriaMetrics down for `seconds` while readings arrive at 10/s (MAXLEN 100)."""
    redis = await connect(redis_url)
    await redis.delete(STREAM)
    publisher = Publisher(
        redis_url, STREAM, "hanport:raw", maxlen=100, raw_maxlen=0,
        retention=Retention(budget=1_000_000),
    )  # fmt: skip
    publishing = asyncio.create_task(publisher.run())
    env = await export_env(
        redis_url, influx_url=victoria.url, influx_database="outage", timeout="2"
    )
    proc = start_export(env, Path(tempfile.gettempdir()) / "bench-export-outage.log")
    start = int(time.time() * 1000) - 7 * 86_400_000
    sent = 0

    async def at_10_per_second(duration: float) -> None:
        nonlocal sent
        next_at = time.monotonic()
        for _ in range(int(duration * 10)):
            r = reading(sent, "outage", start)
            r.ts = start + sent * 100
            publisher.put(r, b"", "ok", int(time.time() * 1000))
            sent += 1
            next_at += 0.1
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    try:
        await at_10_per_second(5)
        victoria.pause()  # SIGSTOP: it keeps its port (a restart could lose it to another run)
        await at_10_per_second(seconds)
        held = await redis.xlen(STREAM)
        victoria.resume()
        back = time.monotonic()
        await at_10_per_second(5)
        while True:
            backlogs = await group_backlogs(redis, STREAM, "export-influx")
            if not backlogs["export-influx"].entries:
                break
            await asyncio.sleep(0.1)
        caught_up = time.monotonic() - back
        series = [s for s in victoria.samples('{__name__="hanport_ic",db="outage"}')]
        times = series[0]["timestamps"] if series else []
        print(
            f"outage of {seconds:.0f} s at 10 readings/s (stream MAXLEN 100): {sent} sent, "
            f"{held} held in the stream at the end of the outage, caught up {caught_up:.1f} s "
            f"after the sink came back; in VictoriaMetrics {len(times)} readings, "
            f"{len(times) - len(set(times))} twice, {sent - len(set(times))} missing"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        publishing.cancel()
        await redis.aclose()


# Where the processes run: (the store's CPUs, the box's CPUs), None for all of them.
PLACEMENTS: dict[str, tuple[set[int], set[int]] | None] = {
    "the store on a core of its own (as on another machine)": ({1}, {0}),
    "everything sharing both cores": None,
}
PLACEMENT_NAMES = dict(zip(("own", "shared"), PLACEMENTS, strict=True))  # `--placement`


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of the process and of its children (PostgreSQL's backends) on `cpus`;
    threads and processes started later inherit it."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)
        for child in (task / "children").read_text().split():
            pin(int(child), cpus)


def place(cpus: tuple[set[int], set[int]] | None, *, stores: tuple, box: tuple) -> None:
    """Pin the stores' servers, the box's servers and this process (whose children, the export
    service, inherit it) as a `PLACEMENTS` entry says."""
    everywhere = set(range(os.cpu_count() or 1))
    store_cpus, box_cpus = cpus or (everywhere, everywhere)
    for server in stores:
        pin(server.proc.pid, store_cpus)
    for server in box:
        pin(server.proc.pid, box_cpus)
    os.sched_setaffinity(0, box_cpus)


async def bare_round(bare: Awaitable[float], store_pid: int, count: int) -> tuple[float, float]:
    """The bare client's rate, and the store's CPU seconds per reading meanwhile."""
    before = tree_cpu_seconds(store_pid)
    ceiling = await bare  # (PostgreSQL's: after its backend was reaped, `bare_postgres`)
    return ceiling, (tree_cpu_seconds(store_pid) - before) / count


@dataclass
class Round:
    """One round of a store: the export's rate, the bare client's, and the CPU per reading (µs)
    of the export, of Redis and of the store while the export wrote, and of the store while the
    bare client wrote."""

    rate: float
    ceiling: float
    cpu: dict[str, float]
    store_bare: float

    @property
    def ratio(self) -> float:
        return self.rate / self.ceiling


async def compare(
    redis: OwnRedis,
    victoria: VictoriaMetricsServer,
    postgres: PostgresServer,
    args: argparse.Namespace,
    placement: str,
) -> None:
    """The export against the bare client into each store: a warm-up round, then `rounds`
    rounds taking turns to go first; the median ratio, and where the CPU went in that round
    (on shared cores what the export and Redis take, the store lacks)."""
    count, batch, url = args.count, args.batch, redis.url
    assert redis.proc and victoria.proc and postgres.proc  # (started)
    redis_pid, victoria_pid, postgres_pid = redis.proc.pid, victoria.proc.pid, postgres.proc.pid

    def export_of(sink: str, store_pid: int, **settings: str) -> Callable[[str], Any]:
        watch = {"redis": redis_pid, "store": store_pid}
        return lambda m: export_rate(url, sink, count, batch, watch, meter=m, **settings)

    sinks: dict[str, tuple[int, Callable[[str], Any], Callable[[str], Any], str]] = {
        "VictoriaMetrics": (
            victoria_pid,
            export_of("influx", victoria_pid, influx_url=victoria.url),
            lambda m: bare_victoria(victoria.url, count, batch, m),
            "bare httpx",
        ),
        "PostgreSQL": (
            postgres_pid,
            export_of("postgres", postgres_pid, postgres_dsn=postgres.dsn),
            lambda m: bare_postgres(postgres.dsn, count, batch, m),
            "bare psycopg COPY",
        ),
    }
    print(f"-- {placement}")
    for store, (store_pid, export, bare, bare_name) in sinks.items():
        if args.store and args.store.lower() not in store.lower():
            continue
        tag = f"m{time.monotonic_ns()}"  # each round's own meter: new rows and series
        await export(f"{tag}-warm")
        await bare(f"{tag}-warm-bare")  # the warm-up round, not counted
        rounds: list[Round] = []
        for n in range(args.rounds):
            if n % 2:
                rate, cpu = await export(f"{tag}-{n}")
                ceiling, store_bare = await bare_round(bare(f"{tag}-{n}-bare"), store_pid, count)
            else:
                ceiling, store_bare = await bare_round(bare(f"{tag}-{n}-bare"), store_pid, count)
                rate, cpu = await export(f"{tag}-{n}")
            rounds.append(Round(rate, ceiling, cpu, store_bare))
        median = sorted(rounds, key=lambda r: r.ratio)[len(rounds) // 2]
        us = {name: seconds * 1e6 for name, seconds in median.cpu.items()}
        print(
            f"{store}: export {median.rate:,.0f} readings/s, {bare_name} {median.ceiling:,.0f}/s,"
            f" ratio {median.ratio:.2f} (median of {args.rounds}: "
            f"{', '.join(f'{r.ratio:.2f}' for r in rounds)}; goal >= 0.8"
            f"{' and >= 20,000/s' if store == 'VictoriaMetrics' else ''}); CPU per reading: "
            f"the export {us['export']:.1f} µs, Redis {us['redis']:.1f}, the store "
            f"{us['store']:.1f} (with the bare client {median.store_bare * 1e6:.1f})"
        )
        if args.busy_loop:
            cores = (median.cpu["export"] + median.cpu["redis"]) * median.rate
            alone, beside = await beside_busy_loop(bare, cores, tag, args.rounds)
            print(
                f"  {bare_name} beside a busy loop of {cores:.2f} core (the CPU the export and "
                f"Redis took): {beside:,.0f}/s against {alone:,.0f}/s alone, "
                f"{beside / alone:.2f} (medians of {args.rounds})"
            )


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        base = Path(folder)
        redis = OwnRedis(base / "redis")
        victoria = VictoriaMetricsServer(base / "victoria")
        postgres = PostgresServer(base / "postgres")
        for server in (redis, victoria, postgres):
            server.start()
        try:
            url = redis.url
            if args.outage_only:
                await outage(url, victoria, args.outage or 600)
                return
            if args.cpu_only:
                per, sent = await cpu_at_1_per_second(
                    url, args.meters, args.seconds,
                    influx_url=victoria.url, postgres_dsn=postgres.dsn,
                )  # fmt: skip
                print(f"CPU at 1 reading/s per meter: {per * 1e3:.2f} ms per reading ({sent})")
                return
            print(f"{args.count} readings, batches of {args.batch}, full P1 readings (27 values)")
            for placement, cpus in PLACEMENTS.items():
                if args.placement and PLACEMENT_NAMES[args.placement] != placement:
                    continue
                place(cpus, stores=(victoria, postgres), box=(redis,))
                await compare(redis, victoria, postgres, args, placement)
            place(None, stores=(victoria, postgres), box=(redis,))
            if args.compare_only:
                return
            per, sent = await cpu_at_1_per_second(
                url, args.meters, args.seconds,
                influx_url=victoria.url, postgres_dsn=postgres.dsn,
            )  # fmt: skip
            print(
                f"CPU at 1 reading/s per meter ({args.meters} meters, {sent} readings, both "
                f"sinks): {per * 1e3:.2f} ms per reading"
            )
            size = await entry_bytes(url)
            print(
                f"Redis memory per readings-stream entry: {size:.0f} bytes "
                f"(HANPORT_STREAM_RETAIN_MAX=604800, 7 days at 1/s: {size * 604800 / 2**20:.0f} MiB)"
            )
            if args.outage:
                await outage(url, victoria, args.outage)
        finally:
            for server in (redis, victoria, postgres):
                server.stop()
            postgres.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__)
    parser.add_argument(
        "--count", type=int, default=300_000
    )  # (100,000 drained in a second: noise)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per store and placement")
    parser.add_argument("--meters", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--outage", type=float, default=0.0, help="seconds (the issue: 600)")
    parser.add_argument("--outage-only", action="store_true", help="only the outage case")
    parser.add_argument("--cpu-only", action="store_true", help="only the CPU at 1 reading/s")
    parser.add_argument("--store", choices=("victoria", "postgres"), help="only this store")
    parser.add_argument("--placement", choices=tuple(PLACEMENT_NAMES), help="only this one")
    parser.add_argument(
        "--compare-only", action="store_true", help="only the comparison with the bare clients"
    )
    parser.add_argument(
        "--busy-loop",
        action="store_true",
        help="also the bare client beside a busy loop taking the export's and Redis's CPU",
    )
    args = parser.parse_args(
        argv if argv is not None else sys.argv[1:] if __name__ == "__main__" else []
    )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
