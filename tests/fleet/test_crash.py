"""SIGKILL of the uplink mid-batch, and of every process of the box at once (uplink, its spool's
nats-server, Redis): after a restart every reading is at the hub exactly once, in order per meter
(replays are dropped by the hub's and the spool's duplicate windows)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from shared.stream import connect
from tests.fleet.nats import NatsServer
from tests.fleet.support import (
    BOX,
    Feeder,
    create_hub_stream,
    eventually,
    hub_client,
    hub_readings,
    wait_all,
)
from tests.servers import RedisServer

ROOT = Path(__file__).resolve().parents[2]
BACKLOG = 20_000


class Uplink:
    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.log_path = workdir / "uplink.log"
        self.env = {**os.environ, **env}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.uplink"], cwd=ROOT, env=self.env, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


async def test_uplink_and_power_cut(tmp_path: Path, redis_server: RedisServer) -> None:
    hub = NatsServer(tmp_path / "hub")
    spool = NatsServer(tmp_path / "spool", "spool")
    hub.start()
    spool.start()
    nc = await hub_client(hub.url)
    await create_hub_stream(nc)
    env = {
        "HANPORT_UPLINK_URL": hub.url, "HANPORT_UPLINK_SPOOL_URL": spool.url,
        "HANPORT_REDIS_URL": redis_server.url, "HANPORT_UPLINK_BOX": BOX,
        "HANPORT_METRICS_PORT": "0", "HANPORT_LOG_FORMAT": "text",
        "HANPORT_UPLINK_BATCH": "50", "HANPORT_LICENSE_DIR": str(tmp_path / "none"),
    }  # fmt: skip
    uplink = Uplink(tmp_path, env)
    redis = await connect(redis_server.url)
    feeder = Feeder(redis, "hanport:readings")

    def logs() -> str:
        return uplink.log() + hub.log()

    async def at_hub_more_than(n: int) -> bool:
        return sum(map(len, (await hub_readings(nc)).values())) > n

    try:
        await feeder.add(BACKLOG)
        uplink.start()
        await eventually(lambda: at_hub_more_than(300), "the first readings at the hub")
        uplink.kill()  # mid-batch: thousands still to send
        assert not await at_hub_more_than(BACKLOG - 1)
        uplink.start()
        assert dict(await wait_all(nc, feeder, logs)) == dict(feeder.sent)

        # a power cut: every process of the box at once
        await feeder.add(BACKLOG)
        await eventually(lambda: at_hub_more_than(BACKLOG + 300), "readings after the first crash")
        uplink.kill()
        spool.kill()
        redis_server.kill()
        redis_server.start()
        spool.start()
        uplink.start()
        got = await wait_all(nc, feeder, logs)
        assert dict(got) == dict(feeder.sent)
    finally:
        uplink.kill()
        await nc.close()
        hub.stop()
        spool.stop()
