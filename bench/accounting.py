"""Energy accounting: the accounting service's CPU per reading, and the latency of a year of
hourly intervals over REST, each against a bare peer.

Consumes nothing but this machine (a real redis-server on a free port); produces figures on
stdout:
- CPU per reading: `python -m services.accounting` (rule no-elvia) caught up with an empty
  stream, then N readings (one every 10 s, as a P1 meter sends them) XADDed at once; CPU from
  /proc until every entry is acknowledged. The bare peer is a process that reads the same
  entries through a consumer group, decodes and acknowledges them, and counts nothing: the
  ratio is what accounting adds to merely consuming.
- REST: a year of hourly intervals (8,760) stored as the service stores them, then
  `GET /meters/m1/energy?resolution=1h&from=2025-01-01&to=2026-01-01` (JSON and CSV) from a real
  `python -m services.rest`, p50/p99 of 30 requests; the bare peer is the same range read
  straight from Redis (ZRANGEBYSCORE) by a Python client.

    python -m bench.accounting [--readings 20000]
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
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from redis.asyncio import Redis

from bench.common import cpu_seconds, free_port, wait_for_port
from services.accounting import store
from services.accounting.account import IntervalRow
from shared.reading import Reading, encode_reading

ROOT = Path(__file__).resolve().parent.parent
STREAM = "hanport:readings"
T0 = int(datetime(2026, 3, 1, tzinfo=ZoneInfo("Europe/Oslo")).timestamp() * 1000)

# The bare peer: a consumer group reader that decodes and acknowledges, nothing else.
PEER = r"""
import asyncio, sys
from redis.asyncio import Redis
from shared.stream import GroupReader, ReadingStream

async def main():
    redis = Redis.from_url(sys.argv[1])
    group = GroupReader(ReadingStream(redis, sys.argv[2]), "peer", "peer")
    await group.ensure_group("0")
    sys.stdout.write("ready\n"); sys.stdout.flush()
    while True:
        entries = await group.new(500)
        if entries:
            await group.ack(*[entry_id for entry_id, _ in entries])

asyncio.run(main())
"""


def readings(n: int) -> list[Reading]:
    out = []
    for k in range(n):
        ts = T0 + k * 10_000
        out.append(
            Reading(
                ts=ts,
                received=ts,
                meter="m1",
                ic=1000 + k * 0.004,
                ec=10 + k * 0.0005,
                ric=50 + k * 0.001,
                rec=5.0,
                pi=[1440.0, None, None, None],
            )
        )
    return out


def spawn(command: list[str], env: dict[str, str], log: Path | None) -> subprocess.Popen[bytes]:
    """A child process; its output to `log`, or a pipe when None."""
    if log is None:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)


async def acknowledged(redis: Redis, group: str, last: str, within: float = 600) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for info in await redis.xinfo_groups(STREAM):
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            delivered = info["last-delivered-id"]
            delivered = delivered.decode() if isinstance(delivered, bytes) else delivered
            if name == group and delivered == last and info["pending"] == 0:
                return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"group {group} did not acknowledge up to {last}")


async def group_exists(redis: Redis, group: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await redis.exists(STREAM):
            names = [g["name"] for g in await redis.xinfo_groups(STREAM)]
            if group in names or group.encode() in names:
                return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"group {group} never appeared")


async def cpu_per_reading(redis_url: str, n: int, workdir: Path) -> tuple[float, float]:
    """(accounting ms per reading, bare peer ms per reading)."""
    redis = Redis.from_url(redis_url)
    env = {
        **os.environ,
        "HANPORT_REDIS_URL": redis_url,
        "HANPORT_TARIFF_RULE": "no-elvia",
        "HANPORT_METRICS_PORT": "0",
        "HANPORT_LOG_FORMAT": "text",
    }
    acct = await asyncio.to_thread(
        spawn, [sys.executable, "-m", "services.accounting"], env, workdir / "accounting.log"
    )
    peer = await asyncio.to_thread(
        spawn,
        [sys.executable, "-c", PEER, redis_url, STREAM],
        {**os.environ, "PYTHONPATH": str(ROOT)},
        None,
    )
    try:
        await redis.xgroup_create(STREAM, "accounting", "0", mkstream=True)
        assert peer.stdout is not None and peer.stdout.readline().strip() == b"ready"
        await group_exists(redis, "peer")
        await asyncio.sleep(2)  # both caught up with the empty stream, imports done
        cpu0 = (cpu_seconds(acct.pid), cpu_seconds(peer.pid))
        last = ""
        batch = readings(n)
        for offset in range(0, n, 2000):
            pipe = redis.pipeline(transaction=False)
            for reading in batch[offset : offset + 2000]:
                last = f"{reading.ts}-0"
                pipe.xadd(STREAM, {"reading": encode_reading(reading)}, id=last)
            await pipe.execute()
        await acknowledged(redis, "accounting", last)
        await acknowledged(redis, "peer", last)
        cpu1 = (cpu_seconds(acct.pid), cpu_seconds(peer.pid))
        return (cpu1[0] - cpu0[0]) * 1000 / n, (cpu1[1] - cpu0[1]) * 1000 / n
    finally:
        for proc in (acct, peer):
            proc.terminate()
            proc.wait(timeout=15)
        await redis.aclose()


async def year_over_rest(redis_url: str, workdir: Path) -> dict[str, tuple[float, float]]:
    """p50/p99 ms of a year of hourly intervals: JSON, CSV, and Redis alone."""
    redis = Redis.from_url(redis_url)
    zone = ZoneInfo("Europe/Oslo")
    start = int(datetime(2025, 1, 1, tzinfo=zone).timestamp() * 1000)
    end = int(datetime(2026, 1, 1, tzinfo=zone).timestamp() * 1000)
    pipe = redis.pipeline(transaction=False)
    key = store.energy_key("y1", "1h")
    for k, hour in enumerate(range(start, end, 3_600_000)):
        row = IntervalRow("hour", hour, (0.5 + (k % 7) * 0.1, 0.01 * (k % 3), 0.2, 0.0), False)
        pipe.zadd(key, {store.encode_row(row): hour})
    pipe.sadd(store.METERS_KEY, "y1")
    pipe.set(store.tariff_key("y1"), json.dumps({"zone": "Europe/Oslo", "now_ms": end}))
    await pipe.execute()
    port = free_port()
    env = {
        **os.environ,
        "HANPORT_REDIS_URL": redis_url,
        "HANPORT_REST_HOST": "127.0.0.1",
        "HANPORT_REST_PORT": str(port),
        "HANPORT_METRICS_PORT": "0",
        "HANPORT_LOG_FORMAT": "text",
    }
    rest = await asyncio.to_thread(
        spawn, [sys.executable, "-m", "services.rest"], env, workdir / "rest.log"
    )
    out: dict[str, tuple[float, float]] = {}
    try:
        wait_for_port(port, timeout=30)
        params = {"resolution": "1h", "from": "2025-01-01", "to": "2026-01-01"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for name, extra in (("json", {}), ("csv", {"format": "csv"})):
                times = []
                for _ in range(31):
                    begin = time.perf_counter()
                    response = await client.get("/meters/y1/energy", params={**params, **extra})
                    times.append((time.perf_counter() - begin) * 1000)
                    assert response.status_code == 200, response.text
                if name == "json":
                    assert len(response.json()["intervals"]) == 8760
                out[name] = summary(times[1:])
        times = []
        for _ in range(31):
            begin = time.perf_counter()
            rows = await store.read_intervals(redis, "y1", "1h", start, end)
            times.append((time.perf_counter() - begin) * 1000)
        assert len(rows) == 8760
        out["redis"] = summary(times[1:])
    finally:
        rest.terminate()
        rest.wait(timeout=15)
        await redis.aclose()
    return out


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.accounting")
    parser.add_argument("--readings", type=int, default=20_000)
    args = parser.parse_args(argv or [])
    from tests.servers import RedisServer

    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        server = RedisServer(workdir / "redis")
        server.start()
        try:
            acct_ms, peer_ms = asyncio.run(cpu_per_reading(server.url, args.readings, workdir))
            print(
                f"   CPU per reading, {args.readings} readings (one per 10 s of meter time): "
                f"accounting {acct_ms:.3f} ms, bare consumer group {peer_ms:.3f} ms "
                f"(ratio {acct_ms / peer_ms:.1f}x)"
            )
            figures = asyncio.run(year_over_rest(server.url, workdir))
            redis_p50 = figures["redis"][0]
            for name in ("json", "csv"):
                p50, p99 = figures[name]
                print(
                    f"   a year of hourly intervals (8,760) over REST as {name}: p50 {p50:.1f} ms, "
                    f"p99 {p99:.1f} ms (ratio to Redis alone, p50 {p50 / redis_p50:.1f}x)"
                )
            print(
                f"   the same range from Redis alone (ZRANGEBYSCORE + decode): p50 "
                f"{figures['redis'][0]:.1f} ms, p99 {figures['redis'][1]:.1f} ms"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
