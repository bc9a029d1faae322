"""The meter's own values as Prometheus gauges: power, voltage, current, energy, frequency.

Consumes a `Reading`; produces gauges on the default registry (the Grafana dashboard in
deploy/grafana/ reads them). Call `observe(reading)` for each reading a service handles (the
ingest service, once per published reading). A value the meter did not send leaves its series
unset rather than 0. The gauges and which value goes to which series are the `gauge` of the field
catalogue's rows (shared/fields.py), walked by one function.
"""

from __future__ import annotations

import contextlib
import math

from prometheus_client import Gauge

from .fields import FIELDS, METRICS, Metric, Value, getter, series_labels, showing, values
from .reading import Reading

_SHOWN = showing("gauge", values(FIELDS))


def _gauge(metric: Metric) -> Gauge:
    gauge = Gauge(metric.name, metric.help, list(metric.labels))
    if not metric.labels:
        gauge.set(math.nan)  # no value before the meter sends one (it would start at 0)
    return gauge


GAUGES: dict[Metric, Gauge] = {metric: _gauge(metric) for metric in METRICS}


def _series(value: Value) -> tuple[Gauge, tuple[str, ...], int]:
    """The value's gauge, label values and divisor."""
    series = value.field.gauge
    assert series is not None
    return GAUGES[series.metric], series_labels(value)[1:], series.divisor


# (value in a reading, gauge, label values, divisor): one row per series
_TABLE = tuple((getter(value), *_series(value)) for value in _SHOWN)


def _show(gauge: Gauge, label_values: tuple[str, ...], value: float | None) -> None:
    if not label_values:
        gauge.set(math.nan if value is None else value)
    elif value is not None:
        gauge.labels(*label_values).set(value)
    else:
        with contextlib.suppress(KeyError):
            gauge.remove(*label_values)


def observe(reading: Reading) -> None:
    """Set every gauge the reading has a value for; a value it lacks has no series (an older
    reading's value must not linger as if the meter still sent it)."""
    for value_of, gauge, label_values, divisor in _TABLE:
        number = value_of(reading)
        _show(gauge, label_values, number if number is None or divisor == 1 else number / divisor)
