"""MQTT bridge benchmark: hanport's bridge against a bare aiomqtt publish loop (the ceiling).

Consumes nothing but this machine (a redis-server and a mosquitto it starts in a temp folder);
produces figures on stdout:
- latency from XADD of a reading to a QoS 1 subscriber receiving its message, p50/p99, at
  1 reading/s (goal p99 < 10 ms) and at 80 % of the bridge's highest sustained rate;
- CPU per reading at a steady 500 readings/s (each reading XADDed on its own, as the ingest
  does; the regime of the whole-stack benchmark), next to a bare aiomqtt loop publishing the
  same payloads at the same pace;
- the highest sustained readings/s through the bridge at QoS 1 (XADD as fast as Redis takes
  them; measured at the subscriber) next to a bare aiomqtt QoS 1 publish loop of the same
  payloads to the same broker, with the same number of messages in flight; the ratio
  bridge / bare (goal >= 0.5).

The bridge, the bare publisher and the subscriber each run in their own process with uvloop;
times are CLOCK_MONOTONIC, shared by all processes on Linux. The bridge is given a granted
license (this measures delivery, not licensing). mosquitto runs with `set_tcp_nodelay true`.

    python -m bench.mqtt [--slow-samples 40] [--count 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec
import uvloop

from bench.common import Granted, cpu_seconds
from shared.reading import Reading, encode_cozify

STREAM = "hanport:readings"
SERIAL = "HPBENCH"
TOPIC = f"hanport/{SERIAL}/data"
INFLIGHT = 100
T0 = 1_764_000_000_000


class _Ts(msgspec.Struct):
    ts: int


_ts = msgspec.json.Decoder(_Ts)


def reading(n: int) -> Reading:
    return Reading(
        ts=T0 + n,
        received=T0 + n,
        ic=12345.678 + n / 1000,
        ec=10.5,
        p=[1500.0, 500.0, 500.0, 500.0],
        pi=[1500.0, 500.0, 500.0, 500.0],
        pe=[0.0, 0.0, 0.0, 0.0],
        u=[230.1, 231.2, 229.9],
        i=[2.2, 2.1, 2.3],
    )


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


# ---------------------------------------------------------------- the processes


def _bridge(redis_url: str, mqtt_url: str) -> None:
    from services.mqtt.bridge import Bridge
    from services.mqtt.settings import MqttSettings
    from shared.stream import connect

    async def main() -> None:
        settings = MqttSettings.model_validate(
            {
                "redis_url": redis_url,
                "mqtt_url": mqtt_url,
                "serial": SERIAL,
                "stream": STREAM,
                "mqtt_consumer": "bench",
                "mqtt_discovery": False,
                "mqtt_inflight": INFLIGHT,
                "metrics_port": 0,
            }
        )
        await Bridge(settings, await connect(redis_url), entitlements=Granted()).run()

    uvloop.run(main())


def _bare(port: int, count: int, start_at: Connection, rate: float | None = None) -> None:
    """Publish `count` readings' JSON at QoS 1 as fast as aiomqtt allows, INFLIGHT at a time
    (or, given a `rate`, each at its time, as readings arrive)."""
    import socket

    import aiomqtt

    payloads = [encode_cozify(reading(n)) for n in range(count)]

    async def main() -> None:
        async with aiomqtt.Client(
            "127.0.0.1",
            port,
            max_inflight_messages=INFLIGHT,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        ) as client:
            client.pending_calls_threshold = 100_000
            start_at.send(now_ns())
            start = time.monotonic()
            for n in range(count if rate else 0):
                delay = start + n / rate - time.monotonic() if rate else 0
                if delay > 0:
                    await asyncio.sleep(delay)
                await client.publish(TOPIC, payloads[n], qos=1)
            for first in range(0, 0 if rate else count, INFLIGHT):
                await asyncio.gather(
                    *(
                        client.publish(TOPIC, payload, qos=1)
                        for payload in payloads[first : first + INFLIGHT]
                    )
                )
            start_at.send(now_ns())

    uvloop.run(main())


def _subscriber(port: int, count: int, results: Connection) -> None:
    """Receive `count` messages at QoS 1; send back [(ts, receive time ns)]."""
    import socket

    import aiomqtt

    async def main() -> None:
        arrivals: list[tuple[int, int]] = []
        async with aiomqtt.Client(
            "127.0.0.1",
            port,
            max_queued_incoming_messages=0,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        ) as client:
            await client.subscribe(TOPIC, qos=1)
            results.send("ready")
            async for message in client.messages:
                arrivals.append((_ts.decode(message.payload).ts, now_ns()))
                if len(arrivals) >= count:
                    break
        results.send(arrivals)

    uvloop.run(main())


class Subscriber:
    def __init__(self, ctx: Any, port: int, count: int) -> None:
        self.pipe, child = ctx.Pipe()
        self.process = ctx.Process(target=_subscriber, args=(port, count, child), daemon=True)
        self.process.start()
        if not self.pipe.poll(30) or self.pipe.recv() != "ready":
            raise RuntimeError("the benchmark subscriber did not start")

    def arrivals(self, timeout: float) -> dict[int, int]:
        if not self.pipe.poll(timeout):
            self.process.kill()
            raise RuntimeError("the subscriber did not receive every message in time")
        got: list[tuple[int, int]] = self.pipe.recv()
        self.process.join(10)
        return dict(got)


# ---------------------------------------------------------------- the measurements


def _percentiles(latencies_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies_ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


async def _paced(redis_url: str, first: int, count: int, rate: float) -> dict[int, int]:
    """XADD `count` readings at `rate` per second; their send times by ts."""
    from shared.stream import ReadingStream, connect

    stream = ReadingStream(await connect(redis_url), STREAM)
    sent: dict[int, int] = {}
    start = time.monotonic()
    for k in range(count):
        delay = start + k / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        one = reading(first + k)
        sent[one.ts] = now_ns()
        await stream.add(one)
    await stream.redis.aclose()
    return sent


async def _flood(redis_url: str, first: int, count: int) -> int:
    """XADD `count` readings as fast as Redis takes them (pipelined); the start time."""
    from shared.reading import encode_reading
    from shared.stream import READING_FIELD, connect

    redis = await connect(redis_url)
    encoded = [encode_reading(reading(first + k)) for k in range(count)]
    start = now_ns()
    for chunk in range(0, count, 500):
        async with redis.pipeline(transaction=False) as pipe:
            for data in encoded[chunk : chunk + 500]:
                pipe.xadd(STREAM, {READING_FIELD: data})
            await pipe.execute()
    await redis.aclose()
    return start


def _latency(ctx: Any, port: int, redis_url: str, first: int, count: int, rate: float) -> str:
    sub = Subscriber(ctx, port, count)
    sent = uvloop.run(_paced(redis_url, first, count, rate))
    got = sub.arrivals(60 + count / rate)
    latencies = [(got[ts] - sent[ts]) / 1e6 for ts in sent]
    p50, p99 = _percentiles(latencies)
    return f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(latencies):.2f} ms ({count} readings)"


async def _all_acked(redis_url: str) -> int:
    """Wait until the bridge's group has confirmed every entry; the time it saw that."""
    from shared.stream import connect

    redis = await connect(redis_url)
    while True:
        groups = await redis.xinfo_groups(STREAM)
        pending = await redis.xpending(STREAM, "mqtt")
        if groups and not groups[0]["lag"] and not pending["pending"]:
            await redis.aclose()
            return now_ns()
        await asyncio.sleep(0.005)


def _bridge_rate(
    ctx: Any, port: int, redis_url: str, first: int, count: int, sub: bool, pid: int | None
) -> tuple[float, float]:
    """(readings/s, CPU µs per reading) of the bridge: until a subscriber got all, or until all
    were acknowledged."""
    assert pid is not None, "the bridge process has started"
    subscriber = Subscriber(ctx, port, count) if sub else None
    cpu = cpu_seconds(pid)
    start = uvloop.run(_flood(redis_url, first, count))
    if subscriber is not None:
        end = max(subscriber.arrivals(300).values())
    else:
        end = uvloop.run(_all_acked(redis_url))
    return count / ((end - start) / 1e9), (cpu_seconds(pid) - cpu) / count * 1e6


def _paced_cpu(redis_url: str, first: int, count: int, rate: float, pid: int) -> float:
    """CPU µs per reading of the bridge while readings arrive one by one at `rate` per second,
    until all are acknowledged."""
    cpu = cpu_seconds(pid)
    uvloop.run(_paced(redis_url, first, count, rate))
    uvloop.run(_all_acked(redis_url))
    return (cpu_seconds(pid) - cpu) / count * 1e6


def _bare_paced_cpu(ctx: Any, port: int, count: int, rate: float) -> float:
    """CPU µs per message of a bare aiomqtt loop publishing one message at a time at `rate`."""
    here, there = ctx.Pipe()
    publisher = ctx.Process(target=_bare, args=(port, count, there, rate), daemon=True)
    publisher.start()
    if not here.poll(30):
        raise RuntimeError("the bare publisher did not connect")
    here.recv()
    cpu = cpu_seconds(publisher.pid)
    if not here.poll(60 + count / rate):
        raise RuntimeError("the bare publisher did not finish")
    here.recv()
    used = cpu_seconds(publisher.pid) - cpu
    publisher.join(30)
    return used / count * 1e6


def _bare_rate(ctx: Any, port: int, count: int, sub: bool) -> tuple[float, float]:
    """(readings/s, CPU µs per message) of the bare loop: until a subscriber got all, or until
    all were PUBACKed."""
    subscriber = Subscriber(ctx, port, count) if sub else None
    here, there = ctx.Pipe()
    publisher = ctx.Process(target=_bare, args=(port, count, there), daemon=True)
    publisher.start()
    if not here.poll(30):
        raise RuntimeError("the bare publisher did not connect")
    start = here.recv()
    cpu = cpu_seconds(publisher.pid)
    if subscriber is not None:
        end = max(subscriber.arrivals(300).values())
    if not here.poll(300):
        raise RuntimeError("the bare publisher did not finish")
    done = here.recv()
    used = cpu_seconds(publisher.pid) - cpu
    if subscriber is None:
        end = done
    publisher.join(30)
    return count / ((end - start) / 1e9), used / count * 1e6


def run(slow_samples: int, count: int) -> None:
    from tests.servers import MosquittoServer, RedisServer

    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp) / "redis")
        broker = MosquittoServer(Path(tmp) / "mosquitto")
        # as docs/mqtt.md recommends: without it mosquitto's own Nagle adds ~40 ms to about
        # one message in 300 (measured: the bridge sets TCP_NODELAY on its side)
        broker.extra_config = ["set_tcp_nodelay true"]
        redis.start()
        broker.start()
        bridge = ctx.Process(target=_bridge, args=(redis.url, broker.url), daemon=True)
        bridge.start()
        try:
            # warm-up: the bridge is connected and its group exists once this arrives
            _latency(ctx, broker.port, redis.url, 0, 20, 50)
            first = 1000
            slow = _latency(ctx, broker.port, redis.url, first, slow_samples, 1.0)
            load = os.getloadavg()[0]
            print(
                f"mqtt: XADD -> subscriber at 1 reading/s: {slow}  (goal p99 < 10 ms; load "
                f"average {load:.1f} on {os.cpu_count()} CPUs)"
            )
            first += slow_samples
            steady, steady_count = 500.0, 4000
            assert bridge.pid is not None
            bridge_cpu = _paced_cpu(redis.url, first, steady_count, steady, bridge.pid)
            first += steady_count
            bare_cpu = _bare_paced_cpu(ctx, broker.port, steady_count, steady)
            print(
                f"mqtt: CPU per reading at a steady {steady:,.0f} readings/s: bridge "
                f"{bridge_cpu:.0f} us, bare aiomqtt loop {bare_cpu:.0f} us (publish only); ratio "
                f"{bare_cpu / bridge_cpu:.2f}  ({steady_count} readings)"
            )
            rates = {}
            for sub in (False, True):
                bare, bare_cpu = _bare_rate(ctx, broker.port, count, sub)
                rate, cpu = _bridge_rate(ctx, broker.port, redis.url, first, count, sub, bridge.pid)
                first += count
                rates[sub] = rate
                where = "at a QoS 1 subscriber" if sub else "confirmed by the broker (PUBACK)"
                print(
                    f"mqtt: sustained QoS 1 readings/s {where}: bridge {rate:,.0f}, bare aiomqtt "
                    f"loop {bare:,.0f}; ratio {rate / bare:.2f}  (goal >= 0.5; {count} readings, "
                    f"{INFLIGHT} in flight)"
                )
                print(
                    f"mqtt:   CPU per reading: bridge {cpu:.0f} us (Redis read+ack, decode, "
                    f"encode, publish), bare loop {bare_cpu:.0f} us (publish only); ratio "
                    f"{bare_cpu / cpu:.2f}"
                )
            rate = min(rates.values())
            paced_rate = 0.8 * rate
            busy = _latency(ctx, broker.port, redis.url, first, int(paced_rate * 5), paced_rate)
            print(f"mqtt: XADD -> subscriber at {paced_rate:,.0f} readings/s (80 % of max): {busy}")
        finally:
            bridge.kill()
            bridge.join(10)
            broker.stop()
            redis.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mqtt", description=__doc__)
    parser.add_argument("--slow-samples", type=int, default=40, help="readings at 1/s")
    parser.add_argument("--count", type=int, default=20000, help="readings for the rate test")
    args = parser.parse_args(argv)
    run(args.slow_samples, args.count)


if __name__ == "__main__":
    main()
