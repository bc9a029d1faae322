"""Prometheus metrics every service shares, and the /metrics endpoint for services without HTTP.

Service-specific metrics live beside the service's code; names start with `hanport_`.
Services that serve HTTP (rest, licensing) mount `prometheus_client.make_asgi_app()` instead of
calling `serve_metrics`.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, start_http_server

log = logging.getLogger(__name__)

REDIS_CONNECTED = Gauge("hanport_redis_connected", "1 while Redis answers, else 0.")
REDIS_RECONNECTS = Counter("hanport_redis_reconnects_total", "Reconnects to Redis after a failure.")
STREAM_ENTRIES = Counter(
    "hanport_stream_entries_read_total", "Readings read from the readings stream."
)
STREAM_BAD_ENTRIES = Counter(
    "hanport_stream_bad_entries_total", "Stream entries skipped because they did not decode."
)
LAST_READING_TS = Gauge(
    "hanport_last_reading_timestamp_seconds", "Meter time of the newest reading this service saw."
)


def serve_metrics(port: int) -> None:
    """Serve /metrics on `port` in a background thread (0: do not serve)."""
    if port:
        start_http_server(port)
        log.info("metrics on :%d/metrics", port)
