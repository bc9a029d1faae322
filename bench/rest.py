"""REST benchmark: `GET /meter` through hanport's REST service against a bare ASGI app that
returns the same bytes on the same uvicorn settings (uvloop, httptools, one worker, no access
log): the ceiling on this machine. Load: `wrk` (Debian), 32 connections, 2 threads. Prints
requests/s, p50/p99 latency and the ratio (goal >= 0.7).

Then the push path: 100 SSE clients on `/events`, readings XADDed to the stream; prints p50/p99
of the time from XADD to the event arriving at each client.

Run: `.venv/bin/python -m bench.rest` (needs redis-server and wrk).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from bench.common import free_port, wait_for_port
from shared.reading import encode_cozify, encode_reading

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = 32
DURATION_S = 8
ROUNDS = 3
SSE_CLIENTS = 100
SSE_READINGS = 40
# The same uvicorn settings `hanport rest` uses (services/rest/__main__.py).
UVICORN = [
    "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--no-server-header",
    "--proxy-headers", "--log-level", "warning",
]  # fmt: skip

# --- the ceiling: a bare ASGI app answering the same bytes ------------------------------------
_BODY = (
    Path(os.environ["HANPORT_BENCH_BODY"]).read_bytes()
    if "HANPORT_BENCH_BODY" in os.environ
    else b"{}"
)
_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_BODY)).encode()),
        (b"cache-control", b"no-store"),
    ],
}
_BODY_MESSAGE = {"type": "http.response.body", "body": _BODY}


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": message["type"] + ".complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send(_START)
    await send(_BODY_MESSAGE)


# --- helpers ------------------------------------------------------------------------------------


def wrk(url: str) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=DURATION_S + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        raise RuntimeError(f"{url} answered {non2xx.group(1)} errors:\n{out}")

    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {"rps": rps, "p50": pct("50"), "p99": pct("99")}


def reading_now() -> Any:
    from tests.readings import simulated_readings

    now = int(time.time() * 1000)
    return msgspec.structs.replace(simulated_readings(1)[0], ts=now, received=now)


# --- SSE latency ----------------------------------------------------------------------------------
async def sse_client(
    port: int,
    arrivals: dict[str, list[float]],
    ready: asyncio.Event,
    done: asyncio.Event,
    counter: list[int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
    await writer.drain()
    buffer = b""
    first = True
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            now = time.perf_counter()
            if first:
                first = False
                counter[0] += 1
                if counter[0] == SSE_CLIENTS:
                    ready.set()
            buffer += chunk
            *events, buffer = buffer.split(b"\n\n")
            for event in events:
                for line in event.split(b"\n"):
                    if line.startswith(b"id: "):
                        arrivals.setdefault(line[4:].decode(), []).append(now)
                        counter[1] += 1
                        if counter[2] and counter[1] >= counter[2]:
                            done.set()
    finally:
        writer.close()


async def sse_latency(port: int, redis_url: str) -> dict[str, float]:
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    arrivals: dict[str, list[float]] = {}
    ready = asyncio.Event()
    done = asyncio.Event()
    counter = [0, 0, 0]  # clients connected, events received, events expected
    clients = [
        asyncio.create_task(sse_client(port, arrivals, ready, done, counter))
        for _ in range(SSE_CLIENTS)
    ]
    await asyncio.wait_for(ready.wait(), 30)
    await asyncio.sleep(0.5)
    sent: dict[str, float] = {}
    counter[1] = 0  # (each client first got the newest reading already there: not counted)
    counter[2] = SSE_READINGS * SSE_CLIENTS
    for _ in range(SSE_READINGS):
        reading = encode_reading(reading_now())
        start = time.perf_counter()
        entry = await redis.xadd("hanport:readings", {"reading": reading})
        sent[entry.decode() if isinstance(entry, bytes) else entry] = start
        await asyncio.sleep(0.1)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), 10)
    for task in clients:
        task.cancel()
    await asyncio.gather(*clients, return_exceptions=True)
    await redis.aclose()
    samples = sorted((t - sent[i]) * 1000 for i in sent for t in arrivals.get(i, []))
    missing = len(sent) * SSE_CLIENTS - len(samples)
    return {
        "p50": statistics.median(samples),
        "p99": samples[int(len(samples) * 0.99) - 1],
        "max": samples[-1],
        "events": len(samples),
        "missing": missing,
    }


# --- main -----------------------------------------------------------------------------------------
def main() -> None:
    if shutil.which("wrk") is None or shutil.which("redis-server") is None:
        print("rest: needs wrk and redis-server; skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        redis_port = free_port()
        redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--save", "", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )
        processes = [redis]
        try:
            wait_for_port(redis_port)
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            reading = reading_now()
            subprocess.run(
                [
                    "redis-cli",
                    "-p",
                    str(redis_port),
                    "XADD",
                    "hanport:readings",
                    "*",
                    "reading",
                    encode_reading(reading).decode(),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            body = Path(tmp) / "body.json"
            body.write_bytes(encode_cozify(reading))
            env = {
                **os.environ,
                "HANPORT_REDIS_URL": redis_url,
                "HANPORT_REST_STALE_AFTER": "3600",
                "HANPORT_LOG_LEVEL": "WARNING",
                "HANPORT_BENCH_BODY": str(body),
            }
            rest_port, bare_port = free_port(), free_port()
            rest = subprocess.Popen(
                [sys.executable, "-m", "services.rest"],
                cwd=ROOT,
                env={**env, "HANPORT_REST_PORT": str(rest_port), "HANPORT_REST_HOST": "127.0.0.1"},
            )
            bare = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bench.rest:bare_app",
                    "--port",
                    str(bare_port),
                    *UVICORN,
                ],
                cwd=ROOT,
                env=env,
            )
            processes += [rest, bare]
            wait_for_port(rest_port)
            wait_for_port(bare_port)
            import urllib.request

            a = urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/meter", timeout=5).read()
            b = urllib.request.urlopen(f"http://127.0.0.1:{bare_port}/meter", timeout=5).read()
            assert a == b, "the bare app must answer the same bytes"
            results: dict[str, list[dict[str, float]]] = {"hanport": [], "bare": []}
            for _ in range(ROUNDS):
                results["bare"].append(wrk(f"http://127.0.0.1:{bare_port}/meter"))
                results["hanport"].append(wrk(f"http://127.0.0.1:{rest_port}/meter"))
            # the median round of each (rounds alternate, so background load hits both alike)
            best = {k: sorted(v, key=lambda r: r["rps"])[len(v) // 2] for k, v in results.items()}
            ratio = best["hanport"]["rps"] / best["bare"]["rps"]
            print(
                f"rest GET /meter, wrk {CONNECTIONS} connections, {DURATION_S} s x {ROUNDS} alternating rounds (median; load average {os.getloadavg()[0]:.1f}):"
            )
            for name, r in best.items():
                print(
                    f"  {name:8} {r['rps']:9.0f} req/s   p50 {r['p50']:.2f} ms   p99 {r['p99']:.2f} ms"
                )
            print(f"  ratio hanport/bare = {ratio:.2f} (goal >= 0.7)")
            bare.terminate()
            sse = asyncio.run(sse_latency(rest_port, redis_url))
            print(
                f"rest SSE: XADD -> event at {SSE_CLIENTS} clients, {SSE_READINGS} readings: "
                f"p50 {sse['p50']:.2f} ms  p99 {sse['p99']:.2f} ms  max {sse['max']:.2f} ms  "
                f"({sse['events']:.0f} events, {sse['missing']:.0f} missing)"
            )
        finally:
            for process in reversed(processes):
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        process.kill()


if __name__ == "__main__":
    main()
