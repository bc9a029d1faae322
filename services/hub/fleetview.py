"""The fleet view: what the sink workers learn of every box, as Prometheus metrics.

Each worker sees part of the messages (they share one durable consumer); Prometheus takes the
max over workers (`max by (box)`) for the per-box series and the sum for the counters.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from services.uplink.messages import Health

BOXES = Gauge("hanport_fleet_boxes_seen", "Boxes this sink worker has had a message from.")
LAST_SEEN = Gauge(
    "hanport_fleet_box_last_seen_timestamp_seconds",
    "When the newest message of a box reached this worker.",
    ["box"],
)
VERSION = Gauge("hanport_fleet_box_info", "A box's hanport version (value 1).", ["box", "version"])
LICENSED = Gauge(
    "hanport_fleet_box_licensed", "1 while a box's feature is licensed, else 0.", ["box", "feature"]
)
LAG = Gauge(
    "hanport_fleet_box_lag_readings",
    "Readings on a box not yet at the hub, as its last health message said.",
    ["box"],
)
READINGS = Counter(
    "hanport_fleet_readings_total", "Readings written by this worker (rate: readings/s)."
)
INTERVALS = Counter(
    "hanport_fleet_intervals_total",
    "Accounting intervals (and revisions of them) written by this worker.",
)
REFUSED = Counter(
    "hanport_fleet_readings_refused_total", "Readings the store refused for good (logged)."
)
ERRORS = Counter(
    "hanport_fleet_sink_errors_total",
    "Sink worker errors by kind (store_down: retried; bad_message: skipped; "
    "intervals_refused: intervals the store refused for good, logged).",
    ["kind"],
)


class FleetView:
    def __init__(self) -> None:
        self.boxes: set[str] = set()
        self.versions: dict[str, str] = {}

    def seen(self, box: str, at: float) -> None:
        if box not in self.boxes:
            self.boxes.add(box)
            BOXES.set(len(self.boxes))
        LAST_SEEN.labels(box).set(at)

    def health(self, health: Health) -> None:
        old = self.versions.get(health.box)
        if old != health.version:
            if old is not None:
                VERSION.remove(health.box, old)
            self.versions[health.box] = health.version
            VERSION.labels(health.box, health.version).set(1)
        for feature, state in health.licence.items():
            LICENSED.labels(health.box, feature).set(1 if state == "granted" else 0)
        LAG.labels(health.box).set(health.lag)
