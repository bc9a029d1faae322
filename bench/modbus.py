"""Modbus TCP benchmark: hanport's server against a plain pymodbus server (the ceiling).

Consumes nothing but this machine; produces figures on stdout:
- reads/s and p99 latency with 1 and 10 concurrent clients, each reading a 60-register block
  (SDM630 input registers 0-59) as fast as it can, from hanport's Modbus service (following a
  real Redis stream) and from a plain pymodbus `ModbusTcpServer` with a static 60-register
  `SimDevice` block; the ratio hanport / plain (goal >= 0.9);
- p99 from XADD of a new reading to the new value being readable over Modbus (goal < 50 ms).

Each server runs in its own process with uvloop; the clients are raw asyncio sockets with a
prebuilt request, so the server, not the client library, is what is measured.

    python -m bench.modbus [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from bench.common import Granted, Load, cpu_seconds, free_port, wait_for_port

BLOCK = 60
CONFIGS = (1, 10)
ROUNDS = 6
LATENCY_SAMPLES = 200


# ---------------------------------------------------------------- the two servers


def _serve_hanport(port: int, redis_url: str) -> None:
    from services.modbus.service import run_service
    from services.modbus.settings import ModbusSettings
    from shared.stream import connect

    async def main() -> None:
        settings = ModbusSettings.model_validate(
            {
                "redis_url": redis_url,
                "serial": "HPBENCH0001",
                "modbus_host": "127.0.0.1",
                "modbus_port": port,
                "metrics_port": 0,
            }
        )
        redis = await connect(redis_url)
        await run_service(settings, redis, entitlements=Granted())

    uvloop.run(main())


def _serve_plain(port: int) -> None:
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    async def main() -> None:
        device = SimDevice(
            0, simdata=SimData(0, values=list(range(BLOCK)), datatype=DataType.REGISTERS)
        )
        server = ModbusTcpServer(device, address=("127.0.0.1", port))
        await server.serve_forever()

    uvloop.run(main())


# ---------------------------------------------------------------- the clients


def _request(tid: int, function: int, address: int, count: int) -> bytes:
    return struct.pack(">HHHBBHH", tid & 0xFFFF, 0, 6, 1, function, address, count)


async def _client(port: int, until: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = _request(1, 4, 0, BLOCK)
    size = 9 + 2 * BLOCK
    try:
        while (start := time.perf_counter()) < until:
            writer.write(request)
            answer = await reader.readexactly(size)
            latencies.append(time.perf_counter() - start)
            if answer[7] != 4:
                raise RuntimeError(f"exception answer {answer.hex()}")
    finally:
        writer.close()


async def _load(port: int, clients: int, seconds: float) -> list[float]:
    """Latencies (s) of every read `clients` concurrent clients made in `seconds`."""
    latencies: list[float] = []
    until = time.perf_counter() + seconds
    await asyncio.gather(*(_client(port, until, latencies) for _ in range(clients)))
    return latencies


def _measure(servers: dict[str, tuple[int, int]], clients: int, seconds: float) -> dict[str, Load]:
    """Alternate short runs against each server (ports, pids), so a busy spell on the machine
    hits both alike."""
    results = {name: Load() for name in servers}
    for _round in range(ROUNDS):
        for name, (port, pid) in servers.items():
            cpu = cpu_seconds(pid)
            latencies = uvloop.run(_load(port, clients, seconds / ROUNDS))
            results[name].add(latencies, seconds / ROUNDS, cpu_seconds(pid) - cpu)
    return results


async def _xadd_to_readable(port: int, redis_url: str, count: int = LATENCY_SAMPLES) -> list[float]:
    """ms from XADD of a reading with a new total power until a Modbus read returns it."""
    from shared.reading import Reading
    from shared.stream import ReadingStream, connect

    redis = await connect(redis_url)
    stream = ReadingStream(redis, "hanport:readings")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = _request(1, 4, 0x34, 2)
    samples: list[float] = []
    try:
        for n in range(count):
            watts = 1000.0 + n
            now = int(time.time() * 1000)
            reading = Reading(ts=now, received=now, p=[watts, None, None, None], ic=1.0)
            start = time.perf_counter()
            await stream.add(reading)
            while True:
                writer.write(request)
                answer = await reader.readexactly(13)
                if answer[7] == 4 and struct.unpack(">f", answer[9:13])[0] == watts:
                    break
            samples.append((time.perf_counter() - start) * 1000)
    finally:
        writer.close()
        await redis.aclose()
    return samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.modbus")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each load run")
    args = parser.parse_args(argv if argv is not None else [])

    from tests.servers import RedisServer

    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as folder:
        redis = RedisServer(Path(folder) / "redis")
        redis.start()
        ours, plain = free_port(), free_port()
        processes = [
            context.Process(target=_serve_hanport, args=(ours, redis.url), daemon=True),
            context.Process(target=_serve_plain, args=(plain,), daemon=True),
        ]
        try:
            for process in processes:
                process.start()
            pids = [process.pid or 0 for process in processes]
            wait_for_port(ours)
            wait_for_port(plain)
            # the first reading, so hanport's measurement registers answer
            uvloop.run(_xadd_to_readable(ours, redis.url, 1))
            print(
                f"Modbus: {BLOCK}-register reads, {args.seconds:g} s per configuration in "
                f"{ROUNDS} alternating rounds, uvloop servers, {os.cpu_count()} CPUs, load "
                f"average {os.getloadavg()[0]:.1f} (other work on the machine skews rates and "
                "tail latencies; CPU per read is robust to it)"
            )
            servers = {"hanport": (ours, pids[0]), "plain": (plain, pids[1])}
            for clients in CONFIGS:
                got = _measure(servers, clients, args.seconds)
                us, them = got["hanport"], got["plain"]
                print(
                    f"  {clients:>2} client(s): hanport {us.rate:7.0f} reads/s p99 "
                    f"{us.p99_ms:5.2f} ms {us.cpu_us:5.0f} us CPU/read | plain pymodbus "
                    f"{them.rate:7.0f} reads/s p99 {them.p99_ms:5.2f} ms {them.cpu_us:5.0f} us "
                    f"CPU/read | ratio reads/s {us.rate / them.rate:.2f}, CPU efficiency "
                    f"{them.cpu_us / us.cpu_us:.2f} (goal >= 0.9)"
                )
            samples = sorted(uvloop.run(_xadd_to_readable(ours, redis.url)))
            p50 = samples[len(samples) // 2]
            p99 = samples[int(len(samples) * 0.99)]
            print(
                f"  XADD -> new value readable over Modbus: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
                f"max {samples[-1]:.2f} ms over {len(samples)} readings (goal p99 < 50 ms)"
            )
        finally:
            for process in processes:
                process.terminate()
                process.join(10)
            redis.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
