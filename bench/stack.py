"""Whole-stack benchmark: latency, throughput and memory of every hanport service together.

Starts a real redis-server and mosquitto (tests/servers.py) and the five services exactly as
compose.yaml starts them (tests/stack/processes.py), with a real signed license installed through
the licensing API, then measures:

1. Latency at 1 reading/s: from the last byte of a P1 telegram written to the ingest service's
   pseudo-terminal to the reading being visible on REST `/meter` (polled), arriving at an MQTT
   subscriber (QoS 1) and readable over Modbus (native map's timestamp, polled). REST and Modbus
   are polled in turn, one per reading, so one poller's load does not slow the other's
   interface. Goal: p99 < 10 ms.
2. Throughput: the ingest reads a network P1 source (`tcp://`) that the bench paces; the
   offered rate doubles every 10 s, then rises in eighths between the last rate every service
   kept up with and the first it did not; the best is held for 60 s (7/8 of it when it does not
   last, up to four times). Each consumer's progress is read from its own /metrics (readings
   followed by REST and Modbus, messages the broker confirmed for MQTT). Goal: >= 5,000
   readings/s for 60 s. CPU seconds per process name the limit.
3. Memory: resident set of each service idle (after phase 1) and its peak under load (phase 2).
   Goal: < 80 MB per service.

    .venv/bin/python -m bench.stack [--readings 30] [--seconds 60]

Many meters on one box (100 at 1 Hz each): bench/many_meters.py.

It is costly: the whole stack on this machine's cores, shared with whatever else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import re
import statistics
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt
import h11
import httpx
from pymodbus.client import AsyncModbusTcpClient
from redis.asyncio import Redis

from bench.common import cpu_seconds
from services.ingest.codec.p1.parser import crc16
from services.ingest.sources.simulated_meter import MeterSimulator
from shared.reading import encode_reading
from tests.licensing_helpers import issue, make_keys
from tests.readings import simulated_readings
from tests.servers import MosquittoServer, RedisServer
from tests.stack.compose import resolved_config, service_specs
from tests.stack.processes import Stack

SERIAL = "HPBENCH0001"
ADMIN = "bench-admin-token"
TOPIC = f"hanport/{SERIAL}/data"
GOAL_P99_MS = 10.0
GOAL_RATE = 5000.0
GOAL_RSS_MB = 80.0
TIMEOUT = 5.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def metric(text: str, name: str, labels: str = "") -> float:
    """Sum of a metric's samples whose labels contain `labels` in Prometheus text output."""
    total = 0.0
    for match in re.finditer(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, flags=re.M):
        if labels in (match.group(1) or ""):
            total += float(match.group(2))
    return total


class ComposeRedis(RedisServer):
    """redis-server with compose.yaml's persistence: append-only, fsync once a second."""

    def command(self) -> list[str]:
        command = super().command()
        command[command.index("--appendfsync") + 1] = "everysec"
        return command


@dataclass
class Bench:
    stack: Stack
    redis: RedisServer
    mosquitto: MosquittoServer
    http: httpx.AsyncClient
    mqtt_arrivals: dict[int, float] = field(default_factory=dict)
    mqtt_arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def url(self, name: str, variable: str, path: str) -> str:
        return f"http://127.0.0.1:{self.stack[name].port(variable)}{path}"

    async def scrape(self, name: str) -> str:
        variable = {"rest": "HANPORT_REST_PORT", "licensing": "HANPORT_LICENSING_PORT"}.get(
            name, "HANPORT_METRICS_PORT"
        )
        return (await self.http.get(self.url(name, variable, "/metrics"))).text

    async def subscribe(self, ready: asyncio.Event) -> None:
        host, port = "127.0.0.1", self.mosquitto.port
        async with aiomqtt.Client(host, port, identifier="bench-subscriber") as client:
            await client.subscribe(TOPIC, qos=1)
            ready.set()
            async for message in client.messages:
                now = time.perf_counter()
                assert isinstance(message.payload, bytes)
                ts = json.loads(message.payload)["ts"]
                self.mqtt_arrivals.setdefault(ts, now)
                async with self.mqtt_arrived:
                    self.mqtt_arrived.notify_all()


def start_stack(
    workdir: Path, source: str, redis: RedisServer, mqtt_url: str, extra: tuple[str, ...] = ()
) -> Stack:
    _private, public = make_keys(workdir)
    env = (
        f"HANPORT_SERIAL={SERIAL}",
        f"HANPORT_MQTT_URL={mqtt_url}",
        f"HANPORT_ADMIN_TOKEN={ADMIN}",
        f"HANPORT_LICENSE_PUBLIC_KEYS={public}",
        f"HANPORT_SOURCE={source}",
        "HANPORT_LOG_LEVEL=WARNING",
        # a replay of a capture: the buffer and the stream must hold a minute at full speed
        "HANPORT_STREAM_MAXLEN=2000000",
        # the bridge paces a backlog after an outage (default 200/s); a replay is all backlog
        "HANPORT_MQTT_BACKLOG_RATE=1000000",
        *extra,
    )
    specs = service_specs(resolved_config(workdir, env))
    stack = Stack.from_specs(specs, redis.url, workdir / "stack")
    stack.start_all()
    return stack


async def install_license(bench: Bench, workdir: Path) -> None:
    private, _public = make_keys(workdir)
    license = issue(private, serial=SERIAL, features=["rest", "mqtt", "modbus"])
    response = await bench.http.put(
        bench.url("licensing", "HANPORT_LICENSING_PORT", "/license"),
        content=license,
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert response.status_code == 201, response.text


async def wait_for(check: Callable[[], Any], what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, OSError, AssertionError, KeyError):
            if await check():
                return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"waiting for {what}")


class Poller:
    """GET one path again and again over one keep-alive connection, with h11 doing HTTP/1.1.
    A latency poller must be a fine clock and light load: an httpx GET of /meter cost 1.12 ms
    of the bench's time against 0.08 ms for a bare request on one connection (p50, 500
    requests, this VM), which made REST look 2 to 3 ms slower than Modbus."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host, self.port, self.path = host, port, path
        self.http = h11.Connection(h11.CLIENT)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self) -> tuple[int, bytes]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        request = h11.Request(method="GET", target=self.path, headers=[("Host", self.host)])
        self.writer.write(self.http.send(request) + self.http.send(h11.EndOfMessage()))
        status, body = 0, bytearray()
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA:
                self.http.receive_data(await self.reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.http.start_next_cycle()
                return status, bytes(body)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def modbus_ts(client: AsyncModbusTcpClient) -> int | None:
    result = await client.read_holding_registers(1004, count=4, device_id=1)
    if result.isError():
        return None
    return int(struct.unpack(">Q", struct.pack(">4H", *result.registers))[0])


async def latency_phase(bench: Bench, master: int, readings: int) -> dict[str, list[float]]:
    """Write one telegram a second to the pty; time each interface seeing its reading.

    MQTT pushes, so every reading is timed there. REST and Modbus must be polled (every 0.5 ms),
    and a poller that fast is itself load on the two cores it measures: each reading polls one
    of them, in turn, so `readings` samples each take 2 x `readings` seconds."""
    simulator = MeterSimulator()
    modbus = AsyncModbusTcpClient(
        "127.0.0.1", port=bench.stack["modbus"].port("HANPORT_MODBUS_PORT"), timeout=3
    )
    meter = Poller("127.0.0.1", bench.stack["rest"].port("HANPORT_REST_PORT"), "/meter")

    async def rest_sees(ts: int) -> float:
        while True:
            status, body = await meter.get()
            if status == 200 and json.loads(body)["ts"] == ts:
                return time.perf_counter()
            await asyncio.sleep(0.0005)

    async def modbus_sees(ts: int) -> float:
        while True:
            if await modbus_ts(modbus) == ts:
                return time.perf_counter()
            await asyncio.sleep(0.0005)

    async def mqtt_sees(ts: int) -> float:
        async with bench.mqtt_arrived:
            await bench.mqtt_arrived.wait_for(lambda: ts in bench.mqtt_arrivals)
        return bench.mqtt_arrivals[ts]

    polled = {"REST /meter": rest_sees, "Modbus": modbus_sees}
    results: dict[str, list[float]] = {"REST /meter": [], "MQTT": [], "Modbus": []}
    await wait_for(modbus.connect, "the Modbus port to open (license)")
    try:
        for n in range(2 * readings + 4):  # the first four warm up every path
            name = list(polled)[n % 2]
            now_ms = int(time.time()) * 1000
            telegram = simulator.telegram(now_ms)
            expected = now_ms  # the meter clock is the telegram's timestamp
            await asyncio.sleep(max(0.0, (now_ms + 1000) / 1000 - time.time()))
            os.write(master, telegram)
            written = time.perf_counter()
            pushed, seen = await asyncio.wait_for(
                asyncio.gather(mqtt_sees(expected), polled[name](expected)), TIMEOUT
            )
            if n >= 4:
                results[name].append((seen - written) * 1000)
                results["MQTT"].append((pushed - written) * 1000)
    finally:
        modbus.close()
        meter.close()
    return results


class Telegrams:
    """Telegrams of the simulated meter, one meter-second apart (so every `ts` is unique), made
    from one template by rewriting the clock line and the CRC (fast enough for any rate)."""

    def __init__(self, start_s: int) -> None:
        self.simulator = MeterSimulator()
        template = self.simulator.telegram(start_s * 1000)
        stamp = re.search(rb"0-0:1\.0\.0\((\d{12})([SW])\)", template)
        assert stamp is not None
        self.head = template[: stamp.start(1)]
        self.tail = template[stamp.end(2) : template.rindex(b"!") + 1]
        self.tz = self.simulator.tz if not isinstance(self.simulator.tz, str) else None
        self.next_s = start_s

    def take(self, count: int) -> bytes:
        out = bytearray()
        for _ in range(count):
            local = datetime.fromtimestamp(self.next_s, self.tz)
            flag = b"S" if local.dst() else b"W"
            body = self.head + local.strftime("%y%m%d%H%M%S").encode() + flag + self.tail
            out += body + b"%04X\r\n" % crc16(body)
            self.next_s += 1
        return bytes(out)


@dataclass
class PacedSource:
    """A TCP server the ingest service connects to (`HANPORT_SOURCE=tcp://...`, as a network
    P1 dongle), writing telegrams at `rate` per second in 10 ms batches."""

    telegrams: Telegrams
    rate: float = 0.0
    sent: int = 0
    stopped: bool = False
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connected.set()
        tick, due = 0.01, time.monotonic()
        carry = 0.0
        # ends when the ingest disconnects, the bench stops it, or the loop shuts down
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while not self.stopped:
                due += tick
                carry += self.rate * tick
                count, carry = int(carry), carry - int(carry)
                if count:
                    writer.write(self.telegrams.take(count))
                    await writer.drain()
                    self.sent += count
                await asyncio.sleep(max(0.0, due - time.monotonic()))
        writer.close()


async def progress(bench: Bench) -> dict[str, float]:
    """Readings each service has handled so far, from its own /metrics."""
    texts = {n: await bench.scrape(n) for n in ("ingest", "rest", "mqtt", "modbus")}
    return {
        "ingest": metric(texts["ingest"], "hanport_ingest_published_total"),
        "rest": metric(texts["rest"], "hanport_stream_entries_read_total"),
        "modbus": metric(texts["modbus"], "hanport_stream_entries_read_total"),
        "mqtt": metric(texts["mqtt"], "hanport_mqtt_messages_published_total", "reading"),
    }


@dataclass
class Step:
    offered: float
    seconds: float
    rates: dict[str, float]
    lag: float  # readings the slowest consumer is behind what was offered, at the end

    @property
    def kept_up(self) -> bool:
        return min(self.rates.values()) >= 0.95 * self.offered and self.lag <= self.offered


async def offer(bench: Bench, source: PacedSource, rate: float, seconds: float) -> Step:
    """Offer `rate` readings/s for `seconds`; each service's rate over the window, after a
    one-second settling period, and the lag left at the end."""
    source.rate = rate
    await asyncio.sleep(1.0)
    before, sent0, t0 = await progress(bench), source.sent, time.monotonic()
    await asyncio.sleep(seconds)
    after, sent1, t1 = await progress(bench), source.sent, time.monotonic()
    rates = {k: (after[k] - before[k]) / (t1 - t0) for k in after}
    lag = max(source.sent - v for v in after.values()) if sent1 > sent0 else 0.0
    return Step(rate, t1 - t0, rates, lag)


async def throughput_phase(
    bench: Bench, source: PacedSource, seconds: float
) -> tuple[list[Step], Step | None, dict[str, float], dict[str, float]]:
    """Ramp the offered rate (10 s steps, doubling, then in eighths between the last rate kept
    up with and the first that was not) until a consumer falls behind, then hold
    the highest rate every consumer kept up with for `seconds`, measuring CPU and memory."""
    pids = {name: s.proc.pid for name, s in bench.stack.services.items() if s.proc}
    assert bench.redis.proc and bench.mosquitto.proc
    pids["redis-server"] = bench.redis.proc.pid
    pids["mosquitto"] = bench.mosquitto.proc.pid
    await asyncio.wait_for(source.connected.wait(), 30)
    steps: list[Step] = []

    async def tried(rate: float) -> Step:
        """Offer `rate` for 10 s, then let every consumer catch up before the next step."""
        step = await offer(bench, source, rate, 10.0)
        steps.append(step)
        source.rate = 0.0
        await drain(bench, source)
        return step

    rate = 250.0
    while rate <= 4 * GOAL_RATE:
        if not (await tried(rate)).kept_up:
            break
        rate *= 2
    good = [s for s in steps if s.kept_up]
    if good and not steps[-1].kept_up:
        # refine between the last rate kept up with and the one that fell behind, in eighths
        low, high = good[-1].offered, steps[-1].offered
        rate = low + (high - low) / 8
        while rate < high:
            step = await tried(rate)
            if not step.kept_up:
                break
            good.append(step)
            rate += (high - low) / 8
    if not good:
        return steps, None, {}, {}
    rate = good[-1].offered
    for _attempt in range(4):  # hold the best 10 s rate; if it does not last, 7/8 of it
        peak = dict.fromkeys(pids, 0.0)
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        t0 = time.monotonic()
        held_task = asyncio.create_task(offer(bench, source, rate, seconds))
        while not held_task.done():
            await asyncio.sleep(1.0)
            for name, pid in pids.items():
                peak[name] = max(peak[name], rss_mb(pid))
        held = await held_task
        cpu = {
            name: (cpu_seconds(pid) - cpu0[name]) / (time.monotonic() - t0)
            for name, pid in pids.items()
        }
        source.rate = 0.0
        if held.kept_up:
            break
        steps.append(held)
        await drain(bench, source)
        rate *= 0.875
    return steps, held, cpu, peak


async def drain(bench: Bench, source: PacedSource, within: float = 60.0) -> None:
    """Until every consumer has handled everything sent (the backlog of a step is cleared)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if min((await progress(bench)).values()) >= source.sent:
            return
        await asyncio.sleep(0.5)


async def publish_ceiling(redis_url: str, count: int = 3000) -> tuple[float, float]:
    """What one publisher gets from this Redis: readings/s when each reading costs two XADDs
    (reading + raw telegram) awaited one by one, as the ingest publishes now, and when the
    same XADDs go in pipelined batches of 100."""
    telegram = MeterSimulator().telegram(int(time.time()) * 1000)
    reading = simulated_readings(1)[0]
    Fields = dict[bytes | bytearray | memoryview | str | int | float, Any]
    payload: Fields = {b"reading": encode_reading(reading)}
    raw: Fields = {b"raw": telegram, b"result": b"ok"}
    redis = Redis.from_url(redis_url)
    try:
        t0 = time.perf_counter()
        for _ in range(count):
            await redis.xadd("bench:seq", payload, maxlen=100000, approximate=True)
            await redis.xadd("bench:seq:raw", raw, maxlen=1000, approximate=True)
        sequential = count / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(count // 100):
            pipe = redis.pipeline(transaction=False)
            for _ in range(100):
                pipe.xadd("bench:pipe", payload, maxlen=100000, approximate=True)
                pipe.xadd("bench:pipe:raw", raw, maxlen=1000, approximate=True)
            await pipe.execute()
        pipelined = count // 100 * 100 / (time.perf_counter() - t0)
        await redis.delete("bench:seq", "bench:seq:raw", "bench:pipe", "bench:pipe:raw")
    finally:
        await redis.aclose()
    return sequential, pipelined


async def run(readings: int, seconds: float) -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # its connect retries are noise here
    workdir = Path(tempfile.mkdtemp(prefix="hanport-bench-"))
    redis = ComposeRedis(workdir / "redis")
    mosquitto = MosquittoServer(workdir / "mosquitto")
    mosquitto.extra_config = ["set_tcp_nodelay true"]  # as deploy/mosquitto (broker profile)
    try:
        redis.start()
        mosquitto.start()
        await measure(workdir, redis, mosquitto, readings, seconds)
    finally:
        mosquitto.stop()
        redis.stop()


async def measure(
    workdir: Path, redis: RedisServer, mosquitto: MosquittoServer, readings: int, seconds: float
) -> None:
    master, slave = os.openpty()
    pty_path = os.ttyname(slave)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    stack = Stack()
    try:
        stack = start_stack(workdir / "latency", pty_path, redis, mosquitto.url)
        async with httpx.AsyncClient(timeout=5.0) as http:
            bench = Bench(stack, redis, mosquitto, http)
            await install_license(bench, workdir / "latency")
            ready = asyncio.Event()
            subscriber = asyncio.create_task(bench.subscribe(ready))
            await asyncio.wait_for(ready.wait(), TIMEOUT)
            latencies = await latency_phase(bench, master, readings)
            idle = {n: rss_mb(s.proc.pid) for n, s in stack.services.items() if s.proc}
            subscriber.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await subscriber
    finally:
        stack.stop_all()
        os.close(master)
        os.close(slave)

    print(
        f"\n1. latency, last telegram byte on the pty -> visible, 1 reading/s: {readings} samples"
        f" each for REST and Modbus (polled in turn), {2 * readings} for MQTT"
    )
    for name, values in latencies.items():
        p50, p99 = statistics.median(values), percentile(values, 99)
        print(
            f"  {name:12s} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {max(values):6.2f} ms"
            f"  (goal p99 < {GOAL_P99_MS:.0f} ms: {GOAL_P99_MS / p99:.2f}x)"
        )

    # throughput: a fresh stack reading a network P1 source that the bench paces
    source = PacedSource(Telegrams(int(time.time()) - 30 * 86400))
    server = await asyncio.start_server(source.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stack = Stack()
    try:
        stack = start_stack(workdir / "load", f"tcp://127.0.0.1:{port}", redis, mosquitto.url)
        async with httpx.AsyncClient(timeout=5.0) as http:
            bench = Bench(stack, redis, mosquitto, http)
            await install_license(bench, workdir / "load")
            steps, held, cpu, peak = await throughput_phase(bench, source, seconds)
        sequential, pipelined = await publish_ceiling(redis.url)
    finally:
        source.stopped = True
        stack.stop_all()
        server.close()
        await server.wait_closed()

    print("\n2. throughput: offered readings/s (10 s steps) -> handled by each service")
    for step in [*steps, *([held] if held else [])]:
        handled = "  ".join(f"{k} {v:6.0f}" for k, v in step.rates.items())
        verdict = "kept up" if step.kept_up else "fell behind"
        print(f"  {step.offered:6.0f}/s for {step.seconds:3.0f} s: {handled}  "
              f"lag {step.lag:6.0f}  {verdict}")  # fmt: skip
    sustained = held.offered if held and held.kept_up else 0.0
    print(f"  sustained for {seconds:.0f} s by every service: {sustained:.0f} readings/s "
          f"(goal {GOAL_RATE:.0f}/s: {sustained / GOAL_RATE:.2f}x)")  # fmt: skip
    print("  CPU per process while held: cores busy, and CPU time per reading")
    held_rate = min(held.rates.values()) if held else 0.0
    for name, used in sorted(cpu.items(), key=lambda kv: -kv[1]):
        per_reading = used / held_rate * 1000 if held_rate else float("nan")
        print(f"    {name:12s} {used:5.2f} cores  {per_reading:5.2f} ms/reading")
    total = sum(cpu.values())
    if held_rate:
        print(f"    {'all':12s} {total:5.2f} cores  {total / held_rate * 1000:5.2f} ms/reading"
              f" -> at most {(os.cpu_count() or 1) / total * held_rate:.0f} readings/s on "
              f"{os.cpu_count()} cores")  # fmt: skip
    print("  one publisher against this Redis (reading + raw telegram per reading):")
    print(f"    awaited one XADD at a time:                   {sequential:8.0f} readings/s")
    print(f"    pipelined, 100 readings per round trip:      {pipelined:8.0f} readings/s"
          f"  ({pipelined / sequential:.1f}x)")  # fmt: skip

    print("\n3. resident memory (MB): idle / peak under load")
    for name in idle:
        worst = max(idle[name], peak.get(name, 0.0))
        print(f"  {name:10s} {idle[name]:6.1f} / {peak.get(name, float('nan')):6.1f}"
              f"  (goal < {GOAL_RSS_MB:.0f} MB: {GOAL_RSS_MB / worst:.2f}x)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stack", description=__doc__)
    parser.add_argument(
        "--readings", type=int, default=30, help="latency samples per polled interface (2 s each)"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="throughput window")
    if argv is None and __name__ != "__main__":
        argv = []  # run by `python -m bench` (bench/__main__.py): the defaults
    args = parser.parse_args(argv)
    asyncio.run(run(args.readings, args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
