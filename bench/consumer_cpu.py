"""CPU per reading of the stream consumers that serve only the newest values (modbus, licensing),
at a high offered rate, for this tree and optionally a baseline git revision.

Consumes nothing but this machine (a real redis-server on a free port); produces figures on
stdout: for each service, the CPU milliseconds its process spent per reading while N readings
were XADDed (pipelined, as fast as Redis takes them), measured from /proc, and the ratio
baseline / this tree. Each service runs alone in its own process (uvloop), caught up with the
stream before the clock starts; it is done once it has taken in the last reading. `--poll-hz`
adds a Modbus client reading the SDM630 block that many times a second during the run.

    python -m bench.consumer_cpu [--readings 20000] [--baseline HEAD~3] [--poll-hz 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

from bench.common import cpu_seconds, free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("modbus", "licensing")

# Runs in the service's process, from the tree under test: start, say "ready" once caught up
# with the stream, then "done" once the reading with ts == argv[4] has been taken in.
CHILD = r"""
import asyncio, sys, tempfile
import uvloop
from shared.stream import connect

service, redis_url, port, final_ts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def say(word):
    sys.stdout.write(word + "\n")
    sys.stdout.flush()

async def modbus(redis):
    from bench.common import Granted
    from services.modbus.service import make_store, run_service
    from services.modbus.settings import ModbusSettings
    settings = ModbusSettings.model_validate({"redis_url": redis_url, "serial": "HPBENCH0001",
        "modbus_host": "127.0.0.1", "modbus_port": port, "metrics_port": 0})
    store = make_store(settings, "HPBENCH0001")
    task = asyncio.create_task(run_service(settings, redis, entitlements=Granted(), store=store))
    await store.until(lambda: store.reading is not None)
    say("ready")
    await store.until(lambda: store.reading.ts >= final_ts)
    say("done")
    await task

async def licensing(redis):
    from services.licensing.service import LicensingService
    from services.licensing.settings import LicensingSettings
    folder = tempfile.mkdtemp()
    settings = LicensingSettings(redis_url=redis_url, serial="HPBENCH0001", license_dir=folder)
    svc = LicensingService(settings, redis, {})
    try:
        from services.licensing.running import run
    except ImportError:  # a tree from before the loops left the service class
        run = LicensingService.run
    task = asyncio.create_task(run(svc))
    await svc.wait_for(lambda: svc.meter_id is not None)
    say("ready")
    await svc.wait_for(lambda: svc.meter_ts >= final_ts)
    say("done")
    await task

async def main():
    redis = await connect(redis_url)
    await (modbus if service == "modbus" else licensing)(redis)

uvloop.run(main())
"""


def reading_json(i: int, ts: int) -> bytes:
    from shared.reading import Reading, encode_reading

    w = 1000.0 + i % 3000
    return encode_reading(
        Reading(
            ts=ts,
            received=int(time.time() * 1000),
            ic=2721.126 + i / 1000,
            ec=0.0,
            ric=1384.336,
            rec=0.09,
            p=[w, w / 2, w / 4, w / 4],
            pi=[w, w / 2, w / 4, w / 4],
            pe=[0.0, 0.0, 0.0, 0.0],
            r=[120.0, 40.0, None, 80.0],
            u=[230.7, 230.1, 231.0],
            i=[9.7, 1.9, 9.2],
            meter_id="7350000000000001",
            meter_model="LGF5E360",
            frequency=50.0,
        )
    )


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(port)
    return proc, f"redis://127.0.0.1:{port}/0"


async def poll_modbus(port: int, hz: float, stop: asyncio.Event) -> int:
    """Read SDM630 input registers 0-59 `hz` times a second until `stop`; returns the count."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = struct.pack(">HHHBBHH", 1, 0, 6, 1, 4, 0, 60)
    reads = 0
    try:
        while not stop.is_set():
            writer.write(request)
            await asyncio.wait_for(reader.readexactly(9 + 120), 10)
            reads += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1 / hz)
    finally:
        writer.close()
    return reads


async def offer(redis: Redis, key: str, payloads: list[bytes], rate: float) -> None:
    """XADD every payload: `rate` per second, evenly (a pipeline of rate/1000 every ms, or one
    every 1000/rate ms), or as fast as Redis takes them in pipelines of 500 (rate 0)."""
    chunk = 500 if not rate else max(1, round(rate / 1000))
    t0 = time.perf_counter()
    for n, start in enumerate(range(0, len(payloads), chunk)):
        if rate:
            await asyncio.sleep(max(0.0, t0 + n * chunk / rate - time.perf_counter()))
        pipe = redis.pipeline(transaction=False)
        for payload in payloads[start : start + chunk]:
            pipe.xadd(key, {b"reading": payload})
        await pipe.execute()


async def measure(
    tree: Path, service: str, readings: int, poll_hz: float, rate: float
) -> tuple[float, float]:
    """(CPU ms per reading, wall seconds) of `service` from `tree` taking in `readings`."""
    with tempfile.TemporaryDirectory() as workdir:
        redis_proc, url = start_redis(Path(workdir))
        redis = Redis.from_url(url)
        child = None
        try:
            key = "hanport:readings"
            base = int(time.time() * 1000)
            await redis.xadd(key, {b"reading": reading_json(0, base)})
            final = base + readings
            port = free_port()
            env = {**os.environ, "PYTHONPATH": f"{tree}:{ROOT}"}
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CHILD, service, url, str(port), str(final),
                cwd=tree, env=env, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 60)
            assert line == b"ready\n", line
            payloads = [reading_json(i, base + i) for i in range(1, readings + 1)]
            stop = asyncio.Event()
            poller = None
            if service == "modbus" and poll_hz:
                poller = asyncio.create_task(poll_modbus(port, poll_hz, stop))
            await asyncio.sleep(0.5)  # let start-up work settle before the clock starts
            cpu0, t0 = cpu_seconds(child.pid), time.perf_counter()
            await offer(redis, key, payloads, rate)
            line = await asyncio.wait_for(child.stdout.readline(), 300)
            cpu1, t1 = cpu_seconds(child.pid), time.perf_counter()
            assert line == b"done\n", line
            stop.set()
            if poller is not None:
                await poller
            return (cpu1 - cpu0) * 1000 / readings, t1 - t0
        finally:
            if child is not None and child.returncode is None:
                child.kill()
                await child.wait()
            await redis.aclose()
            redis_proc.terminate()
            redis_proc.wait(10)


def extract(revision: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.consumer_cpu")
    parser.add_argument("--readings", type=int, default=20000)
    parser.add_argument("--baseline", help="git revision to compare with (e.g. HEAD~3)")
    parser.add_argument("--poll-hz", type=float, default=0.0)
    parser.add_argument(
        "--rates", default="0,5000", help="offered readings/s, comma-separated (0: unpaced)"
    )
    parser.add_argument("--services", default=",".join(SERVICES))
    args = parser.parse_args(argv if argv is not None else [])
    services = args.services.split(",")
    print(
        f"consumer CPU per reading: {args.readings} readings XADDed per run"
        f" (load average {os.getloadavg()[0]:.2f})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        trees = [("this tree", ROOT)]
        if args.baseline:
            trees.insert(0, (args.baseline, extract(args.baseline, Path(tmp))))
        results: dict[tuple[str, str], float] = {}
        for rate in (float(r) for r in args.rates.split(",")):
            offered = f"{rate:,.0f}/s" if rate else "unpaced"
            for service in services:
                for name, tree in trees:
                    ms, wall = asyncio.run(
                        measure(tree, service, args.readings, args.poll_hz, rate)
                    )
                    results[(service, name)] = ms
                    print(
                        f"  {offered:>9} {service:9} {name:12} {ms:7.3f} ms CPU/reading "
                        f"({args.readings / wall:,.0f} readings/s taken in)"
                    )
                if args.baseline:
                    before = results[(service, args.baseline)]
                    after = results[(service, "this tree")]
                    print(
                        f"  {offered:>9} {service:9} baseline / this tree = {before / after:.1f}x"
                    )


if __name__ == "__main__":
    main(sys.argv[1:])
