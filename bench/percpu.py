"""CPU per reading of the ingest and REST services at a high offered rate, read from /proc.

- ingest: a TCP meter (this process) sends N simulator telegrams as fast as the socket takes
  them to `hanport ingest` (`tcp://` source); the clock starts when the ingest has connected and
  stops when both streams hold all N entries. Also a paced run (N/2 telegrams, one per write
  every ~1 ms: ~800/s) where readings rarely queue up.
- rest: N readings XADDed (pipelined 200 per round trip) while `hanport rest` follows the stream,
  with no client connected, then with one SSE client on `/events` that must receive all N; and
  N/2 readings XADDed one by one every ~1 ms (most XREADs then return one reading).

Each service runs as a subprocess against its own redis-server (no persistence). Figures: CPU ms
per reading of the service process. `--baseline DIR` runs the same services from another
checkout (e.g. `git archive <commit> | tar -x -C DIR`) in the same run and prints the ratio.

Run: `.venv/bin/python -m bench.percpu [--baseline DIR] [--readings N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from redis.asyncio import Redis

from bench.common import cpu_seconds, free_port, wait_for_port
from shared.reading import encode_reading

ROOT = Path(__file__).resolve().parents[1]
STREAM = "hanport:readings"
RAW = "hanport:raw"
TIMEOUT = 120.0


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


@contextlib.contextmanager
def service(tree: Path, name: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    full = {**os.environ, "PYTHONPATH": str(tree), **env}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            cwd=tree,
            env=full,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.returncode not in (0, -15):
                log.seek(0)
                print(log.read().decode(errors="replace")[-3000:], file=sys.stderr)


async def wait_until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    try:
        async with asyncio.timeout(TIMEOUT):
            while not await check():  # noqa: ASYNC110 - polls another process
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise TimeoutError(f"{what}: not done after {TIMEOUT:g} s") from None


# --- ingest ---------------------------------------------------------------------------------------
def telegrams(count: int) -> list[bytes]:
    from services.ingest.sources.simulated_meter import MeterSimulator

    return MeterSimulator().telegrams(count, int(time.time() * 1000) - count * 1000)


async def ingest_run(tree: Path, frames: list[bytes], paced: bool) -> float:
    """CPU ms per reading of one ingest process reading `frames` over TCP."""
    connected: asyncio.Future[asyncio.StreamWriter] = asyncio.get_running_loop().create_future()

    async def meter(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not connected.done():
            connected.set_result(writer)

    server = await asyncio.start_server(meter, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with redis_server() as url:
        redis = Redis.from_url(url)
        env = {
            "HANPORT_SOURCE": f"tcp://127.0.0.1:{port}",
            "HANPORT_REDIS_URL": url,
            "HANPORT_METRICS_PORT": str(free_port()),
            "HANPORT_STREAM_MAXLEN": str(len(frames) * 2),
            "HANPORT_RAW_MAXLEN": str(len(frames) * 2),
            "HANPORT_METER_PROTOCOL": "p1",
        }
        with service(tree, "ingest", env) as proc:
            writer = await asyncio.wait_for(connected, 30)

            async def published() -> bool:
                return int(await redis.xlen(RAW)) >= len(frames)

            # Settle after start-up (imports, connecting to Redis) before the clock starts.
            await asyncio.sleep(1.0)
            before = cpu_seconds(proc.pid)
            if paced:  # one telegram per write, as a meter (or ser2net) sends them
                for frame in frames:
                    writer.write(frame)
                    await writer.drain()
                    await asyncio.sleep(0.001)
            else:
                writer.write(b"".join(frames))
                await writer.drain()
            await wait_until("ingest publishing every telegram", published)
            used = cpu_seconds(proc.pid) - before
            assert int(await redis.xlen(STREAM)) == len(frames), "readings missing"
            writer.close()
        await redis.aclose()
    server.close()
    return used * 1000 / len(frames)


# --- rest -----------------------------------------------------------------------------------------
def entries_read(port: int) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    match = re.search(r"^hanport_stream_entries_read_total ([\d.e+]+)$", text, re.M)
    return int(float(match.group(1))) if match else 0


async def sse_reader(port: int, count: int, got: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /events HTTP/1.1\r\nHost: bench\r\n\r\n")
    await writer.drain()
    while got[0] < count:
        chunk = await reader.read(1 << 20)
        if not chunk:
            break
        got[0] += chunk.count(b"\nevent: HAN_METER_MESSAGE")
    writer.close()


async def rest_run(tree: Path, count: int, sse: bool, paced: bool = False) -> float:
    from tests.readings import simulated_readings

    base = simulated_readings(1)[0]
    now = int(time.time() * 1000)
    import msgspec

    bodies = [
        encode_reading(msgspec.structs.replace(base, ts=now + n, received=now + n))
        for n in range(count)
    ]
    with redis_server() as url:
        redis = Redis.from_url(url)
        await redis.xadd(STREAM, {b"reading": bodies[0]}, id=f"{now - 1}-0")
        port = free_port()
        env = {
            "HANPORT_REDIS_URL": url,
            "HANPORT_REST_PORT": str(port),
            "HANPORT_REST_HOST": "127.0.0.1",
            "HANPORT_REST_STALE_AFTER": "100000",
            "HANPORT_REST_CLIENT_QUEUE": str(count + 10),
        }
        with service(tree, "rest", env) as proc:
            await asyncio.to_thread(wait_for_port, port, 30)
            got = [0]
            client = asyncio.create_task(sse_reader(port, count + 1, got)) if sse else None
            await asyncio.sleep(1.0)
            start = await asyncio.to_thread(entries_read, port)
            before = cpu_seconds(proc.pid)
            step = 1 if paced else 200
            for first in range(0, count, step):
                pipe = redis.pipeline(transaction=False)
                for n in range(first, min(first + step, count)):
                    pipe.xadd(STREAM, {b"reading": bodies[n]}, id=f"{now + n}-0")
                await pipe.execute()
                if paced:
                    await asyncio.sleep(0.001)

            async def followed() -> bool:
                seen = await asyncio.to_thread(entries_read, port)
                return seen - start >= count and (not sse or got[0] >= count + 1)

            await wait_until("rest following every reading", followed)
            used = cpu_seconds(proc.pid) - before
            if client is not None:
                client.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await client
        await redis.aclose()
    return used * 1000 / count


# --- main -----------------------------------------------------------------------------------------
async def run(trees: dict[str, Path], readings: int, only: str) -> None:
    frames = telegrams(readings)
    rows: list[tuple[str, dict[str, float]]] = []
    cases = [
        ("ingest, burst (tcp, all at once)", lambda t: ingest_run(t, frames, paced=False)),
        ("ingest, paced (~800/s)", lambda t: ingest_run(t, frames[: readings // 2], paced=True)),
        ("rest, no client", lambda t: rest_run(t, readings, sse=False)),
        ("rest, 1 SSE client", lambda t: rest_run(t, readings, sse=True)),
        ("rest, paced (~800/s), no client", lambda t: rest_run(t, readings // 2, False, True)),
        ("rest, paced (~800/s), 1 SSE client", lambda t: rest_run(t, readings // 2, True, True)),
    ]
    for label, case in cases:
        if only not in label:
            continue
        figures = {name: await case(tree) for name, tree in trees.items()}
        rows.append((label, figures))
        print(
            f"{label:36s} "
            + "  ".join(f"{name}: {ms:.3f} ms/reading" for name, ms in figures.items())
            + (
                f"  ratio {figures['baseline'] / figures['current']:.2f}x"
                if "baseline" in figures
                else ""
            ),
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.percpu")
    parser.add_argument("--baseline", type=Path, help="another checkout to compare against")
    parser.add_argument("--readings", type=int, default=10_000)
    parser.add_argument("--only", default="", help="run the cases whose label holds this")
    args = parser.parse_args([] if argv is None and __name__ != "__main__" else argv)
    if shutil.which("redis-server") is None:
        print("percpu: redis-server is not installed")
        return 1
    trees = {"current": ROOT}
    if args.baseline:
        trees = {"baseline": args.baseline.resolve(), "current": ROOT}
    print(f"CPU per reading, {args.readings} readings per run (lower is better)")
    asyncio.run(run(trees, args.readings, args.only))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
