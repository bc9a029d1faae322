"""The REST service as a real process (`python -m services.rest`) against the test's
redis-server, a stream filled with readings, and the process's memory from /proc."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from redis import Redis

from shared.reading import encode_reading
from shared.stream import READING_FIELD
from tests.readings import simulated_readings
from tests.servers import RedisServer, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
STREAM = "hanport:readings"


@dataclass
class RestProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def status_kb(self, field: str) -> int:
        """A `kB` line of /proc/<pid>/status: VmRSS (now), VmHWM (the peak so far)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)


def fill_stream(redis_server: RedisServer, n: int) -> list[str]:
    """XADD `n` simulated readings received one second apart, the newest received now (so
    /meter serves it as fresh). Returns their stream ids, oldest first."""
    now_ms = int(time.time() * 1000)
    start = now_ms - (n - 1) * 1000
    readings = simulated_readings(n, start_ms=start)
    client = Redis.from_url(redis_server.url)
    try:
        pipe = client.pipeline(transaction=False)
        ids = []
        for reading in readings:
            entry_id = f"{reading.received}-0"
            pipe.xadd(STREAM, {READING_FIELD: encode_reading(reading)}, id=entry_id)
            ids.append(entry_id)
        pipe.execute()
    finally:
        client.close()
    return ids


@contextlib.contextmanager
def rest_process(
    redis_server: RedisServer, log: Path, root: Path = ROOT, **env: str
) -> Iterator[RestProcess]:
    """`python -m services.rest` from `root`, listening before the body runs; its output in
    `log`. Ended (SIGKILL) after the body if it still runs."""
    port = free_port()
    environment = {
        **os.environ,
        "PYTHONPATH": str(root),
        "HANPORT_REDIS_URL": redis_server.url,
        "HANPORT_REST_HOST": "127.0.0.1",
        "HANPORT_REST_PORT": str(port),
        "HANPORT_STREAM": STREAM,
        "HANPORT_REST_STALE_AFTER": "3600",
        **env,
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.rest"],
            cwd=root,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, timeout=30)
        yield RestProcess(proc, f"http://127.0.0.1:{port}", log)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
