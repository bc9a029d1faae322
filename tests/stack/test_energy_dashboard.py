"""The provisioned energy dashboards on the long-term store (deploy/grafana/energy.py) and their
data sources: current with their generator, type-checked against Grafana's published dashboard
types, each query on the data source the provisioning makes, and that provisioning filled in
from .env through compose.yaml and start.sh, with defaults when nothing is set. The queries
themselves run on real stores in tests/export/test_grafana_queries.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from services.config_doc import COMPOSE_ONLY
from tests.stack.compose import ROOT, resolved_config
from tests.stack.test_dashboard import PANEL_TYPES, TSC, script, typecheck

GRAFANA = ROOT / "deploy" / "grafana"
STORES_YAML = GRAFANA / "provisioning" / "datasources" / "stores.yaml"
START = GRAFANA / "start.sh"
STORES = ("postgres", "victoria")
_STORE_VARIABLES = set(re.findall(r"\$\{?(GRAFANA_\w+)", STORES_YAML.read_text()))


def _generator() -> ModuleType:
    return script(GRAFANA / "energy.py")


def _text(store: str) -> str:
    return (GRAFANA / "dashboards" / f"energy-{store}.json").read_text()


def _datasources() -> dict[str, dict[str, Any]]:
    sources = yaml.safe_load(STORES_YAML.read_text())["datasources"]
    return {source["uid"]: source for source in sources}


def test_energy_dashboards_are_current() -> None:
    generator = _generator()
    assert sorted(generator.STORES) == sorted(STORES)
    for key, store in generator.STORES.items():
        assert _text(key) == generator.render(store), (
            "run: .venv/bin/python deploy/grafana/energy.py"
        )


@pytest.mark.parametrize("store", STORES)
def test_energy_dashboard_shape_and_data_source(store: str) -> None:
    board = json.loads(_text(store))
    sources = _datasources()
    uids = {json.loads(_text(s))["uid"] for s in STORES} | {"hanport"}
    assert len(uids) == 3  # no dashboard takes another's place in the folder
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    (variable,) = board["templating"]["list"]
    assert variable["datasource"]["uid"] in sources
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        source = sources[panel["datasource"]["uid"]]
        assert panel["datasource"]["type"] == source["type"]
        assert panel["datasource"] == variable["datasource"]  # one store per dashboard
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            query = target.get("rawSql") or target.get("expr")
            assert query and "$box" in query, panel["title"]  # the chosen box only


def test_energy_dashboards_cover_what_the_issue_asks() -> None:
    for store in STORES:
        titles = " | ".join(p["title"].lower() for p in json.loads(_text(store))["panels"])
        for words in ("kwh imported and exported per day", "per month", "highest hour",
                      "quarter-hour", "power"):  # fmt: skip
            assert words in titles, (store, words)


@pytest.mark.parametrize("store", STORES)
def test_energy_dashboard_type_checks_against_grafanas_published_schema(
    store: str, tmp_path: Path
) -> None:
    if not TSC.exists() or shutil.which("node") is None:
        pytest.skip("Grafana's dashboard types are not installed (make install, with npm)")
    result = typecheck(_text(store), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# --- provisioning: .env -> compose.yaml -> start.sh -> Grafana's ${VAR} -------------------------


def grafana_environment(env: dict[str, str]) -> dict[str, str]:
    """The environment Grafana starts with: start.sh run with `env` (as compose gives it) and
    Grafana's own entry point replaced by `env`."""
    base = {"PATH": os.environ["PATH"], "GF_SECURITY_ADMIN_PASSWORD": "s3cret", **env}
    result = subprocess.run(
        ["/bin/sh", str(START)],
        env={**base, "GRAFANA_RUN": "env"},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 0, result.stderr
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def expand(text: str, env: dict[str, str]) -> str:
    """Grafana's expansion of a provisioning file: `${VAR}` and `$VAR` from its environment,
    empty when unset."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m[1] or m[2], ""), text)


def provisioned(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    sources = yaml.safe_load(expand(STORES_YAML.read_text(), grafana_environment(env)))
    return {source["uid"]: source for source in sources["datasources"]}


def compose_environment(tmp_path: Path, lines: tuple[str, ...] = ()) -> dict[str, str]:
    grafana = resolved_config(tmp_path, lines, profiles=("monitoring",))["services"]["grafana"]
    return {k: str(v) for k, v in grafana["environment"].items() if k.startswith("GRAFANA_")}


def test_data_sources_have_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    env = compose_environment(tmp_path)
    assert set(env) == _STORE_VARIABLES  # compose passes every variable the provisioning names
    assert set(env.values()) == {""}  # unset in .env: start.sh gives the defaults
    sources = provisioned(env)
    postgres, victoria = sources["hanport-postgres"], sources["hanport-victoria"]
    assert postgres["type"] == "grafana-postgresql-datasource"
    assert postgres["url"] == "postgres:5432" and postgres["user"] == "grafana"
    assert postgres["jsonData"]["database"] == "hanport"
    assert postgres["jsonData"]["sslmode"] == "disable"
    assert postgres["secureJsonData"]["password"] is None  # YAML's empty: no password
    assert victoria["type"] == "prometheus" and victoria["url"] == "http://victoria:8428"
    assert victoria["access"] == postgres["access"] == "proxy"  # Grafana's server asks


def test_data_sources_take_the_env_file(tmp_path: Path) -> None:
    lines = (
        "GRAFANA_POSTGRES_HOST=db.example.net:6432",
        "GRAFANA_POSTGRES_DATABASE=meters",
        "GRAFANA_POSTGRES_USER=grafanareader",
        "GRAFANA_POSTGRES_PASSWORD=s3cret-reader",
        "GRAFANA_POSTGRES_SSLMODE=verify-full",
        "GRAFANA_VICTORIA_URL=https://vm.example.net:8428",
    )
    env = compose_environment(tmp_path, lines)
    sources = provisioned(env)
    postgres, victoria = sources["hanport-postgres"], sources["hanport-victoria"]
    assert postgres["url"] == "db.example.net:6432" and postgres["user"] == "grafanareader"
    assert postgres["jsonData"] == {
        "database": "meters", "sslmode": "verify-full", "postgresVersion": 1500,
        "timescaledb": False,
    }  # fmt: skip
    assert postgres["secureJsonData"]["password"] == "s3cret-reader"
    assert victoria["url"] == "https://vm.example.net:8428"


def test_the_prometheus_data_source_stays_the_default() -> None:
    """The monitoring dashboard's queries go to Prometheus; the stores are never the default."""
    assert all(not source.get("isDefault") for source in _datasources().values())
    main = yaml.safe_load((STORES_YAML.parent / "prometheus.yaml").read_text())["datasources"]
    assert [source["isDefault"] for source in main] == [True]
    assert {source["uid"] for source in main}.isdisjoint(_datasources())


def test_documented_defaults_are_start_sh_defaults() -> None:
    """docs/configuration.md and .env.example (services/config_doc.py) say what start.sh sets."""
    documented = {name: default for name, default, _ in COMPOSE_ONLY if name in _STORE_VARIABLES}
    started = grafana_environment({})
    assert documented == {name: started[name] for name in _STORE_VARIABLES}
