"""Prometheus metrics every service shares, and the /metrics endpoint for services without HTTP.

Service-specific metrics live beside the service's code; names start with `hanport_`.
Services that serve HTTP (rest, licensing) mount `prometheus_client.make_asgi_app()` instead of
calling `serve_metrics`.
"""

from __future__ import annotations

import logging
import os
import sys

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
HTTP_DROPPED = Counter(
    "hanport_http_connections_dropped_total",
    "HTTP connections closed before a whole request arrived, by reason (request_timeout: too "
    "slow; head_too_large: request line and headers too long). See shared/http_limits.py.",
    ["reason"],
)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Serve /metrics on `host`:`port` in a background thread (port 0: do not serve).

    Loopback unless told otherwise: the metrics carry live readings (power, energy) and have no
    authentication, so they must not reach the LAN by default (docs/security.md)."""
    if port:
        try:
            start_http_server(port, addr=host)
        except OSError as error:
            print(
                f"hanport: cannot serve /metrics on {host}:{port} ({os.strerror(error.errno) if error.errno else error}): "
                "set HANPORT_METRICS_PORT to a free port (0 turns /metrics off)",
                file=sys.stderr,
            )
            raise SystemExit(2) from None
        log.info("metrics on %s:%d/metrics", host, port)
