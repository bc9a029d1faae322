"""shared.meter_metrics: a reading's values become gauges, labeled with the meter's name;
values the meter did not send stay unset; each meter of a box has its own series; M-Bus
sub-meters are gauges too."""

from __future__ import annotations

from prometheus_client import REGISTRY

from shared import meter_metrics
from shared.reading import Reading, SubMeter


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
        return REGISTRY.get_sample_value(name, {"meter": "meter", **labels})

    assert value("hanport_meter_power_watts", direction="import", phase="l2") == 600.0
    assert value("hanport_meter_power_watts", direction="net", phase="total") == 1500.0
    assert value("hanport_meter_voltage_volts", phase="l1") == 230.1
    assert value("hanport_meter_current_amperes", phase="l1") == 2.2
    assert value("hanport_meter_energy_kilowatt_hours", direction="import") == 1234.5
    assert value("hanport_meter_energy_kilowatt_hours", direction="export") == 67.8
    assert value("hanport_meter_reading_timestamp_seconds") == 1_700_000_000.0
    # not sent by the meter: no series at all (never 0)
    assert value("hanport_meter_voltage_volts", phase="l3") is None
    assert value("hanport_meter_frequency_hertz") is None


def test_a_value_the_meter_stops_sending_does_not_linger() -> None:
    def voltage_l3() -> float | None:
        labels = {"meter": "lingers", "phase": "l3"}
        return REGISTRY.get_sample_value("hanport_meter_voltage_volts", labels)

    meter_metrics.observe(
        Reading(ts=1, received=1, meter="lingers", u=[230.0, 231.0, 232.0], frequency=50.0)
    )
    assert voltage_l3() == 232.0
    meter_metrics.observe(Reading(ts=2, received=2, meter="lingers", u=[230.0, None, None]))
    assert voltage_l3() is None
    frequency = REGISTRY.get_sample_value("hanport_meter_frequency_hertz", {"meter": "lingers"})
    assert frequency is None


def test_each_meter_has_its_own_series_and_sub_meters_are_gauges() -> None:
    gas = SubMeter(channel=1, device_type=3, id="G1", value=41.138, unit="m3", ts=1_700_000_000_000)
    heat = SubMeter(channel=2, device_type=4, value=12.5, unit="GJ", ts=1_700_000_100_000)
    meter_metrics.observe(Reading(ts=1, received=1, meter="main", ic=100.0, submeters=[gas, heat]))
    meter_metrics.observe(Reading(ts=1, received=1, meter="heatpump", ic=7.5))

    def value(name: str, **labels: str) -> float | None:
        return REGISTRY.get_sample_value(name, labels)

    energy = "hanport_meter_energy_kilowatt_hours"
    assert value(energy, meter="main", direction="import") == 100.0
    assert value(energy, meter="heatpump", direction="import") == 7.5
    sub = "hanport_meter_submeter_value"
    assert value(sub, meter="main", channel="1", medium="gas", unit="m3") == 41.138
    assert value(sub, meter="main", channel="2", medium="heat", unit="GJ") == 12.5
    when = "hanport_meter_submeter_timestamp_seconds"
    assert value(when, meter="main", channel="1") == 1_700_000_000.0
    assert value(sub, meter="heatpump", channel="1", medium="gas", unit="m3") is None
