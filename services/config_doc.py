"""Generate docs/configuration.md and .env.example from the settings classes.

Consumes `shared/settings.py` (`CommonSettings`) and every `services/<name>/settings.py` (the
`CommonSettings` subclass defined there); produces the full settings table (variable, default,
meaning, per service) and the commented `.env.example` for Docker Compose. `--check` exits 1
when either file is out of date (a test runs it), so docs never drift from the code.

    python -m services.config_doc           rewrite both files
    python -m services.config_doc --check   exit 1 if either is stale
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from shared.settings import ENV_PREFIX, CommonSettings

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"

# Services in the order the docs list them; a service whose settings module is missing is
# left out (so the docs build while services are being added).
SERVICES = (
    "ingest", "rest", "mqtt", "modbus", "licensing", "accounting", "export", "uplink", "hub",
    "emulate",
)  # fmt: skip

# Variables only compose.yaml reads (host side), not any service: name, default, meaning.
COMPOSE_ONLY: tuple[tuple[str, str, str], ...] = (
    ("HANPORT_DEVICE", "", "Host path of the meter's serial adapter, mapped into `ingest` at the same path (e.g. `/dev/ttyUSB0`; also set HANPORT_SOURCE to it)."),
    ("HANPORT_IMAGE", "hanport:latest", "Image every hanport service runs (built from the Dockerfile when missing)."),
    ("HANPORT_HTTP_PORT", "8080", "Host port of the `proxy` in front of the REST replicas (live page, `/meter`)."),
    ("HANPORT_MODBUS_HOST_PORT", "502", "Host port of Modbus TCP (502 inside the container)."),
    ("HANPORT_LICENSING_HOST_PORT", "8090", "Host port of the licensing API (`/license`)."),
    ("HANPORT_BROKER_PORT", "1883", "Host port of the `broker` profile's mosquitto."),
    ("MONITORING_ADDRESS", "127.0.0.1", "Host address Prometheus and Grafana are published on (`monitoring` profile); `0.0.0.0` for every address (docs/security.md)."),
    ("PROMETHEUS_PORT", "9090", "Host port of Prometheus (`monitoring` profile)."),
    ("GRAFANA_PORT", "3000", "Host port of Grafana (`monitoring` profile)."),
    ("GRAFANA_ADMIN_PASSWORD", "", "Grafana's admin password (`monitoring` profile), required: Grafana refuses to start without one, or with `admin`. Applied when Grafana's data volume is first created."),
    ("GRAFANA_ANONYMOUS_VIEWING", "false", "`true` lets visitors view Grafana's dashboards without logging in (`monitoring` profile)."),
    ("GRAFANA_POSTGRES_HOST", "postgres:5432", "`host:port` of the PostgreSQL the export writes, for Grafana's `hanport PostgreSQL` data source and the energy dashboard on it (`monitoring` profile, docs/export.md)."),
    ("GRAFANA_POSTGRES_DATABASE", "hanport", "Database of that data source."),
    ("GRAFANA_POSTGRES_USER", "grafana", "User of that data source: one that may only read the export's tables (docs/export.md)."),
    ("GRAFANA_POSTGRES_PASSWORD", "", "Password of that user."),
    ("GRAFANA_POSTGRES_SSLMODE", "disable", "TLS to that PostgreSQL: `disable`, `require`, `verify-ca` or `verify-full`."),
    ("GRAFANA_VICTORIA_URL", "http://victoria:8428", "URL of the VictoriaMetrics the export writes (or a Prometheus-compatible query URL holding the same series), for Grafana's `hanport VictoriaMetrics` data source and the energy dashboard on it (`monitoring` profile)."),
)  # fmt: skip


@dataclass(frozen=True)
class Setting:
    variable: str
    default: str
    meaning: str


def settings_classes() -> dict[str, type[CommonSettings]]:
    """`common` plus each service whose settings module exists, in SERVICES order."""
    found: dict[str, type[CommonSettings]] = {"common": CommonSettings}
    for name in SERVICES:
        if not (ROOT / "services" / name / "settings.py").exists():
            continue
        module = importlib.import_module(f"services.{name}.settings")
        for _attr, value in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(value, CommonSettings)
                and value is not CommonSettings
                and value.__module__ == module.__name__
            ):
                found[name] = value
                break
    return found


def compose_fixed() -> dict[str, dict[str, str]]:
    """Variables compose.yaml sets to a fixed value inside a container: variable -> {service:
    value}. (A variable listed without a value is passed through from `.env`.)"""
    data = yaml.safe_load(COMPOSE.read_text()) if COMPOSE.exists() else {}
    fixed: dict[str, dict[str, str]] = {}
    for service, spec in (data.get("services") or {}).items():
        env = spec.get("environment") or {}
        if isinstance(env, dict):
            for variable, value in env.items():
                if value is not None and variable.startswith(ENV_PREFIX):
                    fixed.setdefault(variable, {})[service] = str(value)
    return fixed


def env_name(name: str, field: FieldInfo) -> str:
    """The variable a field is read from: its (first) validation alias, else prefix + name."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0].upper()
    if isinstance(alias, str):
        return alias.upper()
    return f"{ENV_PREFIX}{name}".upper()


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "(computed)"
    value = field.default
    if value is PydanticUndefined or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _allowed(field: FieldInfo) -> str:
    annotation = field.annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return "One of: " + ", ".join(f"`{a}`" for a in args) + "."
    return ""


def settings_of(cls: type[CommonSettings], skip_common: bool) -> list[Setting]:
    """The settings `cls` reads; with `skip_common`, those it inherits from CommonSettings
    unchanged are left out."""
    common = CommonSettings.model_fields
    rows = []
    for name, field in cls.model_fields.items():
        if skip_common and name in common and _default(common[name]) == _default(field):
            continue
        meaning = " ".join(p for p in (field.description or "", _allowed(field)) if p)
        rows.append(Setting(env_name(name, field), _default(field), meaning))
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_doc(classes: dict[str, type[CommonSettings]]) -> str:
    out = [
        "# Configuration",
        "",
        "<!-- Generated by `python -m services.config_doc` from the settings classes; do not "
        "edit. -->",
        "",
        "Every setting is an environment variable with the prefix `HANPORT_` (a `.env` file in "
        "the working directory works too). The same names apply to `make run`, systemd "
        "(`/etc/hanport/hanport.env`) and Docker Compose (`.env` beside `compose.yaml`; "
        "`.env.example` lists them all). An empty value means the default. A bad value stops "
        "the service at start with one line naming the variable, the value and what is "
        "allowed.",
        "",
    ]
    for name, cls in classes.items():
        title = "Every service" if name == "common" else f"`{name}`"
        out += [f"## {title}", ""]
        if name != "common":
            out += [f"`{cls.__module__}.{cls.__name__}`; also reads every setting above.", ""]
        out += ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
        for s in settings_of(cls, skip_common=name != "common"):
            default = f"`{s.default}`" if s.default else ""
            out.append(f"| `{s.variable}` | {_cell(default)} | {_cell(s.meaning)} |")
        out.append("")
    out += [
        "## Docker Compose only",
        "",
        "Read by `compose.yaml` itself (host side), not by the services.",
        "",
        "| Variable | Default | Meaning |",
        "| --- | --- | --- |",
    ]
    for variable, default, meaning in COMPOSE_ONLY:
        shown = f"`{default}`" if default else ""
        out.append(f"| `{variable}` | {shown} | {_cell(meaning)} |")
    out.append("")
    return "\n".join(out)


def _wrap(text: str, width: int = 96) -> list[str]:
    lines: list[str] = []
    line = "#"
    for word in text.split():
        if len(line) + 1 + len(word) > width and line != "#":
            lines.append(line)
            line = "#"
        line += " " + word
    if line != "#":
        lines.append(line)
    return lines


def render_env(classes: dict[str, type[CommonSettings]]) -> str:
    fixed = compose_fixed()
    out = [
        "# hanport settings for `docker compose up`: copy to `.env` and uncomment what you change.",
        "# Generated by `python -m services.config_doc`; the full table is docs/configuration.md.",
        "# An empty or commented-out value means the default shown. compose.yaml fixes the",
        "# in-container addresses (Redis URL, ports); the host side is set at the end.",
        "#",
        "# A real meter instead of the simulator (USB adapter; the line settings are detected):",
        "#   HANPORT_DEVICE=/dev/ttyUSB0",
        "#   HANPORT_SOURCE=/dev/ttyUSB0",
        "# or a network P1 dongle / ser2net:  HANPORT_SOURCE=tcp://192.168.1.50:2000",
        "",
    ]
    for name, cls in classes.items():
        title = "every service" if name == "common" else name
        out += [f"# ---- {title} " + "-" * (88 - len(title)), ""]
        for s in settings_of(cls, skip_common=name != "common"):
            out += _wrap(s.meaning)
            if s.variable in fixed:
                values = sorted(set(fixed[s.variable].values()))
                where = (
                    f"`{values[0]}`"
                    if len(values) == 1
                    else ", ".join(f"{k} `{v}`" for k, v in sorted(fixed[s.variable].items()))
                )
                out += _wrap(f"(compose.yaml sets this inside the containers: {where}.)")
            out += [f"# {s.variable}={s.default}", ""]
    out += ["# ---- compose.yaml (host side) " + "-" * 66, ""]
    for variable, default, meaning in COMPOSE_ONLY:
        out += _wrap(meaning)
        out += [f"# {variable}={default}", ""]
    return "\n".join(out).rstrip() + "\n"


def outputs() -> dict[Path, str]:
    classes = settings_classes()
    return {DOC: render_doc(classes), ENV_EXAMPLE: render_env(classes)}


def stale() -> list[Path]:
    """Files whose content differs from what the settings classes generate."""
    return [
        path for path, text in outputs().items() if not path.exists() or path.read_text() != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.config_doc", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    if args.check:
        old = stale()
        for path in old:
            print(
                f"{path.relative_to(ROOT)} is out of date: run python -m services.config_doc",
                file=sys.stderr,
            )
        return 1 if old else 0
    for path, text in outputs().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
