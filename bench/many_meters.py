"""Many meters on one box: `--meters` (default 100) meters at 1 telegram/s each, every one read by
its own ingest process (`HANPORT_METER_NAME`, a network P1 source the bench serves), beside the
whole stack as compose.yaml starts it (tests/stack/processes.py), with a real license.

Measures, at 1 Hz per meter:
1. Latency from a telegram's last byte written to the meter's TCP source to the reading being
   readable on REST `/meters/<name>` (polled), arriving at an MQTT subscriber of that meter's
   topic (QoS 1), and readable over Modbus on the meter's unit id (polled). Each second one meter
   is sampled (round robin) on REST or Modbus in turn; MQTT is timed for every sampled reading.
   Goal: p99 < 10 ms.
2. CPU per meter: the CPU seconds of each service over a window, per meter and per reading.
3. Resident memory of each service (and the largest ingest). Goal: < 80 MB per service.

    .venv/bin/python -m bench.many_meters [--meters 100] [--samples 40] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import httpx
from pymodbus.client import AsyncModbusTcpClient

from bench.common import cpu_seconds
from bench.stack import (
    GOAL_P99_MS,
    GOAL_RSS_MB,
    SERIAL,
    TIMEOUT,
    Bench,
    ComposeRedis,
    Poller,
    install_license,
    percentile,
    rss_mb,
    start_stack,
    wait_for,
)
from services.ingest.sources.simulated_meter import MeterSimulator
from tests.servers import MosquittoServer
from tests.stack.processes import HANPORT, Service, Stack

PREFIX = f"hanport/{SERIAL}"


def meter_name(n: int) -> str:
    return f"m{n:03d}"


def meter_topic(name: str) -> str:
    """The MQTT topic of a meter other than the default one (docs/mqtt.md, "Several meters")."""
    return f"{PREFIX}/meters/{name}/data"


def modbus_units(count: int) -> str:
    """`HANPORT_MODBUS_UNITS`: unit id n + 1 serves meter n (unit 1 stays the default meter)."""
    return ",".join(f"{n + 1}={meter_name(n)}" for n in range(1, count + 1))


@dataclass
class MeterSource:
    """A network P1 source for one meter: a telegram at each second + `offset` s, the meter's
    clock in the telegram being that second (so every telegram's `ts` is known in advance)."""

    name: str
    offset: float
    simulator: MeterSimulator = field(default_factory=MeterSimulator)
    written: dict[int, float] = field(default_factory=dict)  # ts -> perf_counter at write
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connected.set()
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while True:
                second = int(time.time()) + 1
                await asyncio.sleep(max(0.0, second + self.offset - time.time()))
                writer.write(self.simulator.telegram(second * 1000))
                await writer.drain()
                self.written[second * 1000] = time.perf_counter()
                if len(self.written) > 600:
                    self.written.pop(next(iter(self.written)))
        writer.close()


@dataclass
class Arrivals:
    """MQTT arrivals by (meter topic, ts)."""

    seen: dict[tuple[str, int], float] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def subscribe(self, port: int, ready: asyncio.Event) -> None:
        async with aiomqtt.Client("127.0.0.1", port, identifier="bench-meters") as client:
            await client.subscribe(f"{PREFIX}/meters/+/data", qos=1)
            ready.set()
            async for message in client.messages:
                now = time.perf_counter()
                assert isinstance(message.payload, bytes)
                ts = json.loads(message.payload)["ts"]
                self.seen.setdefault((str(message.topic), ts), now)
                async with self.changed:
                    self.changed.notify_all()

    async def wait(self, topic: str, ts: int) -> float:
        async with self.changed:
            await self.changed.wait_for(lambda: (topic, ts) in self.seen)
        return self.seen[(topic, ts)]


async def start_meters(
    stack: Stack, count: int, workdir: Path
) -> tuple[list[MeterSource], list[Service], list[asyncio.Server]]:
    """`count` meter sources and an ingest process for each, named m001..."""
    sources, ingests, servers = [], [], []
    template = stack["ingest"].env
    for n in range(1, count + 1):
        source = MeterSource(meter_name(n), offset=(n % 100) / 100 * 0.9)
        server = await asyncio.start_server(source.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        env = {
            **template,
            "HANPORT_METER_NAME": source.name,
            "HANPORT_SOURCE": f"tcp://127.0.0.1:{port}",
            "HANPORT_METRICS_PORT": "0",
        }
        ingest = Service(f"ingest-{source.name}", [str(HANPORT), "ingest"], env, workdir)
        ingest.start()
        sources.append(source)
        ingests.append(ingest)
        servers.append(server)
    for source in sources:
        await asyncio.wait_for(source.connected.wait(), 120)
    return sources, ingests, servers


async def latency(
    bench: Bench, sources: list[MeterSource], arrivals: Arrivals, samples: int
) -> dict[str, list[float]]:
    rest_port = bench.stack["rest"].port("HANPORT_REST_PORT")
    modbus = AsyncModbusTcpClient(
        "127.0.0.1", port=bench.stack["modbus"].port("HANPORT_MODBUS_PORT"), timeout=3
    )
    await wait_for(modbus.connect, "the Modbus port to open (license)")
    results: dict[str, list[float]] = {"REST /meters/<id>": [], "MQTT": [], "Modbus": []}

    async def rest_sees(poller: Poller, ts: int) -> float:
        while True:
            status, body = await poller.get()
            if status == 200 and json.loads(body)["ts"] == ts:
                return time.perf_counter()
            await asyncio.sleep(0.0005)

    async def modbus_sees(unit: int, ts: int) -> float:
        while True:
            result = await modbus.read_holding_registers(1004, count=4, device_id=unit)
            registers = [] if result.isError() else result.registers
            if registers and struct.unpack(">Q", struct.pack(">4H", *registers))[0] == ts:
                return time.perf_counter()
            await asyncio.sleep(0.0005)

    try:
        for n in range(samples + 4):  # the first four warm up
            index = n % len(sources)
            source = sources[index]
            second = int(time.time()) + 1
            ts = second * 1000
            # start polling just before the telegram is due
            await asyncio.sleep(max(0.0, second + source.offset - 0.05 - time.time()))
            if n % 2 == 0:
                poller = Poller("127.0.0.1", rest_port, f"/meters/{source.name}")
                polled = rest_sees(poller, ts)
                name = "REST /meters/<id>"
            else:
                poller = None
                polled = modbus_sees(index + 2, ts)
                name = "Modbus"
            try:
                seen, pushed = await asyncio.wait_for(
                    asyncio.gather(polled, arrivals.wait(meter_topic(source.name), ts)), TIMEOUT
                )
            finally:
                if poller is not None:
                    poller.close()
            written = source.written[ts]
            if n >= 4:
                results[name].append((seen - written) * 1000)
                results["MQTT"].append((pushed - written) * 1000)
    finally:
        modbus.close()
    return results


async def run(count: int, samples: int, seconds: float) -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    workdir = Path(tempfile.mkdtemp(prefix="hanport-bench-meters-"))
    redis = ComposeRedis(workdir / "redis")
    mosquitto = MosquittoServer(workdir / "mosquitto")
    mosquitto.extra_config = ["set_tcp_nodelay true"]
    redis.start()
    mosquitto.start()
    stack = Stack()
    ingests: list[Service] = []
    servers: list[asyncio.Server] = []
    try:
        stack = start_stack(
            workdir,
            "simulator",
            redis,
            mosquitto.url,
            extra=(f"HANPORT_MODBUS_UNITS={modbus_units(count)}",),
        )
        async with httpx.AsyncClient(timeout=5.0) as http:
            bench = Bench(stack, redis, mosquitto, http)
            await install_license(bench, workdir)
            t0 = time.monotonic()
            sources, ingests, servers = await start_meters(stack, count, workdir / "stack")
            print(f"{count} meters started in {time.monotonic() - t0:.0f} s")
            arrivals = Arrivals()
            ready = asyncio.Event()
            subscriber = asyncio.create_task(arrivals.subscribe(mosquitto.port, ready))
            await asyncio.wait_for(ready.wait(), TIMEOUT)
            await asyncio.sleep(5)  # every meter's stream found by every consumer
            results = await latency(bench, sources, arrivals, samples)

            pids = {name: s.proc.pid for name, s in stack.services.items() if s.proc}
            assert redis.proc and mosquitto.proc
            pids["redis-server"], pids["mosquitto"] = redis.proc.pid, mosquitto.proc.pid
            ingest_pids = [s.proc.pid for s in ingests if s.proc]
            cpu0 = {n: cpu_seconds(p) for n, p in pids.items()}
            ingest0 = sum(cpu_seconds(p) for p in ingest_pids)
            t0 = time.monotonic()
            peak = dict.fromkeys(pids, 0.0)
            while time.monotonic() - t0 < seconds:
                await asyncio.sleep(1.0)
                for name, pid in pids.items():
                    peak[name] = max(peak[name], rss_mb(pid))
            elapsed = time.monotonic() - t0
            cpu = {n: (cpu_seconds(p) - cpu0[n]) / elapsed for n, p in pids.items()}
            cpu["ingest x meters"] = (sum(cpu_seconds(p) for p in ingest_pids) - ingest0) / elapsed
            ingest_rss = max(rss_mb(p) for p in ingest_pids)
            subscriber.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await subscriber
    finally:
        for ingest in ingests:
            ingest.stop()
        for server in servers:
            server.close()
        stack.stop_all()
        mosquitto.stop()
        redis.stop()

    meters = count + 1  # and the stack's own simulated meter
    print(f"\n1. latency at 1 reading/s per meter, {meters} meters: telegram written -> visible")
    for name, values in results.items():
        p50, p99 = statistics.median(values), percentile(values, 99)
        print(f"  {name:18s} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {max(values):6.2f} ms"
              f"  (goal p99 < {GOAL_P99_MS:.0f} ms: {GOAL_P99_MS / p99:.2f}x)")  # fmt: skip
    print(f"\n2. CPU over {seconds:.0f} s ({meters} readings/s): cores busy, per meter")
    for name, used in sorted(cpu.items(), key=lambda kv: -kv[1]):
        print(f"  {name:18s} {used:5.3f} cores  {used / meters * 100:6.3f} % of a core per meter")
    total = sum(cpu.values())
    print(f"  {'all':18s} {total:5.3f} cores  {total / meters * 100:6.3f} % of a core per meter"
          f" -> about {(os.cpu_count() or 1) / total * meters:.0f} meters on "
          f"{os.cpu_count()} cores")  # fmt: skip
    print("\n3. resident memory, peak (MB)")
    for name, mb in peak.items():
        print(f"  {name:18s} {mb:6.1f}  (goal < {GOAL_RSS_MB:.0f} MB: {GOAL_RSS_MB / mb:.2f}x)")
    print(f"  {'largest ingest':18s} {ingest_rss:6.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.many_meters", description=__doc__)
    parser.add_argument("--meters", type=int, default=100)
    parser.add_argument("--samples", type=int, default=40, help="latency samples (1 s each)")
    parser.add_argument("--seconds", type=float, default=60.0, help="CPU and memory window")
    if argv is None and __name__ != "__main__":
        argv = []
    args = parser.parse_args(argv)
    asyncio.run(run(args.meters, args.samples, args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
