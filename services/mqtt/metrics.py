"""Prometheus metrics of the MQTT bridge (served by `shared.metrics.serve_metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PUBLISHED = Counter(
    "hanport_mqtt_messages_published_total",
    "Messages the broker confirmed (PUBACK/PUBCOMP, or written for QoS 0), by kind.",
    ["kind"],
)
FAILED = Counter(
    "hanport_mqtt_messages_failed_total",
    "Messages not confirmed (connection lost or timeout); their readings stay pending.",
    ["kind"],
)
SUPERSEDED = Counter(
    "hanport_mqtt_readings_superseded_total",
    "Readings acknowledged without a message because a newer one won (HANPORT_MQTT_MIN_INTERVAL).",
)
BACKLOG = Gauge(
    "hanport_mqtt_backlog_entries",
    "Readings not yet confirmed by the broker: pending in the group plus not yet delivered.",
)
BACKLOG_AGE = Gauge(
    "hanport_mqtt_backlog_oldest_age_seconds",
    "Age of the oldest reading not yet confirmed by the broker (0 when none).",
)
CONSUMERS_FORGOTTEN = Counter(
    "hanport_mqtt_consumers_forgotten_total",
    "Consumer names of replicas gone for over an hour, with nothing pending, removed from the "
    "consumer groups.",
)
CONNECTED = Gauge("hanport_mqtt_connected", "1 while connected to the broker, else 0.")
RECONNECTS = Counter("hanport_mqtt_reconnects_total", "Connections to the broker after the first.")
CONNECT_FAILURES = Counter(
    "hanport_mqtt_connect_failures_total",
    "Failed connection attempts, by reason (see docs/mqtt.md).",
    ["reason"],
)
SUBSCRIBE_REFUSED = Counter(
    "hanport_mqtt_subscribe_refused_total", "Subscriptions the broker refused, by topic.", ["topic"]
)
LICENSED = Gauge("hanport_mqtt_licensed", "1 while a license grants MQTT, else 0 (held off).")
PUBLISH_LATENCY = Histogram(
    "hanport_mqtt_publish_latency_seconds",
    "From handing a reading's message to the client until the broker confirmed it.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
