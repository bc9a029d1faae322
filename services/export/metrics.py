"""Prometheus metrics of the export service (served by `shared.metrics.serve_metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WRITTEN = Counter(
    "hanport_export_readings_written_total",
    "Readings a sink confirmed (HTTP 2xx, COMMIT), by sink.",
    ["sink"],
)
DEAD = Counter(
    "hanport_export_readings_refused_total",
    "Readings a sink refused for good, put on the dead-letter stream, by sink.",
    ["sink"],
)
FAILURES = Counter(
    "hanport_export_write_failures_total",
    "Writes the sink could not take now (down, 5xx, 429, a wrong token), tried again, by sink.",
    ["sink"],
)
REDIS_ERRORS = Counter(
    "hanport_export_redis_errors_total",
    "Redis commands that failed (read, acknowledge, dead letter), waited out, by sink.",
    ["sink"],
)
LAG_ENTRIES = Gauge(
    "hanport_export_lag_entries",
    "Readings the sink has not confirmed yet: pending plus not yet delivered, by sink and stream.",
    ["sink", "stream"],
)
LAG_SECONDS = Gauge(
    "hanport_export_lag_seconds",
    "Age of the oldest reading the sink has not confirmed (0 when none), by sink and stream.",
    ["sink", "stream"],
)
SINK_UP = Gauge("hanport_export_sink_up", "1 while the sink's last write succeeded.", ["sink"])
WRITE_SECONDS = Histogram(
    "hanport_export_write_seconds",
    "Time of one batch write, by sink.",
    ["sink"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INTERVALS = Counter(
    "hanport_export_intervals_written_total",
    "Accounting intervals the sink confirmed (each change of an interval counts), by sink.",
    ["sink"],
)
LICENSED = Gauge(
    "hanport_export_licensed",
    "1 while a license grants the export and it writes; 0 while it is held off for lack of one "
    "(nothing is read or acknowledged: the readings wait in Redis; the log says why).",
)
