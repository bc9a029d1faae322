"""REST with many meters: `--meters` (default 100) meters at 1 reading/s each, every one on its
own stream registered in the directory, read by one `hanport rest` process (a real process on a
real redis-server). Measures, for the REST service alone (no ingest, no other interface):

1. XADD -> the reading visible on `/meters/<id>` (polled, one meter at a time), p50/p99;
2. the service's CPU per meter while only the readings arrive (`--seconds`, no polling) and its
   resident memory (VmRSS, VmHWM);

against the bare peer: the same service reading one meter at 1 reading/s (the ratio says what
the other meters cost).

Run: `.venv/bin/python -m bench.rest_meters [--meters 100] [--seconds 30] [--samples 60]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgspec
from redis.asyncio import Redis

from bench.common import cpu_seconds, free_port, wait_for_port
from shared.meters import MeterDirectory, MeterKeys, MeterRecord
from shared.reading import Reading, encode_reading
from shared.stream import READING_FIELD
from tests.readings import simulated_readings
from tests.servers import RedisServer

ROOT = Path(__file__).resolve().parents[1]


def kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


async def register(redis: Redis, names: list[str]) -> None:
    now = int(time.time() * 1000)
    for name in names:
        keys = MeterKeys.named(name)
        record = MeterRecord(
            name=name, readings=keys.readings, raw=keys.raw, status=keys.status,
            source=f"bench {name}", started=now, updated=now,
        )  # fmt: skip
        await MeterDirectory(redis).put(record)


async def feed(redis: Redis, names: list[str], template: Reading, stop: asyncio.Event,
               written: dict[tuple[str, int], float]) -> None:  # fmt: skip
    """Each meter one reading a second, the meters spread evenly over the second."""
    count = len(names)
    second = int(time.time()) + 1
    while not stop.is_set():
        for index, name in enumerate(names):
            due = second + index / count
            await asyncio.sleep(max(0.0, due - time.time()))
            now_ms = int(time.time() * 1000)
            ts = second * 1000 + index
            reading = msgspec.structs.replace(template, meter=name, ts=ts, received=now_ms)
            await redis.xadd(
                MeterKeys.named(name).readings,
                {READING_FIELD: encode_reading(reading)},
                maxlen=100,
                approximate=True,
            )
            written[(name, ts)] = time.perf_counter()
        second += 1


async def measure(count: int, seconds: float, samples: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="hanport-bench-rest-meters-") as folder:
        redis_server = RedisServer(Path(folder) / "redis")
        redis_server.start()
        port = free_port()
        env = {
            **os.environ, "PYTHONPATH": str(ROOT), "HANPORT_REDIS_URL": redis_server.url,
            "HANPORT_REST_HOST": "127.0.0.1", "HANPORT_REST_PORT": str(port),
            "HANPORT_LOG_LEVEL": "WARNING", "HANPORT_LOG_FORMAT": "text",
        }  # fmt: skip
        redis = Redis.from_url(redis_server.url)
        names = [f"m{n:03d}" for n in range(count)]
        await register(redis, names)
        with (Path(folder) / "rest.log").open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.rest", cwd=ROOT, env=env,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        stop = asyncio.Event()
        written: dict[tuple[str, int], float] = {}
        try:
            await asyncio.to_thread(wait_for_port, port, 30)
            feeding = asyncio.create_task(
                feed(redis, names, simulated_readings(1)[0], stop, written)
            )
            client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5)
            await asyncio.sleep(4)  # every meter found (the directory is read every 2 s)
            latencies: list[float] = []
            for n in range(samples):
                name = names[(n * 7) % count]
                ts_due = (int(time.time()) + 1) * 1000 + names.index(name)
                while True:
                    answer = await client.get(f"/meters/{name}")
                    if answer.status_code == 200 and json.loads(answer.content)["ts"] == ts_due:
                        seen = time.perf_counter()
                        break
                    await asyncio.sleep(0.0005)
                latencies.append((seen - written[(name, ts_due)]) * 1000)
            # CPU while only the readings arrive (polling would count as REST's own work)
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            await asyncio.sleep(seconds)
            cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
            rss, hwm = kb(proc.pid, "VmRSS") / 1024, kb(proc.pid, "VmHWM") / 1024
            listed = len((await client.get("/meters")).json()["meters"])
            await client.aclose()
            stop.set()
            await feeding
        finally:
            proc.kill()
            await proc.wait()
            await redis.aclose()
            redis_server.stop()
    latencies.sort()
    return {
        "meters": listed,
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "cpu": cpu,
        "rss": rss,
        "hwm": hwm,
    }


async def run(count: int, seconds: float, samples: int) -> None:
    bare = await measure(1, seconds, samples)
    many = await measure(count, seconds, samples)
    for label, r in (("1 meter (bare peer)", bare), (f"{count} meters", many)):
        print(
            f"{label:22s} listed {r['meters']:3.0f}  XADD -> /meters/<id> p50 {r['p50']:.2f} ms "
            f"p99 {r['p99']:.2f} ms  CPU {r['cpu'] * 100:.2f} % of a core "
            f"({r['cpu'] / max(1, r['meters']) * 100:.3f} % per meter)  "
            f"RSS {r['rss']:.0f} MB (peak {r['hwm']:.0f} MB)"
        )
    print(
        f"ratio {count} meters / 1: p99 {many['p99'] / bare['p99']:.2f}, CPU "
        f"{many['cpu'] / bare['cpu']:.1f}, RSS {many['rss'] / bare['rss']:.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rest_meters", description=__doc__)
    parser.add_argument("--meters", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--samples", type=int, default=40)
    if argv is None and __name__ != "__main__":
        argv = []  # run by `python -m bench`: its arguments are module names, not ours
    args = parser.parse_args(argv)
    asyncio.run(run(args.meters, args.seconds, args.samples))


if __name__ == "__main__":
    main()
