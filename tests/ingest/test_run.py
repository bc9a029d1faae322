"""`make run` (services/run.py): starts its own redis-server when none answers, the ingest
service on the simulator, and stops everything on SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from tests.servers import free_port, wait_for_port, wait_for_port_closed


def test_make_run_starts_redis_and_ingest_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "HANPORT_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "HANPORT_SIMULATOR_INTERVAL": "0.1",
        "HANPORT_METRICS_PORT": "0",
        "HANPORT_LOG_FORMAT": "text",
        "XDG_DATA_HOME": str(tmp_path),  # its Redis data and licenses
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=30)
        client = redis.Redis(port=port)
        # XREAD BLOCK waits for the first readings (the stream may not exist yet: retry once).
        deadline = time.monotonic() + 30
        entries: list[object] = []
        while len(entries) < 3 and time.monotonic() < deadline:
            if client.exists("hanport:readings"):
                entries = client.xrange("hanport:readings")  # type: ignore[assignment]
                if len(entries) < 3:
                    client.xread({"hanport:readings": "$"}, block=1000)
            else:
                client.xread({"hanport:readings": "0-0"}, block=500)
        assert len(entries) >= 3
        client.close()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.decode()
    assert proc.returncode == 0, text
    assert "started redis-server" in text
    assert "hanport run: stopping" in text
    wait_for_port_closed(port)  # the Redis it started is gone too
