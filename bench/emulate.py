"""Emulation benchmark: the Shelly Pro 3EM over UDP JSON-RPC and the HomeWizard P1 meter over
HTTP, against bare peers answering a fixed body (the ceiling: a plain asyncio UDP server and a
plain aiohttp app).

Consumes nothing but this machine; produces figures on stdout:
- requests/s and p99 with 1 and 10 concurrent clients per personality, hanport / bare ratio;
- p50/p99 from XADD of a reading with a new total power until that value is readable over
  Shelly UDP RPC and over HomeWizard HTTP (batteries poll at 1-5 Hz; goal p99 < 10 ms).

Each server runs in its own process with uvloop; the clients are raw asyncio sockets with
prebuilt requests, so the servers, not a client library, are what is measured.

    python -m bench.emulate [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from bench.common import Granted, Load, cpu_seconds, free_port, wait_for_port

CONFIGS = (1, 10)
ROUNDS = 4
LATENCY_SAMPLES = 300
# between two readings of the latency run: above a meter's fastest rate (10 readings/s is 100 ms;
# 25 ms keeps the run short), so the follower's pacing (at most one XREAD per 10 ms) is as idle
# as in use
READING_GAP_S = 0.025
# between two polls for the new value: a busy loop would take the CPU the servers need on a
# small machine (the figure includes up to this much of waiting)
POLL_GAP_S = 0.0005
UDP_REQUEST = b'{"id":1,"src":"bench","method":"EM.GetStatus","params":{"id":0}}'
HTTP_REQUEST = b"GET /api/v1/data HTTP/1.1\r\nHost: bench\r\n\r\n"


# ---------------------------------------------------------------- the servers


def _serve_hanport(http: int, udp: int, redis_url: str) -> None:
    from services.emulate.service import run_service
    from services.emulate.settings import EmulateSettings
    from shared.stream import connect

    async def main() -> None:
        settings = EmulateSettings.model_validate(
            {
                "redis_url": redis_url,
                "serial": "HPBENCH0001",
                "emulate_host": "127.0.0.1",
                "shelly_http_port": free_port(),
                "shelly_udp_ports": str(udp),
                "homewizard_port": http,
                "emulate_mdns": False,
                "emulate_stale_after": 3600,  # the load runs serve one reading for minutes
                "metrics_port": 0,
            }
        )
        redis = await connect(redis_url)
        await run_service(settings, redis, entitlements=Granted())

    uvloop.run(main())


def _serve_bare(http: int, udp: int) -> None:
    from aiohttp import web

    body = json.dumps({"active_power_w": 1000.0, "total_power_import_kwh": 1.0}).encode()
    answer = json.dumps({"id": 1, "src": "bare", "result": {"total_act_power": 1000.0}}).encode()

    class Udp(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            json.loads(data)
            self.transport.sendto(answer, addr)

    async def data(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/api/v1/data", data)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", http).start()
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", udp))
        await asyncio.Event().wait()

    uvloop.run(main())


# ---------------------------------------------------------------- the clients


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answers: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.answers.put_nowait(data)


async def _udp_session(port: int) -> tuple[asyncio.DatagramTransport, UdpClient]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        UdpClient, remote_addr=("127.0.0.1", port)
    )
    return transport, protocol


async def _udp_ask(transport: asyncio.DatagramTransport, client: UdpClient) -> bytes:
    transport.sendto(UDP_REQUEST)
    return await asyncio.wait_for(client.answers.get(), 2)


async def _http_ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(HTTP_REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"answer {head[:40]!r}")
    return body


async def _load(kind: str, port: int, clients: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    until = time.perf_counter() + seconds

    async def one() -> None:
        if kind == "udp":
            transport, client = await _udp_session(port)
            try:
                while (start := time.perf_counter()) < until:
                    await _udp_ask(transport, client)
                    latencies.append(time.perf_counter() - start)
            finally:
                transport.close()
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                while (start := time.perf_counter()) < until:
                    await _http_ask(reader, writer)
                    latencies.append(time.perf_counter() - start)
            finally:
                writer.close()

    await asyncio.gather(*(one() for _ in range(clients)))
    return latencies


def _measure(
    kind: str, servers: dict[str, tuple[int, int]], clients: int, seconds: float
) -> dict[str, Load]:
    """Alternate short runs against each server (port, pid), so a busy spell hits both alike."""
    results = {name: Load() for name in servers}
    for _round in range(ROUNDS):
        for name, (port, pid) in servers.items():
            cpu = cpu_seconds(pid)
            latencies = uvloop.run(_load(kind, port, clients, seconds / ROUNDS))
            results[name].add(latencies, seconds / ROUNDS, cpu_seconds(pid) - cpu)
    return results


async def _xadd_to_readable(
    http: int, udp: int, redis_url: str, count: int = LATENCY_SAMPLES
) -> dict[str, list[float]]:
    """ms from XADD of a reading with a new total power until UDP RPC / HTTP return it."""
    from shared.reading import Reading
    from shared.stream import ReadingStream, connect

    redis = await connect(redis_url)
    stream = ReadingStream(redis, "hanport:readings")
    transport, client = await _udp_session(udp)
    reader, writer = await asyncio.open_connection("127.0.0.1", http)
    samples: dict[str, list[float]] = {"udp": [], "http": [], "xadd": []}
    try:
        for n in range(count):
            kind = "udp" if n % 2 else "http"
            watts = 1000.0 + n
            now = int(time.time() * 1000)
            reading = Reading(
                ts=now, received=now, p=[watts, watts / 3, watts / 3, watts / 3], ic=1.0, ec=0.5
            )
            start = time.perf_counter()
            await stream.add(reading)
            samples["xadd"].append((time.perf_counter() - start) * 1000)
            while True:
                if kind == "udp":
                    answer = json.loads(await _udp_ask(transport, client))
                    if answer.get("result", {}).get("total_act_power") == watts:
                        break
                else:
                    answer = json.loads(await _http_ask(reader, writer))
                    if answer.get("active_power_w") == watts:
                        break
                await asyncio.sleep(POLL_GAP_S)
            samples[kind].append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(READING_GAP_S)
    finally:
        transport.close()
        writer.close()
        await redis.aclose()
    return samples


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50, p99 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]
    return f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {ordered[-1]:.2f} ms ({len(ordered)})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.emulate")
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each load run")
    args = parser.parse_args(argv if argv is not None else [])

    from tests.servers import RedisServer

    class ComposeRedis(RedisServer):
        """redis-server persisting as compose.yaml's does (appendfsync everysec): the tests'
        `always` puts a disk flush into every XADD, which is not what a box runs."""

        def command(self) -> list[str]:
            command = super().command()
            command[command.index("--appendfsync") + 1] = "everysec"
            return command

    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as folder:
        redis = ComposeRedis(Path(folder) / "redis")
        redis.start()
        ours_http, ours_udp, bare_http, bare_udp = (free_port() for _ in range(4))
        processes = [
            context.Process(
                target=_serve_hanport, args=(ours_http, ours_udp, redis.url), daemon=True
            ),
            context.Process(target=_serve_bare, args=(bare_http, bare_udp), daemon=True),
        ]
        try:
            for process in processes:
                process.start()
            pids = [process.pid or 0 for process in processes]
            wait_for_port(ours_http)
            wait_for_port(bare_http)
            uvloop.run(_xadd_to_readable(ours_http, ours_udp, redis.url, 2))  # first reading
            print(
                f"Emulation: {args.seconds:g} s per configuration in {ROUNDS} alternating "
                f"rounds, uvloop servers, {os.cpu_count()} CPUs, load average "
                f"{os.getloadavg()[0]:.1f}"
            )
            for kind, what, ours, bare in (
                ("udp", "Shelly UDP EM.GetStatus", ours_udp, bare_udp),
                ("http", "HomeWizard GET /api/v1/data", ours_http, bare_http),
            ):
                servers = {"hanport": (ours, pids[0]), "bare": (bare, pids[1])}
                for clients in CONFIGS:
                    got = _measure(kind, servers, clients, args.seconds)
                    us, them = got["hanport"], got["bare"]
                    print(
                        f"  {what}, {clients:>2} client(s): hanport {us.rate:6.0f}/s p99 "
                        f"{us.p99_ms:5.2f} ms {us.cpu_us:4.0f} us CPU | bare {them.rate:6.0f}/s "
                        f"p99 {them.p99_ms:5.2f} ms {them.cpu_us:4.0f} us CPU | ratio "
                        f"{us.rate / them.rate:.2f}"
                    )
            samples = uvloop.run(_xadd_to_readable(ours_http, ours_udp, redis.url))
            print(f"  XADD -> readable over Shelly UDP RPC:   {_percentiles(samples['udp'])}")
            print(f"  XADD -> readable over HomeWizard HTTP:  {_percentiles(samples['http'])}")
            print(
                f"  (of which the XADD itself, appendfsync everysec as in compose.yaml: {_percentiles(samples['xadd'])})"
            )
            print("  (goal p99 < 10 ms)")
        finally:
            for process in processes:
                process.terminate()
                process.join(10)
            redis.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
