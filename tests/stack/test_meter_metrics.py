"""shared.meter_metrics: a reading's values become gauges; values the meter did not send stay
unset."""

from __future__ import annotations

import math

from prometheus_client import REGISTRY

from shared import meter_metrics
from shared.reading import Reading


def test_observe_sets_gauges_from_the_reading() -> None:
    reading = Reading(
        ts=1_700_000_000_000,
        received=1_700_000_000_100,
        ic=1234.5,
        ec=67.8,
        pi=[1500.0, 500.0, 600.0, 400.0],
        pe=[0.0, 0.0, 0.0, 0.0],
        p=[1500.0, 500.0, 600.0, 400.0],
        u=[230.1, None, None],
        i=[2.2, None, None],
    )
    meter_metrics.observe(reading)

    def value(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, labels)

    assert value("hanport_meter_power_watts", direction="import", phase="l2") == 600.0
    assert value("hanport_meter_power_watts", direction="net", phase="total") == 1500.0
    assert value("hanport_meter_voltage_volts", phase="l1") == 230.1
    assert value("hanport_meter_current_amperes", phase="l1") == 2.2
    assert value("hanport_meter_energy_kilowatt_hours", direction="import") == 1234.5
    assert value("hanport_meter_energy_kilowatt_hours", direction="export") == 67.8
    assert value("hanport_meter_reading_timestamp_seconds") == 1_700_000_000.0
    # not sent by the meter: no series at all (never 0)
    assert value("hanport_meter_voltage_volts", phase="l3") is None
    frequency = value("hanport_meter_frequency_hertz")
    assert frequency is not None and math.isnan(frequency)


def test_a_value_the_meter_stops_sending_does_not_linger() -> None:
    def voltage_l3() -> float | None:
        return REGISTRY.get_sample_value("hanport_meter_voltage_volts", {"phase": "l3"})

    meter_metrics.observe(Reading(ts=1, received=1, u=[230.0, 231.0, 232.0], frequency=50.0))
    assert voltage_l3() == 232.0
    meter_metrics.observe(Reading(ts=2, received=2, u=[230.0, None, None]))
    assert voltage_l3() is None
    frequency = REGISTRY.get_sample_value("hanport_meter_frequency_hertz")
    assert frequency is not None and math.isnan(frequency)
