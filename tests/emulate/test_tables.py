"""The pure parts: tables over the field catalogue, the meter choice, the settings' lists."""

from __future__ import annotations

import pytest

from services.emulate.homewizard import external
from services.emulate.latest import Choice, Latest
from services.emulate.settings import client_meters
from services.emulate.shelly import EM_STATUS
from services.emulate.table import Row, render
from shared.reading import Reading, SubMeter


def reading(**changes: object) -> Reading:
    fields: dict[str, object] = dict(
        ts=1, received=1, p=[3000.0, 1000.0, 1000.0, 1000.0], u=[230.0, 230.0, 230.0],
        i=[4.0, 4.4, 5.0],
    )  # fmt: skip
    fields.update(changes)
    return Reading(**fields)  # type: ignore[arg-type]


def test_a_row_naming_no_catalogue_value_stops_at_import() -> None:
    with pytest.raises(ValueError, match="not a value of shared/fields.py"):
        Row("a_act_power", "p[7]")


def test_rows_scale_round_and_leave_out_what_is_missing() -> None:
    rows = (Row("wh", "ic", scale=1000, digits=2), Row("w", "p[1]"), Row("hz", "frequency"))
    assert render(rows, reading(ic=12.3456)) == {"wh": 12345.6, "w": 1000.0}


def test_apparent_power_is_never_below_active_and_pf_at_most_one() -> None:
    em = render(EM_STATUS, reading())
    assert em["a_aprt_power"] == 1000.0  # 230 V x 4.0 A = 920 VA < 1000 W (rounded current)
    assert em["a_pf"] == 1.0
    assert em["c_aprt_power"] == 1150.0 and em["c_pf"] == 0.87
    exporting = render(EM_STATUS, reading(p=[-3000.0, -1000.0, -1000.0, -1000.0]))
    assert exporting["a_pf"] == -1.0 and exporting["a_act_power"] == -1000.0


def test_external_meters_need_a_known_type_an_id_and_a_value() -> None:
    gas = SubMeter(channel=1, device_type=3, id="G1", value=1.5, unit="m3", ts=None)
    assert external(gas) == {"unique_id": "4731", "type": "gas_meter", "timestamp": None,
                             "value": 1.5, "unit": "m3"}  # fmt: skip
    assert external(SubMeter(channel=2, device_type=99, id="X", value=1.0)) is None
    assert external(SubMeter(channel=2, device_type=7, id="W")) is None


def test_client_meters_parse_and_say_what_is_wrong() -> None:
    parsed = client_meters("192.168.1.40=garage, 10.0.0.0/24=house")
    assert [(str(n), m) for n, m in parsed] == [("192.168.1.40/32", "garage"),
                                                ("10.0.0.0/24", "house")]  # fmt: skip
    with pytest.raises(ValueError, match="address=meter"):
        client_meters("192.168.1.40")
    with pytest.raises(ValueError, match="not-an-ip"):
        client_meters("not-an-ip=house")
    with pytest.raises(ValueError, match="meter name"):
        client_meters("10.0.0.1=bad name")


def test_the_meter_per_client_then_device_then_default() -> None:
    latest = Latest(stale_after=10, clock=lambda: 0.0)
    latest.update([("1-0", reading(meter="b")), ("2-0", reading(meter="a"))])
    clients = client_meters("10.0.0.0/8=b")
    assert Choice(latest).meter_for("192.168.1.2") == "a"  # first by name
    latest.classic = "b"
    assert Choice(latest).meter_for(None) == "b"  # the classic stream's
    assert Choice(latest, default="a").meter_for(None) == "a"
    assert Choice(latest, meter="a", clients=clients).meter_for("10.1.2.3") == "b"
    assert Choice(latest, meter="a", clients=clients).meter_for("::ffff:10.1.2.3") == "b"
    assert Choice(latest, meter="a", clients=clients).meter_for("fe80::1%eth0") == "a"
    assert Choice(latest, meter="a", clients=clients).meter_for("not an address") == "a"


def test_fresh_is_none_once_stale() -> None:
    now = [100.0]
    latest = Latest(stale_after=10, clock=lambda: now[0])
    latest.update([("1-0", reading(meter="m", received=95_000))])
    assert latest.fresh("m") is not None
    now[0] = 106.0
    assert latest.fresh("m") is None and latest.get("m") is not None
    assert latest.fresh("other") is None and latest.fresh(None) is None


def test_a_meter_without_tariff_registers_has_its_energy_on_tariff_1() -> None:
    from services.emulate.homewizard import data

    single = data(reading(ic=100.5, ec=20.25))
    assert single["total_power_import_t1_kwh"] == 100.5
    assert single["total_power_export_t1_kwh"] == 20.25
    assert "total_power_import_t2_kwh" not in single
    dsmr = data(reading(ic=30.0, tariffs={"1.8.1": 10.0, "1.8.2": 20.0}))
    assert (dsmr["total_power_import_t1_kwh"], dsmr["total_power_import_t2_kwh"]) == (10.0, 20.0)
    assert dsmr["wifi_strength"] == 100
