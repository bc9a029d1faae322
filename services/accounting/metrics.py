"""Prometheus metrics of the accounting service, each with a `meter` label where it is about
one meter (served by `shared.metrics.serve_metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

READINGS = Counter(
    "hanport_accounting_readings_total", "Readings counted into intervals.", ["meter"]
)
EVENTS = Counter(
    "hanport_accounting_events_total",
    "Register events: `reset` (a register went down: meter replaced or reset, new baseline) "
    "and `clock_back` (a sample not later than the last, left out).",
    ["meter", "kind"],
)
STORE_ERRORS = Counter(
    "hanport_accounting_store_errors_total",
    "Batches whose state could not be stored (Redis away); they stay unacknowledged and are "
    "counted again after the reconnect.",
)
ENERGY = Gauge(
    "hanport_accounting_energy_kwh",
    "Energy of the current interval so far (kWh; kvarh for reactive), by resolution and "
    "register (`import`, `export`, `reactive_import`, `reactive_export`).",
    ["meter", "resolution", "register"],
)
MONTH_VALUE = Gauge(
    "hanport_accounting_month_value_kw", "The month's capacity-tariff value so far (kW).", ["meter"]
)
BILLED = Gauge(
    "hanport_accounting_billed_kw",
    "The billed capacity value (kW): the month's, or the 12-month mean (Flanders).",
    ["meter"],
)
STEP = Gauge(
    "hanport_accounting_step", "The month's price step (1-based; 0 without steps).", ["meter"]
)
WINDOW_KWH = Gauge(
    "hanport_accounting_window_kwh", "Import energy of the current tariff window so far.", ["meter"]
)
PROJECTED = Gauge(
    "hanport_accounting_projected_kw",
    "The current tariff window's average power if the present power holds to its end (kW).",
    ["meter"],
)
HEADROOM = Gauge(
    "hanport_accounting_headroom_w",
    "Watts that can be added for the rest of the current window without raising the month's "
    "value or step (+Inf when the window does not count).",
    ["meter"],
)
