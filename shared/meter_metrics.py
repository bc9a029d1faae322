"""The meter's own values as Prometheus gauges: power, voltage, current, energy, frequency, and
its M-Bus sub-meters (gas, water, heat).

Consumes a `Reading`; produces gauges on the default registry (the Grafana dashboard in
deploy/grafana/ reads them). Call `observe(reading)` for each reading a service handles (the
ingest service, once per published reading). Every series has the label `meter`, the meter's
name on the box (`shared.meters.meter_of`), so a box of several meters has one series per meter.
A value the meter did not send leaves its series unset rather than 0. The gauges and which value
goes to which series are the `gauge` of the field catalogue's rows (shared/fields.py), walked by
one function.
"""

from __future__ import annotations

import contextlib

from prometheus_client import Gauge

from .fields import (
    FIELDS,
    METER_LABEL,
    METRICS,
    Metric,
    Value,
    getter,
    series_labels,
    showing,
    values,
)
from .meters import meter_of
from .reading import Reading
from .submeters import medium

_SHOWN = showing("gauge", values(FIELDS))


def _gauge(metric: Metric) -> Gauge:
    return Gauge(metric.name, metric.help, [METER_LABEL, *metric.labels])


SUBMETER_VALUE = Gauge(
    "hanport_meter_submeter_value",
    "An M-Bus sub-meter's register as sent (gas and water m3, heat GJ or kWh), by meter, "
    "M-Bus channel, medium and unit.",
    [METER_LABEL, "channel", "medium", "unit"],
)
SUBMETER_TIME = Gauge(
    "hanport_meter_submeter_timestamp_seconds",
    "When the M-Bus sub-meter took its value (its own clock), by meter and channel.",
    [METER_LABEL, "channel"],
)


GAUGES: dict[Metric, Gauge] = {metric: _gauge(metric) for metric in METRICS}


def _series(value: Value) -> tuple[Gauge, tuple[str, ...], int]:
    """The value's gauge, label values and divisor."""
    series = value.field.gauge
    assert series is not None
    return GAUGES[series.metric], series_labels(value)[1:], series.divisor


# (value in a reading, gauge, label values, divisor): one row per series
_TABLE = tuple((getter(value), *_series(value)) for value in _SHOWN)


def _show(gauge: Gauge, label_values: tuple[str, ...], value: float | None) -> None:
    if value is not None:
        gauge.labels(*label_values).set(value)
    else:
        with contextlib.suppress(KeyError):
            gauge.remove(*label_values)


def observe(reading: Reading) -> None:
    """Set every gauge the reading has a value for, in its meter's series; a value it lacks has
    no series (an older reading's value must not linger as if the meter still sent it)."""
    meter = meter_of(reading)
    for value_of, gauge, label_values, divisor in _TABLE:
        number = value_of(reading)
        _show(
            gauge,
            (meter, *label_values),
            number if number is None or divisor == 1 else number / divisor,
        )
    for sub in reading.submeters:
        channel = str(sub.channel)
        if sub.value is not None:
            SUBMETER_VALUE.labels(meter, channel, medium(sub), sub.unit or "").set(sub.value)
        if sub.ts is not None:
            SUBMETER_TIME.labels(meter, channel).set(sub.ts / 1000)


def clear() -> None:
    """Remove every meter's series (a golden snapshot starts from none)."""
    for gauge in (*GAUGES.values(), SUBMETER_VALUE, SUBMETER_TIME):
        gauge.clear()
