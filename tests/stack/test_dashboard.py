"""The provisioned Grafana dashboard: current with its generator, type-checked against the
dashboard types Grafana publishes (@grafana/schema, with TypeScript), and every panel query
names a metric a hanport service exports."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.stack.compose import ROOT
from tests.stack.metric_names import exported_metric_names

GRAFANA = ROOT / "deploy" / "grafana"
SCHEMA = Path(__file__).parent / "grafana_schema"  # `make install` runs `npm ci` there
TSC = SCHEMA / "node_modules" / ".bin" / "tsc"
DASHBOARD_TYPES = SCHEMA / "node_modules/@grafana/schema/dist/types/raw/dashboard/x/types.gen"
PANEL_TYPES = {"row", "stat", "timeseries", "barchart", "gauge", "table", "bargauge"}


def script(path: Path) -> ModuleType:
    """A generator script (deploy/grafana/*.py) loaded as a module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _generator() -> ModuleType:
    return script(GRAFANA / "dashboard.py")


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


def typecheck(board: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """tsc on `const board: Dashboard = <the JSON>`: an object literal, so TypeScript checks
    every field's type and refuses any field Grafana's schema does not have."""
    check = folder / "check.ts"
    check.write_text(
        f'import type {{ Dashboard }} from "{DASHBOARD_TYPES}";\n'
        f"export const board: Dashboard = {board};\n"
    )
    options = ["--noEmit", "--strict", "--skipLibCheck", "--target", "es2022"]
    options += ["--module", "esnext", "--moduleResolution", "bundler"]
    return subprocess.run(
        [str(TSC), *options, str(check)], capture_output=True, text=True, timeout=120
    )


def test_dashboard_type_checks_against_grafanas_published_schema(tmp_path: Path) -> None:
    if not TSC.exists() or shutil.which("node") is None:
        pytest.skip("Grafana's dashboard types are not installed (make install, with npm)")
    text = (GRAFANA / "dashboards" / "hanport.json").read_text()
    result = typecheck(text, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = typecheck(text.replace('"gridPos"', '"gridPosition"', 1), tmp_path)
    assert broken.returncode != 0 and "gridPosition" in broken.stdout  # the check does bite
