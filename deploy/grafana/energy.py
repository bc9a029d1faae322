"""Build the provisioned Grafana dashboards on the long-term store the export writes
(docs/export.md): deploy/grafana/dashboards/energy-postgres.json and energy-victoria.json.

Consumes the STORES table (the data source each dashboard reads: provisioning/datasources/
stores.yaml) and one panel table per store (title, kind, unit, width, min interval, queries):
SQL on the export's PostgreSQL tables, PromQL on the series VictoriaMetrics makes of its line
protocol. Energy comes from the accounting service's intervals (`hanport_intervals`, measurement
`hanport_energy`: kWh per quarter-hour, hour, day and month by the meter's clock and time zone,
exact), power from the readings. Produces the dashboards' JSON (schemaVersion 39) that the
`monitoring` profile provisions beside hanport.json.

tests/stack/test_energy_dashboard.py checks that the files are current and fit Grafana's schema;
tests/export/test_grafana_queries.py runs every query on a real PostgreSQL and VictoriaMetrics
the export wrote to, and checks the kWh and watts they answer.

    .venv/bin/python deploy/grafana/energy.py      rewrite both files
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).parent))  # its sibling, run as a script or loaded by path
from dashboard import laid_out  # noqa: E402  (the hanport dashboard's grid layout)

DASHBOARDS = Path(__file__).parent / "dashboards"


class Store(NamedTuple):
    """A long-term store: its provisioned data source, and the dashboard reading it."""

    key: str
    name: str  # in titles
    datasource_type: str
    datasource_uid: str
    language: str  # "sql" or "promql"
    box_query: str  # the `box` variable's values (the reader's serial)


STORES: dict[str, Store] = {
    store.key: store
    for store in (
        Store("postgres", "PostgreSQL", "grafana-postgresql-datasource", "hanport-postgres", "sql",
              "SELECT box FROM hanport_intervals UNION "
              "SELECT box FROM hanport_readings WHERE time > now() - interval '1 day' ORDER BY 1"),
        Store("victoria", "VictoriaMetrics", "prometheus", "hanport-victoria", "promql",
              "label_values(hanport_ic, box)"),
    )
}  # fmt: skip


def out_path(store: Store) -> Path:
    return DASHBOARDS / f"energy-{store.key}.json"


# --- PostgreSQL: the export's tables (services/export/sinks/sql.py, sinks/intervals.py) --------
# Grafana expands `$__timeFilter(col)`, `$__timeGroupAlias(col, $__interval)` and `$box` (the
# variable: single value, quotes doubled) before the query reaches PostgreSQL. A string column
# (`meter`) makes one series per meter of each number column.


def energy_sql(resolution: str) -> str:
    """kWh imported and exported per accounting interval of `resolution` (1d, 1mo)."""
    return (
        'SELECT start AS "time", meter, import AS "imported", export AS "exported"\n'
        "FROM hanport_intervals\n"
        f"WHERE resolution = '{resolution}' AND box = '$box' AND $__timeFilter(start)\n"
        "ORDER BY 1"
    )


# The month's highest hour and quarter-hour as average power (W): the largest 1h / 15m interval
# whose start is in the accounting month (from its 1mo row to the next one), x 1000 / x 4000.
PEAKS_SQL = """SELECT m.start AS "time", m.meter,
  1000 * (SELECT max(h.import) FROM hanport_intervals h
          WHERE h.box = m.box AND h.meter = m.meter AND h.resolution = '1h'
            AND h.start >= m.start AND h.start < m.next) AS "highest hour",
  4000 * (SELECT max(q.import) FROM hanport_intervals q
          WHERE q.box = m.box AND q.meter = m.meter AND q.resolution = '15m'
            AND q.start >= m.start AND q.start < m.next) AS "highest quarter-hour"
FROM (SELECT box, meter, start,
             lead(start, 1, 'infinity') OVER (PARTITION BY box, meter ORDER BY start) AS next
      FROM hanport_intervals WHERE resolution = '1mo' AND box = '$box') m
WHERE $__timeFilter(m.start)
ORDER BY 1"""

POWER_SQL = """SELECT $__timeGroupAlias(time, $__interval), meter,
  avg(pi) AS "import", -avg(pe) AS "export"
FROM hanport_readings
WHERE box = '$box' AND $__timeFilter(time)
GROUP BY 1, 2
ORDER BY 1"""

# --- VictoriaMetrics: line protocol `measurement field=...` is the series `measurement_field` ---
# (hanport_ic, hanport_energy_import{resolution="1d"}). Steps are whole days in UTC: the
# accounting interval's point (at its start, local midnight) falls in the step that ends after
# it, one per step. An interval is written again while it runs (the export, every 60 s) and its
# energy only grows: where the store kept more than one value at its time, the largest is the
# latest.
BOX = 'box="$box"'


def interval_series(field: str, resolution: str) -> str:
    return f'hanport_energy_{field}{{{BOX},resolution="{resolution}"}}'


def interval_value(field: str, resolution: str) -> str:
    return f"max_over_time({interval_series(field, resolution)}[1d])"


def highest(resolution: str, factor: int, window: str) -> str:
    return f"max_over_time({interval_series('import', resolution)}[{window}]) * {factor}"


# (panel title, kind, unit, width, min interval ("" for Grafana's own), panel's own time range
# ("" for the dashboard's), queries: SQL text, or (PromQL, legend))
Query = str | tuple[str, str]
Panel = tuple[str, str, str, int, str, str, list[Query]]
PANELS: dict[str, list[tuple[str, list[Panel]]]] = {
    "postgres": [
        ("Energy (accounting intervals)", [
            ("kWh imported and exported per day", "barchart", "kwatth", 24, "1d", "", [
                energy_sql("1d"),
            ]),
            ("kWh imported and exported per month", "barchart", "kwatth", 12, "1d", "1y", [
                energy_sql("1mo"),
            ]),
            ("Highest hour and quarter-hour per month (average power)", "barchart", "watt", 12,
             "1d", "1y", [PEAKS_SQL]),
        ]),
        ("Power (readings)", [
            ("Import and export power", "timeseries", "watt", 24, "1m", "", [POWER_SQL]),
        ]),
    ],
    "victoria": [
        ("Energy (accounting intervals)", [
            ("kWh imported and exported per day", "barchart", "kwatth", 24, "1d", "", [
                (interval_value("import", "1d"), "{{meter}} imported"),
                (interval_value("export", "1d"), "{{meter}} exported"),
            ]),
            ("kWh imported and exported per month", "barchart", "kwatth", 12, "1d", "1y", [
                (interval_value("import", "1mo"), "{{meter}} imported"),
                (interval_value("export", "1mo"), "{{meter}} exported"),
            ]),
            ("Highest hour and quarter-hour in the time range (pick a month)", "stat", "watt", 12,
             "", "", [
                (highest("1h", 1000, "$__range"), "{{meter}} highest hour"),
                (highest("15m", 4000, "$__range"), "{{meter}} highest quarter-hour"),
            ]),
            ("Highest hour and quarter-hour per day (average power)", "timeseries", "watt", 24,
             "1d", "", [
                (highest("1h", 1000, "1d"), "{{meter}} highest hour"),
                (highest("15m", 4000, "1d"), "{{meter}} highest quarter-hour"),
            ]),
        ]),
        ("Power (readings)", [
            ("Import and export power", "timeseries", "watt", 24, "1m", "", [
                (f"avg_over_time(hanport_pi{{{BOX}}}[$__interval])", "{{meter}} import"),
                (f"-avg_over_time(hanport_pe{{{BOX}}}[$__interval])", "{{meter}} export"),
            ]),
        ]),
    ],
}  # fmt: skip


def _target(store: Store, n: int, query: Query, *, instant: bool) -> dict[str, Any]:
    target: dict[str, Any] = {
        "refId": chr(ord("A") + n),
        "datasource": {"type": store.datasource_type, "uid": store.datasource_uid},
    }
    if isinstance(query, str):
        target.update(editorMode="code", format="time_series", rawQuery=True, rawSql=query)
    else:
        expr, legend = query
        target.update(editorMode="code", expr=expr, legendFormat=legend, range=not instant,
                      instant=instant)  # fmt: skip
    return target


def _panel(store: Store, panel_id: int, panel: Panel, x: int, y: int) -> dict[str, Any]:
    title, kind, unit, width, interval, time_from, queries = panel
    body: dict[str, Any] = {
        "id": panel_id,
        "type": kind,
        "title": title,
        "datasource": {"type": store.datasource_type, "uid": store.datasource_uid},
        "gridPos": {"h": 8, "w": width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [_target(store, n, q, instant=kind == "stat") for n, q in enumerate(queries)],
    }
    if store.language == "sql":  # a series per meter and column: "main imported"
        body["fieldConfig"]["defaults"]["displayName"] = "${__field.labels.meter} ${__field.name}"
    if interval:
        body["interval"] = interval
    if time_from:
        body["timeFrom"] = time_from
    if kind == "timeseries":
        body["options"] = {"legend": {"displayMode": "table", "placement": "bottom",
                                      "calcs": ["max", "mean"]}}  # fmt: skip
    if kind == "stat":
        body["options"] = {"reduceOptions": {"calcs": ["max"], "fields": "", "values": False}}
    return body


def build(store: Store) -> dict[str, Any]:
    panels = laid_out(PANELS[store.key], functools.partial(_panel, store))
    datasource = {"type": store.datasource_type, "uid": store.datasource_uid}
    box = {
        "name": "box",
        "label": "Box",
        "description": "The reader's serial (a database the fleet hub writes holds many)",
        "type": "query",
        "datasource": datasource,
        "query": store.box_query,
        "refresh": 1,  # on dashboard load
        "includeAll": False,
        "multi": False,
        "sort": 1,
    }
    return {
        "uid": f"hanport-energy-{store.key}",
        "title": f"hanport energy ({store.name})",
        "description": f"kWh per day and month, the month's peaks and power, from {store.name} "
        "(the export: docs/export.md).",
        "tags": ["hanport", "energy", store.key],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "5m",
        "time": {"from": "now-30d", "to": "now"},
        "templating": {"list": [box]},
        "annotations": {"list": []},
        "panels": panels,
    }


def render(store: Store) -> str:
    return json.dumps(build(store), indent=2) + "\n"


def main() -> int:
    for store in STORES.values():
        out_path(store).write_text(render(store))
        print(f"wrote {out_path(store)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
