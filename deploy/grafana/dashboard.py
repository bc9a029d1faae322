"""Build the provisioned Grafana dashboard deploy/grafana/dashboards/hanport.json.

Consumes the PANELS table below (title, kind, unit, width, PromQL queries with legends), whose
meter panels name their metrics, labels and units through the field catalogue (shared/fields.py);
produces the dashboard JSON in Grafana's schema (schemaVersion 39) that the `monitoring`
profile provisions. tests/stack/test_dashboard.py checks that the file is current and that every
query names a metric some hanport service exports.

    .venv/bin/python deploy/grafana/dashboard.py      rewrite hanport.json
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from shared.fields import BY_KEY, Series

OUT = Path(__file__).parent / "dashboards" / "hanport.json"
DATASOURCE = {"type": "prometheus", "uid": "hanport-prometheus"}

# Grafana's unit ids for the units of the reading (shared/reading.py)
GRAFANA_UNITS = {"W": "watt", "var": "var", "V": "volt", "A": "amp", "kWh": "kwatth", "Hz": "hertz"}


def _gauge(key: str) -> Series:
    gauge = BY_KEY[key].gauge
    if gauge is None:
        raise ValueError(f"the reading's {key!r} has no Prometheus gauge (shared/fields.py)")
    return gauge


def metric(key: str) -> str:
    """The Prometheus metric the reading's value `key` is a series of (all its series)."""
    return _gauge(key).metric.name


def series(key: str, phase: str) -> str:
    """PromQL for the series of `key` in `phase`: `total`, `l1`, or a regex (`l[123]`)."""
    gauge = _gauge(key)
    fixed = zip(gauge.metric.labels, gauge.labels, strict=False)  # `phase` is the last label
    matchers = [f'{name}="{value}"' for name, value in fixed]
    matchers.append(f'phase=~"{phase}"' if "[" in phase else f'phase="{phase}"')
    return f"{gauge.metric.name}{{{','.join(matchers)}}}"


def unit(key: str) -> str:
    """Grafana's unit id for the reading's value `key`."""
    return GRAFANA_UNITS[BY_KEY[key].unit]


# (row title, [(panel title, kind, unit, width, [(expr, legend), ...]), ...]): the meter's
# metrics, labels and units come from the field catalogue (shared/fields.py)
Query = tuple[str, str]
Panel = tuple[str, str, str, int, list[Query]]
PANELS: list[tuple[str, list[Panel]]] = [
    ("Meter", [
        ("Net power now (import +)", "stat", unit("p"), 6, [
            (series("p", "total"), "net"),
        ]),
        ("Import and export power", "timeseries", unit("pi"), 18, [
            (series("pi", "total"), "import"),
            ("-" + series("pe", "total"), "export"),
        ]),
        ("Power per phase (net)", "timeseries", unit("p"), 8, [
            (series("p", "l[123]"), "{{phase}}"),
        ]),
        ("Voltage per phase", "timeseries", unit("u"), 8, [
            (metric("u"), "{{phase}}"),
        ]),
        ("Current per phase", "timeseries", unit("i"), 8, [
            (metric("i"), "{{phase}}"),
        ]),
        ("Energy per hour", "barchart", unit("ic"), 12, [
            (f"delta({metric('ic')}[1h])", "{{direction}}"),
        ]),
        ("Energy per day", "barchart", unit("ic"), 12, [
            (f"delta({metric('ic')}[1d])", "{{direction}}"),
        ]),
        ("Energy registers", "stat", unit("ic"), 12, [
            (metric("ic"), "{{direction}}"),
        ]),
        ("Grid frequency", "timeseries", unit("frequency"), 12, [
            (metric("frequency"), "frequency"),
        ]),
    ]),
    ("Pipeline health", [
        ("Telegrams by result", "timeseries", "reqps", 12, [
            ("sum by (result) (rate(hanport_ingest_telegrams_total[5m]))", "{{result}}"),
        ]),
        ("Ingest: publish buffer and drops", "timeseries", "short", 12, [
            ("hanport_ingest_buffer_depth", "readings waiting for Redis"),
            ("increase(hanport_ingest_dropped_readings_total[5m])", "dropped (5 min)"),
            ("hanport_ingest_source_connected", "meter source connected"),
        ]),
        ("Stream lag per consumer (age of the newest reading seen)", "timeseries", "s", 12, [
            ("time() - hanport_last_reading_timestamp_seconds", "{{job}} {{instance}}"),
        ]),
        ("MQTT backlog", "timeseries", "short", 8, [
            ("sum(hanport_mqtt_backlog_entries)", "pending readings"),
        ]),
        ("MQTT oldest unconfirmed reading", "timeseries", "s", 8, [
            ("max(hanport_mqtt_backlog_oldest_age_seconds)", "age"),
        ]),
        ("MQTT messages", "timeseries", "reqps", 8, [
            ("sum by (kind) (rate(hanport_mqtt_messages_published_total[5m]))", "published {{kind}}"),
            ("sum by (kind) (rate(hanport_mqtt_messages_failed_total[5m]))", "failed {{kind}}"),
        ]),
        ("Modbus requests", "timeseries", "reqps", 8, [
            ("sum by (function, result) (rate(hanport_modbus_requests_total[5m]))", "{{function}} {{result}}"),
        ]),
        ("Modbus clients and data age", "timeseries", "short", 8, [
            ("hanport_modbus_clients", "clients"),
            ("hanport_modbus_data_age_seconds", "data age (s)"),
        ]),
        ("REST push clients", "timeseries", "short", 8, [
            ("sum(hanport_rest_sse_clients)", "SSE"),
            ("sum(hanport_rest_ws_clients)", "WebSocket"),
        ]),
        ("Redis connected", "stat", "short", 12, [
            ("hanport_redis_connected", "{{job}} {{instance}}"),
        ]),
        ("Licensed features", "stat", "short", 12, [
            ("hanport_license_feature_granted", "{{feature}}"),
        ]),
    ]),
    # the accounting service (docs/accounting.md), per meter
    ("Energy accounting", [
        ("Capacity value this month and billed", "stat", "kwatt", 8, [
            ("hanport_accounting_month_value_kw", "{{meter}} month"),
            ("hanport_accounting_billed_kw", "{{meter}} billed"),
        ]),
        ("Headroom for the rest of the window", "timeseries", "watt", 8, [
            ("hanport_accounting_headroom_w", "{{meter}}"),
        ]),
        ("Tariff window: projection and step", "timeseries", "kwatt", 8, [
            ("hanport_accounting_projected_kw", "{{meter}} projected"),
            ("hanport_accounting_step", "{{meter}} step"),
        ]),
        ("Energy imported this hour and today (accounting)", "timeseries", "kwatth", 12, [
            ('hanport_accounting_energy_kwh{register="import",resolution="1h"}', "{{meter}} this hour"),
            ('hanport_accounting_energy_kwh{register="import",resolution="1d"}', "{{meter}} today"),
        ]),
        ("Register resets and clock jumps", "timeseries", "short", 12, [
            ("sum by (meter, kind) (increase(hanport_accounting_events_total[1h]))", "{{meter}} {{kind}}"),
        ]),
    ]),
]  # fmt: skip


def _panel(panel_id: int, panel: Panel, x: int, y: int) -> dict[str, Any]:
    title, kind, unit, width, queries = panel
    body: dict[str, Any] = {
        "id": panel_id,
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [
            {
                "refId": chr(ord("A") + n),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
                **({"interval": "1h"} if "[1h]" in expr else {}),
                **({"interval": "1d"} if "[1d]" in expr else {}),
            }
            for n, (expr, legend) in enumerate(queries)
        ],
    }
    if kind == "timeseries":
        body["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}}
    return body


P = TypeVar("P", bound=tuple[Any, ...])  # a panel's row in a table: its width 4th


def laid_out(
    rows: list[tuple[str, list[P]]], make: Callable[[int, P, int, int], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Rows of panels on Grafana's 24-column grid: a row header each, then its panels left to
    right, 8 high, wrapping; `make(id, panel, x, y)` makes each panel (deploy/grafana/energy.py
    lays its own out with this too)."""
    panels: list[dict[str, Any]] = []
    panel_id, y = 1, 0
    for row_title, row in rows:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id, y, x = panel_id + 1, y + 1, 0
        for panel in row:
            if x + panel[3] > 24:
                x, y = 0, y + 8
            panels.append(make(panel_id, panel, x, y))
            panel_id, x = panel_id + 1, x + panel[3]
        y += 8
    return panels


def build() -> dict[str, Any]:
    panels = laid_out(PANELS, _panel)
    return {
        "uid": "hanport",
        "title": "hanport",
        "description": "The meter's values and the health of the hanport pipeline.",
        "tags": ["hanport", "energy"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "10s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main() -> int:
    OUT.write_text(render())
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
