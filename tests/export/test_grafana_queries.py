"""Every query of the energy dashboards (deploy/grafana/dashboards/energy-*.json) on a real store
the export wrote: a PostgreSQL cluster of its own and a VictoriaMetrics, each written by the
export's own sinks (PostgresSink, InfluxSink) with the readings of two meters over three days
across a month's end, and with the accounting intervals the accounting service's own ledger
(MeterAccount) made of those readings. Each panel's answer is checked in kWh and watts.

Grafana expands its macros and variables before a query reaches the store; `expand_sql` and
`expand_promql` do that here, for the few the dashboards use, as Grafana does:
- `$__timeFilter(col)`: `col BETWEEN '<from>' AND '<to>'` (RFC 3339, UTC);
- `$__timeGroupAlias(col, $__interval)`: `floor(extract(epoch from col)/<s>)*<s> AS "time"`;
- `$__interval`: the panel's step (its min interval, as a long range gives), `$__range`: the
  time range in whole seconds (`2678400s`), both as PromQL durations;
- `$box`: the variable's single value (SQL: quotes doubled, inside the query's own quotes).
Range queries run as Grafana sends them: start and end rounded down to a multiple of the step.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from services.accounting.account import MeterAccount
from services.accounting.tariffs import rule
from services.export.intervals import interval_of
from services.export.sinks import Sink
from services.export.sinks.influx import InfluxSink
from services.export.sinks.intervals import Interval
from services.export.sinks.postgres import PostgresSink
from shared.reading import Reading

from .servers import PostgresServer, VictoriaMetricsServer
from .support import BOX

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
ZONE = ZoneInfo("Europe/Stockholm")  # the accounting's clock: UTC+1 in December and January
STEP_MS = 3 * 60_000  # a reading every 3 minutes: every power below is whole Wh per step


def local(day: str, hour: int = 0, minute: int = 0) -> datetime:
    year, month, mday = (int(part) for part in day.split("-"))
    return datetime(year, month, mday, hour, minute, tzinfo=ZONE)


def utc(day: str, hour: int = 0, minute: int = 0) -> datetime:
    year, month, mday = (int(part) for part in day.split("-"))
    return datetime(year, month, mday, hour, minute, tzinfo=UTC)


FIRST, LAST = local("2025-12-30"), local("2026-01-02")  # the readings, both ends included


def power_main(at: datetime) -> tuple[int, int]:
    """(import W, export W) of the meter `main` in the 3 minutes from `at` (local time):
    30 Dec 1 kW; 31 Dec 2 kW, 18-19 h 5 kW; 1 Jan 0.5 kW, 10-14 h exporting 1 kW but for an
    8 kW quarter-hour from 12:00."""
    t = at.astimezone(ZONE)
    if t.day == 30:
        return 1000, 0
    if t.day == 31:
        return (5000, 0) if t.hour == 18 else (2000, 0)
    if t.hour == 12 and t.minute < 15:
        return 8000, 0
    return (0, 1000) if 10 <= t.hour < 14 else (500, 0)


def power_second(_at: datetime) -> tuple[int, int]:
    """The meter `second`: 1 kW imported all the time."""
    return 1000, 0


PROFILES = {"main": (power_main, 1000.0), "second": (power_second, 500.0)}  # and first register

# What the dashboards must show: kWh per local day and month (imported, exported), the month's
# highest hour and quarter-hour as average power (W)
DAYS = {
    "main": {"2025-12-30": (24.0, 0.0), "2025-12-31": (51.0, 0.0), "2026-01-01": (12.0, 3.75)},
    "second": {"2025-12-30": (24.0, 0.0), "2025-12-31": (24.0, 0.0), "2026-01-01": (24.0, 0.0)},
}
MONTHS = {
    "main": {"2025-12": (75.0, 0.0), "2026-01": (12.0, 3.75)},
    "second": {"2025-12": (48.0, 0.0), "2026-01": (24.0, 0.0)},
}
PEAKS = {  # (highest hour, highest quarter-hour)
    "main": {"2025-12": (5000.0, 5000.0), "2026-01": (2000.0, 8000.0)},
    "second": {"2025-12": (1000.0, 1000.0), "2026-01": (1000.0, 1000.0)},
}


def readings(meter: str) -> list[Reading]:
    power, first_kwh = PROFILES[meter]
    out: list[Reading] = []
    imported_wh = exported_wh = 0
    ts = int(FIRST.timestamp() * 1000)
    while ts <= int(LAST.timestamp() * 1000):
        pi, pe = power(datetime.fromtimestamp(ts / 1000, UTC))
        out.append(
            Reading(
                ts=ts,
                received=ts + 100,
                meter=meter,
                ic=first_kwh + imported_wh / 1000,
                ec=exported_wh / 1000,
                p=[float(pi - pe), None, None, None],
                pi=[float(pi), None, None, None],
                pe=[float(pe), None, None, None],
            )
        )
        imported_wh += pi * STEP_MS // 3_600_000
        exported_wh += pe * STEP_MS // 3_600_000
        ts += STEP_MS
    return out


def accounting_intervals(meter: str, meter_readings: list[Reading]) -> list[Interval]:
    """The intervals the accounting service stores for these readings (its own ledger), as the
    export reads them (services/export/intervals.py)."""
    account = MeterAccount.new(meter, ZONE, rule("se-3-hours"))
    for reading in meter_readings:
        account.add(reading)
    return [interval_of(meter, row) for row in account.rows(set(account.ledger.changed))]


def stored() -> tuple[dict[str, list[Reading]], list[list[Interval]]]:
    """The readings per meter, and the intervals as the export writes them in turn: those of
    the first day and a half (31 Dec 12:00 local, as the accounting had them then), then all of
    them (the day and month that ran on written again with their final values)."""
    by_meter = {meter: readings(meter) for meter in PROFILES}
    noon = int(local("2025-12-31", 12).timestamp() * 1000)
    early = {m: [r for r in rs if r.ts <= noon] for m, rs in by_meter.items()}
    rounds = [
        [i for m, rs in upto.items() for i in accounting_intervals(m, rs)]
        for upto in (early, by_meter)
    ]
    return by_meter, rounds


def batches(meter_readings: list[Reading], size: int = 500) -> list[list[tuple[str, Reading]]]:
    entries = [(f"{n + 1}-0", r) for n, r in enumerate(meter_readings)]
    return [entries[n : n + size] for n in range(0, len(entries), size)]


# --- the dashboards and Grafana's expansion ----------------------------------------------------


def targets(store: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(panel title, refId) -> target, of every query panel of the store's dashboard."""
    board = json.loads((DASHBOARDS / f"energy-{store}.json").read_text())
    return {
        (panel["title"], target["refId"]): {**target, "panel": panel}
        for panel in board["panels"]
        for target in panel.get("targets", [])
    }


def box_query(store: str) -> str:
    board = json.loads((DASHBOARDS / f"energy-{store}.json").read_text())
    (variable,) = board["templating"]["list"]
    assert variable["name"] == "box"
    return str(variable["query"])


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expand_sql(sql: str, start: datetime, end: datetime, interval_s: int, box: str) -> str:
    """The SQL Grafana sends to PostgreSQL for this time range, step and box (module doc)."""
    sql = re.sub(
        r"\$__timeFilter\((\w+(?:\.\w+)?)\)",
        lambda m: f"{m[1]} BETWEEN '{rfc3339(start)}' AND '{rfc3339(end)}'",
        sql,
    )
    sql = re.sub(
        r"\$__timeGroupAlias\((\w+), *\$__interval\)",
        lambda m: f'floor(extract(epoch from {m[1]})/{interval_s})*{interval_s} AS "time"',
        sql,
    )
    sql = sql.replace("$box", box.replace("'", "''"))
    assert "$" not in sql, sql  # every macro the dashboards use is expanded
    return sql


def expand_promql(expr: str, *, interval: str = "", range_s: int = 0, box: str = BOX) -> str:
    """The PromQL Grafana sends for this step, time range and box (module doc)."""
    expr = expr.replace("$__interval", interval).replace("$__range", f"{range_s}s")
    expr = expr.replace("$box", box)
    assert "$" not in expr, expr
    return expr


def seconds(duration: str) -> int:
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[duration[-1]]


async def write_readings(sink: Sink, by_meter: dict[str, list[Reading]]) -> None:
    """Every meter's readings, in batches, each stored in full."""
    for meter_readings in by_meter.values():
        for batch in batches(meter_readings):
            result = await sink.write(batch)
            assert (result.written, result.refused) == (len(batch), [])


# --- PostgreSQL --------------------------------------------------------------------------------


async def write_postgres(server: PostgresServer) -> None:
    by_meter, rounds = stored()
    sink = PostgresSink(server.dsn, BOX)
    try:
        await write_readings(sink, by_meter)
        for intervals in rounds:
            await sink.write_intervals(intervals)
    finally:
        await sink.close()


# The read-only user docs/export.md has Grafana connect as: SELECT on the tables it reads (the
# monthly partitions are read through them), nothing else
READER_SQL = (
    "CREATE ROLE grafana LOGIN",
    "GRANT SELECT ON hanport_readings, hanport_intervals TO grafana",
)


def sql_rows(server: PostgresServer, sql: str, user: str = "grafana") -> list[tuple[Any, ...]]:
    with psycopg.connect(server.dsn.replace("hanport@", f"{user}@")) as conn:
        return conn.execute(sql.encode()).fetchall()


def by_time_and_meter(rows: list[tuple[Any, ...]]) -> dict[tuple[datetime, str], tuple[Any, ...]]:
    """Rows (time, meter, values...) keyed by (time in UTC, meter); time in order, as Grafana
    needs it for a time series."""
    times = [row[0] for row in rows]
    assert times == sorted(times)
    out = {}
    for time, meter, *values in rows:
        moment = time if isinstance(time, datetime) else datetime.fromtimestamp(float(time), UTC)
        out[(moment.astimezone(UTC), meter)] = tuple(values)
    assert len(out) == len(rows)  # one row per time and meter
    return out


def expected_energy(table: dict[str, dict[str, tuple[float, float]]], start_of: Any) -> dict:
    return {
        (start_of(key).astimezone(UTC), meter): values
        for meter, rows in table.items()
        for key, values in rows.items()
    }


def month_start(key: str) -> datetime:
    return local(f"{key}-01")


def approx(values: dict[Any, tuple[float, ...]]) -> dict[Any, Any]:
    return {key: pytest.approx(value, abs=1e-6) for key, value in values.items()}


def test_every_sql_query_answers_the_energy_and_power(postgres: PostgresServer) -> None:
    asyncio.run(write_postgres(postgres))
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        for statement in READER_SQL:
            conn.execute(statement.encode())
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the reader writes nothing
        sql_rows(postgres, "DELETE FROM hanport_intervals")
    queries = targets("postgres")
    answered: set[tuple[str, str]] = set()

    def run(
        title: str, start: datetime, end: datetime, interval_s: int = 0
    ) -> dict[tuple[datetime, str], Any]:
        """The panel's query, with $__interval = `interval_s` or the panel's min interval."""
        target = queries[(title, "A")]
        assert target["format"] == "time_series" and target["rawQuery"] is True
        interval_s = interval_s or seconds(target["panel"]["interval"])
        sql = expand_sql(target["rawSql"], start, end, interval_s, BOX)
        answered.add((title, "A"))
        return by_time_and_meter(sql_rows(postgres, sql))

    days = run("kWh imported and exported per day", utc("2025-12-29"), utc("2026-01-01", 23))
    # the accounting's days are local days: 30 Dec starts at 23:00 UTC on the 29th
    assert days == approx(expected_energy(DAYS, local))
    # a range that ends mid-day: the days that start in it
    assert set(
        run("kWh imported and exported per day", utc("2025-12-30"), utc("2025-12-31", 12))
    ) == {(local("2025-12-31").astimezone(UTC), meter) for meter in PROFILES}

    months = run("kWh imported and exported per month", utc("2025-11-01"), utc("2026-02-01"))
    assert months == approx(expected_energy(MONTHS, month_start))

    peaks = run(
        "Highest hour and quarter-hour per month (average power)",
        utc("2025-11-01"),
        utc("2026-02-01"),
    )
    assert peaks == approx(expected_energy(PEAKS, month_start))
    # a time range from mid-December on: January only
    later = run(
        "Highest hour and quarter-hour per month (average power)",
        utc("2025-12-15"),
        utc("2026-02-01"),
    )
    assert later == approx(
        expected_energy({m: {"2026-01": p["2026-01"]} for m, p in PEAKS.items()}, month_start)
    )

    # hourly averages: $__interval 1h, as Grafana makes it for a range of some weeks
    power = run("Import and export power", utc("2025-12-31"), utc("2026-01-02"), 3600)
    assert power[(local("2025-12-31", 18).astimezone(UTC), "main")] == pytest.approx((5000, -0.0))
    assert power[(local("2025-12-31", 19).astimezone(UTC), "main")] == pytest.approx((2000, 0))
    assert power[(local("2026-01-01", 11).astimezone(UTC), "main")] == pytest.approx((0, -1000))
    # 12:00-13:00: a quarter-hour at 8 kW, three exporting 1 kW
    assert power[(local("2026-01-01", 12).astimezone(UTC), "main")] == pytest.approx((2000, -750))
    assert power[(local("2026-01-01", 12).astimezone(UTC), "second")] == pytest.approx((1000, 0))
    assert min(power)[0] == utc("2025-12-31") and max(power)[0] == utc("2026-01-01", 23)
    assert len(power) == 2 * 48  # both meters, every hour of the range
    # the panel's min interval, a minute: each reading
    minutes = run("Import and export power", utc("2026-01-01", 11), utc("2026-01-01", 12))
    assert minutes[(local("2026-01-01", 12, 3).astimezone(UTC), "main")] == (8000, -0.0)
    assert minutes[(local("2026-01-01", 12, 15).astimezone(UTC), "main")] == (0, -1000)
    assert len(minutes) == 2 * 21  # 12:00 .. 13:00 local, both ends

    assert sql_rows(postgres, box_query("postgres")) == [(BOX,)]
    assert answered == set(queries), f"queries not run here: {set(queries) - answered}"


# --- VictoriaMetrics ---------------------------------------------------------------------------


async def write_victoria(server: VictoriaMetricsServer, rounds: list[list[Interval]]) -> None:
    """The readings, then each round of intervals, flushed from VictoriaMetrics' memory after
    each as the export's 60 s between rounds would have it."""
    by_meter, _rounds = stored()
    sink = InfluxSink(server.url, BOX)
    try:
        await write_readings(sink, by_meter)
        for intervals in rounds:
            await sink.write_intervals(intervals)
            flush = await sink._http().get(f"{server.url}/internal/force_flush")
            flush.raise_for_status()
    finally:
        await sink.close()


def promql(server: VictoriaMetricsServer, expr: str, **params: Any) -> list[dict[str, Any]]:
    path = "query_range" if "step" in params else "query"
    answer = httpx.get(f"{server.url}/api/v1/{path}", params={"query": expr, **params}, timeout=30)
    assert answer.status_code == 200, f"{expr}: {answer.text}"
    body = answer.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{(\w+)\}\}", lambda m: labels.get(m[1], ""), template)


class Panels:
    """The VictoriaMetrics dashboard's panels queried as Grafana queries them; `answered`
    collects the (panel, refId) of every query run."""

    def __init__(self, server: VictoriaMetricsServer) -> None:
        self.server = server
        self.queries = targets("victoria")
        self.answered: set[tuple[str, str]] = set()

    def _targets(self, title: str) -> list[dict[str, Any]]:
        found = [t for (panel, _ref), t in self.queries.items() if panel == title]
        assert found, title
        for target in found:
            self.answered.add((title, target["refId"]))
        return found

    def over_range(
        self, title: str, start: datetime, end: datetime, interval: str = ""
    ) -> dict[str, dict[datetime, float]]:
        """Every query of the panel as a range query with the step `interval` (else the panel's
        min interval): legend -> {step time (UTC): value}."""
        out: dict[str, dict[datetime, float]] = {}
        for target in self._targets(title):
            step = seconds(interval or target["panel"]["interval"])
            first, last = int(start.timestamp()), int(end.timestamp())
            params = {"start": first - first % step, "end": last - last % step, "step": step}
            expr = expand_promql(target["expr"], interval=f"{step}s")
            for series in promql(self.server, expr, **params):
                name = legend(target["legendFormat"], series["metric"])
                assert name not in out, name
                out[name] = {datetime.fromtimestamp(t, UTC): float(v) for t, v in series["values"]}
        return out

    def instant(self, title: str, start: datetime, end: datetime) -> dict[str, float]:
        """Every query of the panel as Grafana's instant query at the end of the time range."""
        out: dict[str, float] = {}
        for target in self._targets(title):
            assert target["instant"] is True
            range_s = round((end - start).total_seconds())
            expr = expand_promql(target["expr"], range_s=range_s)
            for series in promql(self.server, expr, time=end.timestamp()):
                out[legend(target["legendFormat"], series["metric"])] = float(series["value"][1])
        return out

    def assert_days_and_months(self) -> None:
        # kWh per day: the step at midnight UTC holds the local day that began an hour before
        days = self.over_range(
            "kWh imported and exported per day", utc("2025-12-30"), utc("2026-01-01")
        )
        for meter, rows in DAYS.items():
            for column, direction in enumerate(("imported", "exported")):
                assert days[f"{meter} {direction}"] == pytest.approx(
                    {utc(day): kwh[column] for day, kwh in rows.items()}
                ), (meter, direction)
        months = self.over_range(
            "kWh imported and exported per month", utc("2025-11-15"), utc("2026-01-20")
        )
        for meter, rows in MONTHS.items():
            for column, direction in enumerate(("imported", "exported")):
                assert months[f"{meter} {direction}"] == pytest.approx(
                    {utc(f"{month}-01"): kwh[column] for month, kwh in rows.items()}
                ), (meter, direction)


def test_every_promql_query_answers_the_energy_and_power(
    victoria: VictoriaMetricsServer,
) -> None:
    """On VictoriaMetrics as docs/export.md sets it up (deduplicating), the intervals written
    once, as the export's first round after a start writes every stored one."""
    _by_meter, rounds = stored()
    asyncio.run(write_victoria(victoria, rounds[-1:]))
    panels = Panels(victoria)
    over_range, instant = panels.over_range, panels.instant
    panels.assert_days_and_months()

    # peaks per day: days in UTC (the steps), so 31 Dec 00:00-01:00 local counts to the 30th
    daily = over_range(
        "Highest hour and quarter-hour per day (average power)",
        utc("2025-12-30"),
        utc("2026-01-02"),
    )
    assert daily["main highest hour"] == pytest.approx(
        {
            utc("2025-12-30"): 1000.0,  # 30 Dec 00:00 local (29 Dec 23:00 UTC)
            utc("2025-12-31"): 2000.0,  # 30 Dec 01:00 .. 31 Dec 00:00 local: the last hour at 2 kW
            utc("2026-01-01"): 5000.0,
            utc("2026-01-02"): 2000.0,
        }
    )
    assert daily["main highest quarter-hour"][utc("2026-01-02")] == pytest.approx(8000.0)
    assert set(daily["second highest hour"].values()) == {1000.0}

    # the month's peaks: pick the month in the time picker (Grafana's "Last month" and the like)
    for month, end in (("2025-12", local("2026-01-01")), ("2026-01", local("2026-02-01"))):
        peaks = instant(
            "Highest hour and quarter-hour in the time range (pick a month)",
            month_start(month),
            end - timedelta(milliseconds=1),
        )
        assert peaks == pytest.approx(
            {
                f"{meter} highest {what}": by_month[month][n]
                for meter, by_month in PEAKS.items()
                for n, what in enumerate(("hour", "quarter-hour"))
            }
        ), month

    # the panel's min interval, a minute: each reading at its time (the steps without one empty)
    power = over_range("Import and export power", utc("2025-12-31", 16), utc("2025-12-31", 19))
    assert power["main import"][utc("2025-12-31", 16, 57)] == 2000.0  # 17:57 local
    assert power["main import"][utc("2025-12-31", 17)] == 5000.0  # 18:00 local: 18-19 h at 5 kW
    assert power["main import"][utc("2025-12-31", 18)] == 2000.0
    assert len(power["main import"]) == 3 * 20 + 1  # a reading every 3 minutes
    assert set(power["main export"].values()) == {0.0}
    assert set(power["second import"].values()) == {1000.0}
    # hourly: $__interval 1h, as Grafana makes it for a range of some weeks; each step averages
    # the readings of the hour before it, its start left out (19:00 local: 18:03 .. 19:00)
    hourly = over_range("Import and export power", utc("2025-12-31"), utc("2026-01-02"), "1h")
    assert hourly["main import"][utc("2025-12-31", 18)] == pytest.approx((19 * 5000 + 2000) / 20)
    # 13:00 local: 12:03 .. 12:12 at 8 kW, 12:15 .. 13:00 exporting 1 kW
    assert hourly["main import"][utc("2026-01-01", 12)] == pytest.approx(4 * 8000 / 20)
    assert hourly["main export"][utc("2026-01-01", 12)] == pytest.approx(-16 * 1000 / 20)
    assert hourly["second import"][utc("2026-01-01", 12)] == 1000.0

    # the `box` variable: Grafana asks label_values(metric, box) as /api/v1/label/box/values
    variable = re.fullmatch(r"label_values\((\w+), box\)", box_query("victoria"))
    assert variable is not None
    values = httpx.get(
        f"{victoria.url}/api/v1/label/box/values", params={"match[]": variable[1]}, timeout=10
    )
    assert values.json()["data"] == [BOX]
    assert panels.answered == set(panels.queries), set(panels.queries) - panels.answered


class VictoriaKeepingEveryWrite(VictoriaMetricsServer):
    """VictoriaMetrics without deduplication: each value written at one time is kept."""

    def command(self) -> list[str]:
        return [arg for arg in super().command() if not arg.startswith("-dedup.")]


def test_promql_energy_shows_an_interval_written_again_at_its_latest(tmp_path: Path) -> None:
    """The day and the month that ran on, written at noon on 31 Dec and again at the end: the
    panels show the latest (the largest; an interval only grows) where the store kept both."""
    server = VictoriaKeepingEveryWrite(tmp_path / "victoria")
    server.start()
    try:
        _by_meter, rounds = stored()
        asyncio.run(write_victoria(server, rounds))
        (kept,) = server.samples('hanport_energy_import{meter="second",resolution="1d"}')
        dec31 = int(local("2025-12-31").timestamp() * 1000)
        at = [v for ts, v in zip(kept["timestamps"], kept["values"], strict=True) if ts == dec31]
        assert sorted(at) == [12.0, 24.0]  # 31 Dec: 12 kWh at noon, then 24
        Panels(server).assert_days_and_months()
    finally:
        server.stop()
