"""The provisioned Grafana dashboard: current with its generator, shaped as Grafana's dashboard
schema expects, and every panel query names a metric a hanport service exports."""

from __future__ import annotations

import importlib.util
import json
import re
from types import ModuleType
from typing import Any

import yaml

from tests.stack.compose import ROOT
from tests.stack.metric_names import exported_metric_names

GRAFANA = ROOT / "deploy" / "grafana"
PANEL_TYPES = {"row", "stat", "timeseries", "barchart", "gauge", "table", "bargauge"}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboard", GRAFANA / "dashboard.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dashboard() -> dict[str, Any]:
    return json.loads((GRAFANA / "dashboards" / "hanport.json").read_text())


def test_dashboard_json_is_current() -> None:
    text = (GRAFANA / "dashboards" / "hanport.json").read_text()
    assert text == _generator().render(), "run: .venv/bin/python deploy/grafana/dashboard.py"


def test_dashboard_has_grafana_schema_shape() -> None:
    board = _dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )["datasources"][0]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in "hwxy")
        assert grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == datasource["uid"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs))
        assert all(t["expr"].strip() for t in panel["targets"])


def test_dashboard_covers_what_the_issue_asks() -> None:
    titles = " | ".join(p["title"].lower() for p in _dashboard()["panels"])
    for words in ("per phase", "import", "export", "voltage", "current", "per hour", "per day",
                  "telegrams by result", "lag per consumer", "mqtt backlog", "modbus requests"):  # fmt: skip
        assert words in titles, words


def test_every_query_names_an_exported_metric() -> None:
    known = exported_metric_names()
    missing = []
    for panel in _dashboard()["panels"]:
        for target in panel.get("targets", []):
            names = re.findall(r"\b(hanport_[a-z0-9_]+)", target["expr"])
            assert names, target["expr"]
            missing += [f"{panel['title']}: {n}" for n in names if n not in known]
    assert missing == [], f"queries name metrics no service exports: {missing}"
