"""compose.yaml, the Dockerfile and the generated configuration docs agree with each other and
with the settings classes: validated by Debian's docker-compose, checked key by key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from services import config_doc
from tests.stack.compose import COMPOSE, HANPORT_SERVICES, ROOT, resolved_config

PROFILES = ("broker", "monitoring", "export", "emulate")
# settings a service inherits but does not use: rest and licensing serve /metrics on their port
# REST and licensing serve /metrics on their own HTTP port
UNUSED = {
    "rest": {"HANPORT_METRICS_PORT", "HANPORT_METRICS_HOST"},
    "licensing": {"HANPORT_METRICS_PORT", "HANPORT_METRICS_HOST"},
}


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return resolved_config(tmp_path, profiles=PROFILES)


def test_compose_validates_with_and_without_profiles(tmp_path: Path) -> None:
    plain = resolved_config(tmp_path)
    default = {name for name, s in plain["services"].items() if not s.get("profiles")}
    assert default == {"redis", "proxy", *HANPORT_SERVICES}
    full = resolved_config(tmp_path, profiles=PROFILES)
    for name, profile in (
        ("mosquitto", "broker"),
        ("prometheus", "monitoring"),
        ("grafana", "monitoring"),
        ("export", "export"),
        ("emulate", "emulate"),
    ):
        assert full["services"][name]["profiles"] == [profile]


def test_real_meter_settings_from_env_file(tmp_path: Path) -> None:
    config = resolved_config(
        tmp_path, ("HANPORT_DEVICE=/dev/ttyUSB0", "HANPORT_SOURCE=/dev/ttyUSB0")
    )
    ingest = config["services"]["ingest"]
    assert ingest["devices"] == ["/dev/ttyUSB0:/dev/ttyUSB0"]
    assert ingest["environment"]["HANPORT_SOURCE"] == "/dev/ttyUSB0"
    assert "dialout" in ingest["group_add"]
    # with no configuration: the simulator (the settings default), and /dev/null mapped
    default = resolved_config(tmp_path)["services"]["ingest"]
    assert default["environment"]["HANPORT_SOURCE"] is None
    assert default["devices"] == ["/dev/null:/dev/null"]


def test_every_hanport_service_is_hardened(config: dict[str, Any]) -> None:
    for name in HANPORT_SERVICES:
        service = config["services"][name]
        assert service["command"] == ["hanport", name], name
        assert service["image"] == "hanport:latest", name
        assert service["restart"] == "unless-stopped", name
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["mem_limit"], name
        assert service["logging"]["options"]["max-size"], name
        assert service["healthcheck"]["test"][0] == "CMD", name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
    for name, service in config["services"].items():
        assert service.get("restart") == "unless-stopped", name
        assert service.get("read_only") is True, name
        assert "logging" in service and "mem_limit" in service, name


def test_redis_persists_and_is_not_published(config: dict[str, Any]) -> None:
    redis = config["services"]["redis"]
    assert "ports" not in redis
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data:rw") or v.endswith(":/data") for v in _volumes(redis))
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_scaled_services_publish_no_fixed_port(config: dict[str, Any]) -> None:
    for name in ("rest", "mqtt"):
        assert "ports" not in config["services"][name], name
        assert "container_name" not in config["services"][name], name
    proxy = config["services"]["proxy"]
    assert [p["target"] for p in proxy["ports"]] == [8080]
    caddyfile = (ROOT / "deploy/proxy/Caddyfile").read_text()
    assert re.search(r"dynamic a rest 8080", caddyfile)
    modbus = config["services"]["modbus"]
    assert [p["target"] for p in modbus["ports"]] == [502]
    assert str(modbus["environment"]["HANPORT_MODBUS_PORT"]) == "502"


def test_environment_lists_exactly_the_settings_of_each_service(config: dict[str, Any]) -> None:
    """Every setting of a service reaches its container from .env, and compose passes nothing
    the service does not read."""
    classes = config_doc.settings_classes()
    for name in (*HANPORT_SERVICES, "export"):
        if name not in classes:
            continue  # that service's settings module has not landed yet
        fields = classes[name].model_fields
        expected = {config_doc.env_name(key, field) for key, field in fields.items()}
        expected -= UNUSED.get(name, set())
        listed = set(config["services"][name]["environment"])
        assert listed == expected, (
            f"{name}: missing in compose {sorted(expected - listed)}, "
            f"unknown to the service {sorted(listed - expected)}"
        )


def test_healthchecks_probe_the_port_each_service_listens_on(config: dict[str, Any]) -> None:
    ports = {"rest": "HANPORT_REST_PORT", "licensing": "HANPORT_LICENSING_PORT"}
    for name in HANPORT_SERVICES:
        service = config["services"][name]
        url = service["healthcheck"]["test"][-1]
        port = str(service["environment"][ports.get(name, "HANPORT_METRICS_PORT")])
        assert url.startswith(f"http://127.0.0.1:{port}/"), (name, url)


def test_mounted_files_exist() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    for name, service in raw["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_prometheus_scrapes_every_service_on_its_metrics_port(config: dict[str, Any]) -> None:
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {
        job["job_name"]: job["dns_sd_configs"][0]
        for job in scrape["scrape_configs"]
        if "dns_sd_configs" in job
    }
    ports = {"rest": "HANPORT_REST_PORT", "licensing": "HANPORT_LICENSING_PORT"}
    for name in HANPORT_SERVICES:
        env = config["services"][name]["environment"]
        port = env[ports.get(name, "HANPORT_METRICS_PORT")]
        assert jobs[name]["names"] == [name]
        assert str(jobs[name]["port"]) == str(port), name


def test_dockerfile_is_multistage_nonroot_without_compilers() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) >= 2
    final = stages[-1]
    assert "slim" in final.splitlines()[0]
    assert not re.search(r"build-essential|gcc|apt-get install", final)
    user = re.findall(r"^USER (\S+)", final, flags=re.M)
    assert user and user[-1] not in ("root", "0")
    assert "COPY --from=build" in final


def test_configuration_docs_are_current() -> None:
    assert config_doc.stale() == [], "run: .venv/bin/python -m services.config_doc"


def test_readme_names_the_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    for command in ("docker compose up", "make test", "make run"):
        assert command in readme


def _volumes(service: dict[str, Any]) -> list[str]:
    return [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in service["volumes"]]
