"""deploy/hub: a node's configuration with the generated operator lines is valid for
nats-server, the compose file validates, and `hanport hub init` creates the stream as
configured (and updates it when run again)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import nats
import pytest

from services.hub.cli import main as hub_main
from services.hub.credentials import Fleet
from services.hub.stream import HUB_STREAM
from tests.fleet.nats import NatsServer, nats_binary

ROOT = Path(__file__).resolve().parents[2]
HUB = ROOT / "deploy" / "hub"


def test_node_config_is_valid(tmp_path: Path) -> None:
    folder = tmp_path / "nats"
    shutil.copytree(HUB / "nats", folder)
    (folder / "auth.conf").write_text(Fleet.new().server_config())
    result = subprocess.run(
        [nats_binary(), "-t", "-c", str(folder / "node.conf")],
        env={**os.environ, "NODE_NAME": "nats1"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stderr + result.stdout


def test_compose_file_validates() -> None:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (.ci/run installs it)")
    result = subprocess.run(
        ["docker-compose", "-f", str(HUB / "compose.yaml"), "config", "-q"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_hub_init_creates_then_updates_the_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = NatsServer(tmp_path / "hub")
    hub.start()
    try:
        monkeypatch.setenv("HANPORT_HUB_URL", hub.url)
        monkeypatch.setenv("HANPORT_HUB_REPLICAS", "1")
        monkeypatch.setenv("HANPORT_HUB_MAX_AGE_DAYS", "3")
        assert hub_main(["init"]) == 0
        assert "stream HANPORT created" in capsys.readouterr().out
        monkeypatch.setenv("HANPORT_HUB_DUPLICATE_WINDOW", "60")
        assert hub_main(["init"]) == 0
        assert "stream HANPORT updated" in capsys.readouterr().out

        async def config() -> tuple[list[str] | None, float | None, float | None, int]:
            nc = await nats.connect(hub.url)
            info = await nc.jetstream().stream_info(HUB_STREAM)
            await nc.close()
            c = info.config
            return c.subjects, c.max_age, c.duplicate_window, c.num_replicas or 1

        assert asyncio.run(config()) == (["hanport.>"], 3 * 86400.0, 60.0, 1)
    finally:
        hub.stop()


def test_fleet_dashboard_queries_known_metrics() -> None:
    """Every metric the fleet dashboard queries is one the sink workers export."""
    import json
    import re

    from services.hub import fleetview

    exported = {
        name
        for metric in vars(fleetview).values()
        if hasattr(metric, "_name")
        for name in (metric._name, metric._name + "_total")
    }
    dashboard = json.loads((HUB / "grafana" / "fleet.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"hanport_[a-z_]+", e)}
    assert used and used <= exported, used - exported
