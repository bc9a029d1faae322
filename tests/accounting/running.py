"""The real accounting service as a child process, and what tests need around it: writing a
month of readings to the classic stream, waiting until every entry is counted and stored."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.accounting import store
from services.accounting.account import RESOLUTIONS
from shared.reading import Reading, encode_reading
from tests.servers import free_port
from tests.stack.polling import until

ROOT = Path(__file__).resolve().parents[2]
STREAM = "hanport:readings"
GROUP = "accounting"


class AccountingProcess:
    """`python -m services.accounting` on a Redis, with a tariff rule and a log file."""

    def __init__(self, redis_url: str, rule: str, zone: str, log: Path) -> None:
        self.log = log
        self.env = {
            **os.environ,
            "HANPORT_REDIS_URL": redis_url,
            "HANPORT_STREAM": STREAM,
            "HANPORT_TARIFF_RULE": rule,
            "HANPORT_METER_TIMEZONE": zone,
            "HANPORT_METRICS_PORT": str(free_port()),
            "HANPORT_ACCOUNTING_TARIFF_INTERVAL": "0.05",
            "HANPORT_LOG_FORMAT": "text",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.env["HANPORT_METRICS_PORT"] = str(free_port())  # a fresh one for every start
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.accounting"],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)
        self.proc = None

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


async def redis_ready(redis: Redis, logs: Any) -> None:
    """Wait until a (re)started Redis has loaded its data and answers."""

    async def check() -> bool:
        try:
            return bool(await redis.ping())
        except RedisError as error:
            raise AssertionError(str(error)) from error

    await until(check, "Redis to answer", logs, 30)


async def write(redis: Redis, readings: Sequence[Reading], stream: str = STREAM) -> str:
    """XADD the readings (entry id = the reading's time), in pipelines; the last id."""
    last = ""
    for offset in range(0, len(readings), 1000):
        pipe = redis.pipeline(transaction=False)
        for reading in readings[offset : offset + 1000]:
            last = f"{reading.ts}-0"
            pipe.xadd(stream, {"reading": encode_reading(reading)}, id=last)
        await pipe.execute()
    return last


async def counted(redis: Redis, last_id: str, meter: str, stream: str = STREAM) -> bool:
    """Every entry up to `last_id` delivered, acknowledged, and the tariff refreshed since."""
    groups: Any = await redis.xinfo_groups(stream)
    group = next((g for g in groups if g["name"] in (GROUP, GROUP.encode())), None)
    if group is None:
        return False
    delivered = group["last-delivered-id"]
    delivered = delivered.decode() if isinstance(delivered, bytes) else delivered
    if delivered != last_id or group["pending"] != 0:
        return False
    answer = await store.read_tariff(redis, meter)
    state = json.loads(await redis.get(store.state_key(meter)) or "{}")
    return (
        answer is not None
        and state.get("last_ts") == int(last_id.split("-")[0])
        and (answer["now_ms"] == state["last_ts"])
    )


async def wait_counted(
    redis: Redis,
    last_id: str,
    meter: str,
    service: AccountingProcess,
    within: float = 60.0,
    stream: str = STREAM,
) -> None:
    async def check() -> bool:
        assert service.proc is not None and service.proc.poll() is None, "service ended"
        return await counted(redis, last_id, meter, stream)

    await until(check, f"accounting of {meter} up to {last_id}", service.logs, within)


async def all_intervals(redis: Redis, meter: str) -> dict[tuple[str, int], tuple[Any, ...]]:
    out = {}
    for resolution in RESOLUTIONS.values():
        for row in await store.read_intervals(redis, meter, resolution, None, None):
            out[(resolution, row.start_ms)] = (*(round(v, 9) for v in row.values), row.estimated)
    return out
