"""What the monitoring profile exposes (docs/security.md): Prometheus and Grafana published on
the host's loopback unless MONITORING_ADDRESS says otherwise, Grafana without anonymous viewing
and refusing to start without an admin password of the user's own (deploy/grafana/start.sh)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from tests.stack.compose import ROOT, resolved_config

START = ROOT / "deploy" / "grafana" / "start.sh"
MONITORING = ("monitoring",)


def published(service: dict[str, Any]) -> list[str]:
    """The service's published ports as docker-compose prints them: `address:host:container`."""
    return [str(port) for port in service["ports"]]


def test_monitoring_is_published_on_loopback_by_default(tmp_path: Path) -> None:
    services = resolved_config(tmp_path, profiles=MONITORING)["services"]
    assert published(services["prometheus"]) == ["127.0.0.1:9090:9090/tcp"]
    assert published(services["grafana"]) == ["127.0.0.1:3000:3000/tcp"]


def test_monitoring_address_moves_both(tmp_path: Path) -> None:
    lines = ("MONITORING_ADDRESS=0.0.0.0", "GRAFANA_PORT=3300")
    services = resolved_config(tmp_path, lines, profiles=MONITORING)["services"]
    assert published(services["prometheus"]) == ["0.0.0.0:9090:9090/tcp"]
    assert published(services["grafana"]) == ["0.0.0.0:3300:3000/tcp"]


def test_grafana_has_no_default_password_and_no_anonymous_viewing(tmp_path: Path) -> None:
    grafana = resolved_config(tmp_path, profiles=MONITORING)["services"]["grafana"]
    environment = grafana["environment"]
    assert environment["GF_SECURITY_ADMIN_PASSWORD"] == ""
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["entrypoint"] == ["/bin/sh", "/etc/grafana/start.sh"]
    assert f"{START}:/etc/grafana/start.sh:ro" in grafana["volumes"]

    chosen = ("GRAFANA_ADMIN_PASSWORD=s3cret-of-mine", "GRAFANA_ANONYMOUS_VIEWING=true")
    environment = resolved_config(tmp_path, chosen, profiles=MONITORING)["services"]["grafana"][
        "environment"
    ]
    assert environment["GF_SECURITY_ADMIN_PASSWORD"] == "s3cret-of-mine"
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "true"


def start(password: str | None) -> subprocess.CompletedProcess[str]:
    """deploy/grafana/start.sh with Grafana's own entry point replaced by `echo`."""
    env = {"PATH": os.environ["PATH"], "GRAFANA_RUN": "echo"}
    if password is not None:
        env["GF_SECURITY_ADMIN_PASSWORD"] = password
    return subprocess.run(
        ["/bin/sh", str(START), "--homepath=/usr/share/grafana"],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
    )


def test_grafana_refuses_to_start_without_a_password_of_its_own() -> None:
    for password in (None, "", "admin"):
        refused = start(password)
        assert refused.returncode == 1, password
        assert refused.stdout == ""
        assert refused.stderr.startswith("grafana: set GRAFANA_ADMIN_PASSWORD in .env"), password
        assert "docs/security.md" in refused.stderr
    started = start("s3cret-of-mine")
    assert started.returncode == 0 and started.stderr == ""
    assert started.stdout == "--homepath=/usr/share/grafana\n"  # Grafana's arguments passed on
