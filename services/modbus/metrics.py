"""Prometheus metrics of the Modbus server (served by `shared.metrics.serve_metrics`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REQUESTS = Counter(
    "hanport_modbus_requests_total",
    "Modbus requests answered, by function and result (`ok` or the exception's name).",
    ["function", "result"],
)
EXCEPTIONS = Counter(
    "hanport_modbus_exceptions_total",
    "Modbus exception responses sent, by exception code (e.g. 0x0B while the data is stale).",
    ["code"],
)
MALFORMED = Counter(
    "hanport_modbus_malformed_frames_total",
    "Connections closed because a frame's MBAP header was malformed.",
)
REFUSED = Counter(
    "hanport_modbus_connections_refused_total",
    "Connections closed on arrival because HANPORT_MODBUS_MAX_CLIENTS clients were connected.",
)
TIMED_OUT = Counter(
    "hanport_modbus_connections_timed_out_total",
    "Connections dropped after HANPORT_MODBUS_IDLE_TIMEOUT seconds without a complete request "
    "(silent, sending a frame too slowly, or not reading the answers).",
)
CLIENTS = Gauge("hanport_modbus_clients", "Modbus TCP clients connected now.")
DATA_AGE = Gauge(
    "hanport_modbus_data_age_seconds",
    "Seconds since the newest reading was received (NaN before the first one).",
)
LICENSED = Gauge(
    "hanport_modbus_licensed",
    "1 while a license grants Modbus and the port is open; 0 while the port is closed for lack "
    "of one (the log says why).",
)
ENCODE_ERRORS = Counter(
    "hanport_modbus_encode_errors_total",
    "Reading values that did not fit their register type and were served as not implemented.",
)


class MeterAges(Collector):
    """`hanport_modbus_meter_data_age_seconds{meter,unit}`: per unit id of HANPORT_MODBUS_UNITS
    (and `unit="default"`, the other unit ids), seconds since its meter's newest reading was
    received (NaN: none yet), read from `source` when scraped (the running service's `Units`)."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[tuple[str, str, float]]] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "hanport_modbus_meter_data_age_seconds",
            "Seconds since the newest reading of the meter a unit id answers for was received "
            "(NaN before the first one), by meter and unit id (`default`: unit ids not in "
            "HANPORT_MODBUS_UNITS).",
            labels=["meter", "unit"],
        )
        for meter, unit, age in self.source() if self.source is not None else ():
            family.add_metric([meter, unit], age)
        yield family


METER_AGES = MeterAges()
REGISTRY.register(METER_AGES)
