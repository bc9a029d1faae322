"""shared/meters.py: meter names, their keys and which meter is the default (pure)."""

from __future__ import annotations

import pytest

from shared.meters import (
    MeterKeys,
    check_name,
    default_meter,
    equipment_name,
    meter_of,
    name_from_text,
)
from shared.reading import Reading


def test_names_are_letters_digits_dot_underscore_dash_up_to_64() -> None:
    assert check_name("heat-pump_2.main") == "heat-pump_2.main"
    for bad in ("", "a b", "x" * 65, "gas/1", "{x}"):
        with pytest.raises(ValueError, match="is not a meter name"):
            check_name(bad)


def test_a_name_made_from_an_equipment_id_or_a_device_path() -> None:
    assert name_from_text("E0025000012345678") == "E0025000012345678"
    assert name_from_text("/dev/ttyUSB0") == "dev-ttyUSB0"
    assert name_from_text("tcp://10.0.0.5:2000") == "tcp-10.0.0.5-2000"
    assert name_from_text("///") == "meter"
    assert len(name_from_text("7" * 100)) == 64


def test_a_reading_is_its_named_meters_else_its_equipment_ids() -> None:
    assert meter_of(Reading(ts=0, received=0, meter="ev", meter_id="X1")) == "ev"
    assert meter_of(Reading(ts=0, received=0, meter_id="X1")) == "X1"
    assert meter_of(Reading(ts=0, received=0)) == "meter"


def test_a_named_meters_keys_share_one_cluster_slot() -> None:
    keys = MeterKeys.named("ev")
    assert (keys.readings, keys.raw, keys.status) == (
        "hanport:{ev}:readings",
        "hanport:{ev}:raw",
        "hanport:{ev}:ingest:status",
    )


def test_the_default_meter_is_the_configured_then_the_classic_then_the_first() -> None:
    assert default_meter(["b", "a"], "b", "c") == "b"
    assert default_meter(["b", "a"], None, "c") == "c"
    assert default_meter(["b", "a"], None, None) == "a"
    assert default_meter([], None, None) is None


def test_an_equipment_id_sent_as_hex_ascii_is_decoded() -> None:
    # ids from the corpus's DSMR captures (tests/ingest/test_p1.py)
    assert equipment_name("4530303434303037333832323436303139") == "E0044007382246019"
    assert equipment_name("3330303537373735") == "30057775"
    assert equipment_name("96815390") == "96815390"  # digits that decode to control bytes: kept
    assert equipment_name("7350000000123456") == "7350000000123456"  # "sP\0..." is not a name
