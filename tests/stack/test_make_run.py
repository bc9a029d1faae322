"""`make run` (services/run.py): the whole stack as local processes, a Redis of its own when
none answers, live simulated data on REST, and a clean stop of everything on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.servers import free_port, wait_for_port_closed
from tests.stack.compose import ROOT


def test_make_run_starts_everything_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("redis", "rest", "modbus", "licensing")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("HANPORT_")}
    env.update(
        PYTHONPATH=str(ROOT),
        HANPORT_REDIS_URL=f"redis://127.0.0.1:{ports['redis']}/0",  # nothing there: run starts it
        HANPORT_REST_PORT=str(ports["rest"]),
        HANPORT_MODBUS_PORT=str(ports["modbus"]),
        HANPORT_LICENSING_PORT=str(ports["licensing"]),
        HANPORT_METRICS_PORT="0",  # the fixed defaults 9101-9103 may be taken on a test machine
        HANPORT_LICENSE_DIR=str(tmp_path / "licences"),
    )
    output = open(tmp_path / "run.log", "w+b")  # noqa: SIM115 - closed below
    run = subprocess.Popen(
        [sys.executable, "-m", "services.run"],
        cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        meter = None
        while time.monotonic() < deadline and run.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{ports['rest']}/meter", timeout=2)
                if response.status_code == 200:
                    meter = response.json()
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        log = (tmp_path / "run.log").read_text()
        assert meter is not None, f"no reading on REST from make run:\n{log}"
        assert meter["type"] == "HAN_METER_MESSAGE" and meter["p"][0] is not None
        for name in ("ingest", "licensing", "rest", "mqtt", "modbus"):
            assert f"started {name}" in log, log
        assert "live page:" in log and "started redis-server" in log

        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
        assert run.wait(timeout=30) == 0, (tmp_path / "run.log").read_text()
        for port in ports.values():
            wait_for_port_closed(port, timeout=10)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        output.close()
