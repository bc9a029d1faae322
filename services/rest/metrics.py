"""The REST service's own Prometheus metrics (the shared Redis/stream ones are in shared.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

METER_REQUESTS = Counter(
    "hanport_rest_meter_requests_total",
    "GET /meter and /meter/data answers, by status code.",
    ["status"],
)
METER_OK = METER_REQUESTS.labels("200")
METER_STALE = METER_REQUESTS.labels("503")
REFUSED = Counter(
    "hanport_rest_refused_total",
    "Requests refused by auth or licensing, by reason (unauthorized, forbidden, unlicensed).",
    ["reason"],
)
BAD_REQUESTS = Counter(
    "hanport_rest_bad_requests_total", "Requests answered 422 because of bad parameters."
)
SSE_CLIENTS = Gauge("hanport_rest_sse_clients", "Connected /events clients.")
WS_CLIENTS = Gauge("hanport_rest_ws_clients", "Connected /ws clients.")
SLOW_CLIENTS = Counter(
    "hanport_rest_slow_clients_dropped_total",
    "SSE/WebSocket clients disconnected because they fell too far behind.",
)
HEAVY_READS = Gauge(
    "hanport_rest_heavy_reads", "History answers and /events replays reading Redis right now."
)
HEAVY_READS_WAITING = Gauge(
    "hanport_rest_heavy_reads_waiting", "History answers and /events replays waiting for a slot."
)
HEAVY_READS_BUSY = Counter(
    "hanport_rest_heavy_reads_busy_total",
    "Heavy reads refused with 503 because every slot was taken and the line was full, by kind.",
    ["kind"],
)
METERS_HELD = Gauge("hanport_rest_meters", "Meters this replica holds a reading of.")
METERS_FORGOTTEN = Counter(
    "hanport_rest_meters_forgotten_total",
    "Meters forgotten to keep at most MAX_METERS: the one longest silent among those the "
    "directory does not list (it comes back with its next reading).",
)
