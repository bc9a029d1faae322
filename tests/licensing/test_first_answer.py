"""Right after a (re)start, licensing's first answer already shows the installed licences: it
reads its folder before anything else, Redis included, and listens only once it has (or after
5 s), so `GET /license` never says "none" for a moment (the race behind a failed commercial-use
test; before, the folder was read only once Redis answered)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.licensing_helpers import issue, make_keys
from tests.servers import RedisServer, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
SERIAL = "HPFIRST0001"


def test_the_first_answer_after_start_shows_the_installed_licences(tmp_path: Path) -> None:
    private, public = make_keys(tmp_path)
    folder = tmp_path / "licenses"
    folder.mkdir()
    (folder / "activation.lic").write_bytes(issue(private, serial=SERIAL, features=["mqtt"]))
    redis = RedisServer(tmp_path / "redis")  # never started: Redis is down the whole time
    port, log = free_port(), tmp_path / "licensing.log"
    env = {
        **os.environ,
        "HANPORT_REDIS_URL": redis.url,
        "HANPORT_LICENSING_HOST": "127.0.0.1",
        "HANPORT_LICENSING_PORT": str(port),
        "HANPORT_LICENSE_DIR": str(folder),
        "HANPORT_LICENSE_PUBLIC_KEYS": str(public),
        "HANPORT_SERIAL": SERIAL,
        "HANPORT_LOG_FORMAT": "text",
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.licensing"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_port(port, timeout=20)
        state = httpx.get(f"http://127.0.0.1:{port}/license", timeout=10).json()
        assert [installed["serial"] for installed in state["licences"]] == [SERIAL]
        assert state["features"]["mqtt"]["granted"] is True
    finally:
        process.terminate()
        process.wait(timeout=10)
