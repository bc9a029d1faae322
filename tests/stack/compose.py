"""compose.yaml as Docker Compose resolves it (Debian's `docker-compose config`), and the
command and environment each hanport service gets from it, for running it as a local process.

Consumes compose.yaml; produces the resolved configuration as a dict, and `ServiceSpec`s.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
HANPORT_SERVICES = ("ingest", "rest", "mqtt", "modbus", "licensing", "accounting")


_CACHE: dict[tuple[str, tuple[str, ...], tuple[str, ...]], str] = {}


def resolved_config(
    tmp_path: Path, env_lines: tuple[str, ...] = (), profiles: tuple[str, ...] = ()
) -> dict[str, Any]:
    """`docker-compose config` with only `env_lines` as the `.env` file (never the developer's
    own .env); fails the test with compose's message when the file is invalid. Each distinct
    call runs docker-compose once per test session (it takes a second or two)."""
    key = (COMPOSE.read_text(), env_lines, profiles)
    if key not in _CACHE:
        _CACHE[key] = _run_config(tmp_path, env_lines, profiles)
    data: dict[str, Any] = yaml.safe_load(_CACHE[key])
    return data


def _run_config(tmp_path: Path, env_lines: tuple[str, ...], profiles: tuple[str, ...]) -> str:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (.ci/run installs it)")
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{line}\n" for line in env_lines))
    command = ["docker-compose", "--env-file", str(env_file), "-f", str(COMPOSE)]
    for profile in profiles:
        command += ["--profile", profile]
    result = subprocess.run(
        [*command, "config"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    return result.stdout


@dataclass
class ServiceSpec:
    """One compose service as a local process: its argv and its HANPORT_* environment
    (variables compose passes through unset are left out)."""

    name: str
    command: list[str]
    environment: dict[str, str]
    passthrough: list[str]


def service_specs(config: dict[str, Any]) -> dict[str, ServiceSpec]:
    specs = {}
    for name in HANPORT_SERVICES:
        service = config["services"][name]
        env = service.get("environment") or {}
        specs[name] = ServiceSpec(
            name=name,
            command=list(service["command"]),
            environment={k: str(v) for k, v in env.items() if v is not None},
            passthrough=[k for k, v in env.items() if v is None],
        )
    return specs
