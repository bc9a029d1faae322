"""The meter's own values as Prometheus gauges: power, voltage, current, energy, frequency.

Consumes a `Reading`; produces gauges on the default registry (the Grafana dashboard in
deploy/grafana/ reads them). Call `observe(reading)` for each reading a service handles (the
ingest service, once per published reading). A value the meter did not send leaves its series
unset rather than 0. The mapping is one table walked by one function.
"""

from __future__ import annotations

import contextlib
import math

from prometheus_client import Gauge

from .reading import Reading

POWER = Gauge(
    "hanport_meter_power_watts",
    "Active power from the meter, by direction (import, export, net) and phase (total, l1-l3).",
    ["direction", "phase"],
)
REACTIVE = Gauge(
    "hanport_meter_reactive_power_var",
    "Reactive power (import minus export) by phase (total, l1-l3).",
    ["phase"],
)
VOLTAGE = Gauge("hanport_meter_voltage_volts", "Phase voltage from the meter.", ["phase"])
CURRENT = Gauge("hanport_meter_current_amperes", "Phase current from the meter.", ["phase"])
ENERGY = Gauge(
    "hanport_meter_energy_kilowatt_hours",
    "Active energy register of the meter (only grows), by direction (import, export).",
    ["direction"],
)
REACTIVE_ENERGY = Gauge(
    "hanport_meter_reactive_energy_kvarh",
    "Reactive energy register of the meter, by direction (import, export).",
    ["direction"],
)
FREQUENCY = Gauge("hanport_meter_frequency_hertz", "Grid frequency, when the meter sends it.")
READING_TIME = Gauge(
    "hanport_meter_reading_timestamp_seconds", "The meter's time of the newest reading."
)

# no value before the meter sends one (a label-less gauge would start at 0)
FREQUENCY.set(float("nan"))
READING_TIME.set(float("nan"))

_FOUR = ("total", "l1", "l2", "l3")
_THREE = ("l1", "l2", "l3")

# (reading attribute, gauge, label values per array position; () for a scalar)
_ARRAYS: tuple[tuple[str, Gauge, tuple[tuple[str, ...], ...]], ...] = (
    ("pi", POWER, tuple(("import", p) for p in _FOUR)),
    ("pe", POWER, tuple(("export", p) for p in _FOUR)),
    ("p", POWER, tuple(("net", p) for p in _FOUR)),
    ("r", REACTIVE, tuple((p,) for p in _FOUR)),
    ("u", VOLTAGE, tuple((p,) for p in _THREE)),
    ("i", CURRENT, tuple((p,) for p in _THREE)),
)
_SCALARS: tuple[tuple[str, Gauge, tuple[str, ...]], ...] = (
    ("ic", ENERGY, ("import",)),
    ("ec", ENERGY, ("export",)),
    ("ric", REACTIVE_ENERGY, ("import",)),
    ("rec", REACTIVE_ENERGY, ("export",)),
    ("frequency", FREQUENCY, ()),
)


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
    for attribute, gauge, labels in _ARRAYS:
        for value, label_values in zip(getattr(reading, attribute), labels, strict=False):
            _show(gauge, label_values, value)
    for attribute, gauge, label_values in _SCALARS:
        _show(gauge, label_values, getattr(reading, attribute))
    READING_TIME.set(reading.ts / 1000)
