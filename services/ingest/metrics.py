"""The ingest service's Prometheus metrics (served by `shared.metrics.serve_metrics`).

The shared ones (`hanport_redis_connected`, `hanport_redis_reconnects_total`,
`hanport_last_reading_timestamp_seconds`) live in `shared/metrics.py`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TELEGRAMS = Counter(
    "hanport_ingest_telegrams_total",
    "Telegrams/frames seen, by result: ok, crc_error, parse_error, truncated, overflow, ...",
    ["result"],
)
BYTES_READ = Counter("hanport_ingest_bytes_read_total", "Bytes read from the meter source.")
SKIPPED_BYTES = Counter(
    "hanport_ingest_skipped_bytes_total", "Bytes outside any telegram (line noise), skipped."
)
DECODE_SECONDS = Histogram(
    "hanport_ingest_decode_seconds",
    "Time to decode one telegram.",
    buckets=(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.025, 0.1),
)
PUBLISH_SECONDS = Histogram(
    "hanport_ingest_publish_seconds",
    "From receiving a telegram to its reading stored in Redis (includes time buffered).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600),
)
PUBLISHED = Counter("hanport_ingest_published_total", "Readings stored in the readings stream.")
BUFFER_DEPTH = Gauge("hanport_ingest_buffer_depth", "Readings waiting to be published.")
BUFFER_BYTES = Gauge("hanport_ingest_buffer_bytes", "Approximate bytes waiting to be published.")
DROPPED = Counter(
    "hanport_ingest_dropped_readings_total",
    "Readings dropped, oldest first, because the buffer was full during a Redis outage.",
)
SOURCE_RECONNECTS = Counter(
    "hanport_ingest_source_reconnects_total",
    "Times the meter source (serial port, TCP) was lost and is being reopened.",
)
SOURCE_CONNECTED = Gauge("hanport_ingest_source_connected", "1 while the meter source is open.")
PROTOCOL_DETECTED = Gauge(
    "hanport_ingest_protocol_detected",
    "1 for the protocol automatic detection found on the meter port.",
    ["protocol"],
)
LINE_PROBES = Counter(
    "hanport_ingest_line_probes_total",
    "Line settings tried by baud=auto detection, by result (found, nothing).",
    ["setting", "result"],
)
LINE_DETECTED = Gauge(
    "hanport_ingest_line_detected",
    "1 for the line settings and protocol that auto-detection found.",
    ["setting", "protocol"],
)
