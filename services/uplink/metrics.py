"""The uplink's Prometheus metrics (`hanport_uplink_*`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SENT = Counter(
    "hanport_uplink_messages_acked_total",
    "Messages a JetStream acknowledged, by stage (spool: the box's disk spool; hub: the hub).",
    ["stage"],
)
DUPLICATES = Counter(
    "hanport_uplink_duplicates_total",
    "Messages JetStream acknowledged as duplicates (sent again after a lost acknowledgement).",
    ["stage"],
)
ERRORS = Counter(
    "hanport_uplink_errors_total",
    "Publishes not acknowledged, by stage and kind (timeout, no_responders, refused, "
    "disconnected, other); each is retried.",
    ["stage", "kind"],
)
CONNECTED = Gauge(
    "hanport_uplink_connected", "1 while connected to the server, by stage.", ["stage"]
)
SPOOLED = Gauge(
    "hanport_uplink_spool_messages", "Messages on the box's disk spool not yet at the hub."
)
LAG = Gauge(
    "hanport_uplink_lag_readings",
    "Readings in Redis not yet handed on, by meter stream.",
    ["stream"],
)
INTERVALS = Counter(
    "hanport_uplink_intervals_acked_total",
    "Accounting intervals (and revisions of them) a JetStream acknowledged, by stage.",
    ["stage"],
)
