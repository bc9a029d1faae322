"""Readings for the export tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from redis.asyncio import Redis

from shared.meters import MeterDirectory, MeterKeys, MeterRecord
from shared.reading import Reading, SubMeter
from shared.stream import ReadingStream
from tests.licensing_helpers import grant
from tests.servers import free_port

BOX = "HPTEST0001"
T0 = 1_764_547_200_000  # 2025-12-01 00:00:00 UTC: a month boundary in the middle of a test


def reading(n: int, *, meter: str = "main", start: int = T0, step_ms: int = 1000) -> Reading:
    """The n-th reading of `meter`: values that tell readings apart; L3 and export absent."""
    ts = start + n * step_ms
    return Reading(
        ts=ts,
        received=ts + 150,
        meter=meter,
        ic=1000.0 + n / 1000,
        ec=None,
        p=[float(500 + n), 200.0, float(300 + n), None],
        pi=[float(500 + n), 200.0, float(300 + n), None],
        u=[230.5, 231.0, None],
        i=[1.25, 2.5, None],
        submeters=[SubMeter(channel=1, device_type=3, id="G1", value=10.0 + n, unit="m3")]
        if n % 10 == 0
        else [],
    )


# --- the export service as a process, and the stream it reads ---------------------------------


ROOT = Path(__file__).resolve().parents[2]
CLASSIC = "hanport:readings"


def export_env(
    redis_url: str, tmp: Path, *, metrics: bool = False, **settings: str
) -> dict[str, str]:
    """The environment of an export process: Redis, the box's serial, a metrics port when
    `metrics`, and `settings` (`HANPORT_EXPORT_...` without the prefix, e.g. influx_url=...)."""
    env = {
        "HANPORT_REDIS_URL": redis_url,
        "HANPORT_SERIAL": BOX,
        "HANPORT_LICENSE_DIR": str(tmp / "no-licenses"),
        "HANPORT_METRICS_PORT": str(free_port()) if metrics else "0",
        "HANPORT_LOG_FORMAT": "text",
        "HANPORT_EXPORT_BATCH_WAIT": "0.2",
    }
    for name, value in settings.items():
        env[f"HANPORT_EXPORT_{name.upper()}"] = value
    return env


async def licensed_env(
    redis_url: str, tmp: Path, *, metrics: bool = False, **settings: str
) -> dict[str, str]:
    """`export_env` with a consumer activation of `export` for BOX published in Redis, as the
    licensing service does (`tests.licensing_helpers.grant`): the export writes only then."""
    env = export_env(redis_url, tmp, metrics=metrics, **settings)
    return env | await grant(redis_url, tmp, BOX, ["export"])


class ExportProcess:
    """`python -m services.export` with `env`, its output in `log`."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.export"],
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def metric(self, name: str, **labels: str) -> float | None:
        """A sample from the process's /metrics (None when not there yet)."""
        text = httpx.get(f"http://127.0.0.1:{self.env['HANPORT_METRICS_PORT']}/metrics").text
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for line in text.splitlines():
            head, _, value = line.rpartition(" ")
            if head == (f"{name}{{{want}}}" if want else name):
                return float(value)
        return None


@contextmanager
def exporting(env: dict[str, str], log: Path) -> Iterator[ExportProcess]:
    process = ExportProcess(env, log)
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def add_meter(redis: Redis, name: str) -> str:
    """Register a named meter in the directory (as its ingest would); its stream key."""
    keys = MeterKeys.named(name)
    await MeterDirectory(redis).put(
        MeterRecord(name=name, readings=keys.readings, raw=keys.raw, status=keys.status)
    )
    return keys.readings


async def publish(redis: Redis, key: str, readings: list[Reading]) -> list[str]:
    stream = ReadingStream(redis, key)
    return [await stream.add(r) for r in readings]
