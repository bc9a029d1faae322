"""deploy/prometheus and the Grafana dashboard against a real Prometheus (Debian's `prometheus`
package, which .ci/run installs): promtool accepts the deploy config, and a Prometheus scraping a
running ingest service parses every dashboard query and answers with the simulated meter's data
each query whose metrics the ingest exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.export.test_grafana_queries import expand_promql
from tests.servers import RedisServer, free_port, running
from tests.stack.compose import ROOT

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "hanport.json"
# the energy dashboard on VictoriaMetrics: plain PromQL, so Prometheus parses it too (its values
# are checked on a VictoriaMetrics in tests/export/test_grafana_queries.py)
ENERGY = ROOT / "deploy" / "grafana" / "dashboards" / "energy-victoria.json"
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None,
    reason="prometheus / promtool are not installed (.ci/run installs Debian's prometheus)",
)


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel target, the energy dashboard's with Grafana's
    variables expanded."""
    board = json.loads(DASHBOARD.read_text())
    energy = json.loads(ENERGY.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ] + [
        (panel["title"], expand_promql(target["expr"], interval="1m", range_s=3600))
        for panel in energy["panels"]
        for target in panel.get("targets", [])
    ]


@needs_prometheus
def test_deploy_config_passes_promtool() -> None:
    assert PROMTOOL is not None
    config = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.fixture
def ingest_metrics_port(redis_server: RedisServer, tmp_path: Path) -> Iterator[int]:
    """The ingest service on its built-in simulator (5 telegrams/s), as a process."""
    port = free_port()
    env = {
        **os.environ,
        "HANPORT_REDIS_URL": redis_server.url,
        "HANPORT_SOURCE": "simulator",
        "HANPORT_SIMULATOR_INTERVAL": "0.2",
        "HANPORT_METRICS_PORT": str(port),
        "HANPORT_SERIAL": "HPPROM0001",
    }
    command = [sys.executable, "-m", "services.ingest"]
    with running(command, tmp_path / "ingest.log", port, env=env, cwd=ROOT):
        yield port


@pytest.fixture
def prometheus_url(ingest_metrics_port: int, tmp_path: Path) -> Iterator[str]:
    """A Prometheus scraping the ingest every second (static target: no compose DNS here)."""
    assert PROMETHEUS is not None
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: ingest\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{ingest_metrics_port}']}}]\n"
    )
    port = free_port()
    command = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with running(command, tmp_path / "prometheus.log", port):
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base)
        yield base


def wait_until_ready(base: str, within: float = 30.0) -> None:
    """Prometheus listens before its storage is open (503 until then): wait for /-/ready."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"Prometheus at {base} not ready after {within} s")


def query(base: str, expr: str) -> tuple[int, dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:  # a query Prometheus cannot parse: 400 bad_data
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, {"error": text.decode(errors="replace")}


def wait_for_series(base: str, expr: str, count: int, within: float = 30.0) -> list[Any]:
    deadline = time.monotonic() + within
    result: list[Any] = []
    while time.monotonic() < deadline:
        status, body = query(base, expr)
        result = body.get("data", {}).get("result", []) if status == 200 else []
        if len(result) >= count:
            return result
        time.sleep(0.25)  # a scrape every second: poll the query API, bounded by `within`
    raise AssertionError(f"{expr}: {len(result)} series after {within} s, wanted {count}")


def ingest_metric_names(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return set(re.findall(r"^([a-z_:][a-z0-9_:]*)(?:\{| )", text, flags=re.M))


@needs_prometheus
def test_dashboard_queries_answer_from_a_scraped_ingest(
    prometheus_url: str, ingest_metrics_port: int
) -> None:
    voltages = wait_for_series(prometheus_url, "hanport_meter_voltage_volts", 3)
    assert sorted(s["metric"]["phase"] for s in voltages) == ["l1", "l2", "l3"]
    assert all(200 < float(s["value"][1]) < 260 for s in voltages)  # the simulator's mains
    # rate() and delta() need two samples of a series: wait for the third scrape
    wait_for_series(prometheus_url, 'count_over_time(up{job="ingest"}[1m]) >= 3', 1)
    exported = ingest_metric_names(ingest_metrics_port)
    unparsed, empty, answered = [], [], 0
    for title, expr in dashboard_queries():
        status, body = query(prometheus_url, expr)
        if status != 200 or body.get("status") != "success":
            unparsed.append(f"{title}: {expr}: {body.get('error')}")
            continue
        names = set(re.findall(r"\b(hanport_[a-z0-9_]+)", expr))
        if names <= exported:  # every metric it names comes from the ingest: data expected
            answered += 1
            if not body["data"]["result"]:
                empty.append(f"{title}: {expr}")
    assert unparsed == []
    assert empty == [], f"queries of ingest metrics that returned nothing: {empty}"
    assert answered >= 10  # power, voltage, current, energy, telegrams, buffer, source...
