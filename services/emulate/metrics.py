"""Prometheus metrics of the emulation service (served by `shared.metrics.serve_metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

REQUESTS = Counter(
    "hanport_emulate_requests_total",
    "Requests answered, by device (shelly, homewizard), transport (http, websocket, udp) and "
    "result (ok, error: the device's error answer, unavailable: no fresh reading).",
    ["personality", "transport", "result"],
)
REFUSED = Counter(
    "hanport_emulate_refused_total",
    "Requests and datagrams refused or ignored, by device and reason (too_large: over "
    "HANPORT_EMULATE_MAX_REQUEST_BYTES or the datagram limit; malformed: not a request; "
    "bad_request: HTTP the server could not parse; too_many: WebSocket clients over 32).",
    ["personality", "reason"],
)
LICENSED = Gauge(
    "hanport_emulate_licensed",
    "1 while a license grants the device and it answers; 0 while it is silent for lack of one "
    "(the log says why).",
    ["personality"],
)
ERRORS = Counter(
    "hanport_emulate_errors_total",
    "Failures inside the service, by kind (send: a UDP answer could not be sent; mdns: an "
    "announcement failed; telegram: the raw stream could not be read).",
    ["kind"],
)
RECEIVED = Gauge(
    "hanport_emulate_reading_received_timestamp_seconds",
    "When the newest reading of each meter the service holds was received (its age is "
    "time() - this; past HANPORT_EMULATE_STALE_AFTER the devices answer 'unavailable').",
    ["meter"],
)
