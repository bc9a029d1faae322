"""The field catalogue (shared/fields.py): rows that do not fit `Reading` or clash are refused
with a message naming the row, and a row expands to the names every consumer uses."""

from __future__ import annotations

import dataclasses

import pytest

from shared import fields
from shared.fields import BY_KEY, FIELDS, Field, FieldError, Topic, check, values
from shared.reading import COZIFY_KEYS
from tests.fields.snapshot import full_reading


def test_the_catalogue_covers_the_cozify_message() -> None:
    assert set(COZIFY_KEYS) <= set(BY_KEY)
    assert [f.key for f in FIELDS] == list(BY_KEY)


@pytest.mark.parametrize(
    ("row", "says"),
    [
        (Field("pp", "Power", "W", "typo"), "Reading has no attribute 'pp'"),
        (Field("p", "Power", "W", "scalar?"), "Reading.p has 4 positions, the row says 0"),
        (Field("u", "Voltage", "V", "four?", fields.TOTAL_AND_PHASES),
         "Reading.u has 3 positions, the row says 4"),
        (Field("ic", "Energy", "kWh", "phases?", fields.PHASES), "Reading.ic has no positions"),
        (Field("u", "Voltage", "V", "labels?", fields.PHASES,
               gauge=fields.Series(fields.POWER)), "hanport_meter_power_watts has labels"),
    ],
)  # fmt: skip
def test_a_row_that_does_not_fit_the_reading_is_refused(row: Field, says: str) -> None:
    with pytest.raises(FieldError, match="field '.*' of shared/fields.py") as error:
        check((*FIELDS[:2], row))
    assert says in str(error.value)


def test_a_row_that_clashes_with_another_is_refused() -> None:
    with pytest.raises(FieldError, match="the key appears twice"):
        check((*FIELDS, FIELDS[0]))
    frequency = BY_KEY["frequency"]
    clash = dataclasses.replace(frequency, topic=Topic("energy/import"))
    with pytest.raises(FieldError, match="two rows give the split topic energy/import"):
        check(tuple(clash if f is frequency else f for f in FIELDS))
    named_twice = dataclasses.replace(BY_KEY["ec"], name="Energy import")
    with pytest.raises(FieldError, match="Home Assistant sensor energy_import"):
        check(tuple(named_twice if f.key == "ec" else f for f in FIELDS))


def test_a_per_phase_row_expands_to_one_name_per_position() -> None:
    power = values([BY_KEY["p"]])
    assert [v.path for v in power] == ["p[0]", "p[1]", "p[2]", "p[3]"]
    assert [v.column for v in power] == ["p_total", "p_l1", "p_l2", "p_l3"]
    assert [v.name for v in power] == ["Power", "Power L1", "Power L2", "Power L3"]
    voltage = values([BY_KEY["u"]])
    assert [(v.path, v.column, v.slug) for v in voltage][0] == ("u[0]", "u_l1", "voltage_l1")
    (energy,) = values([BY_KEY["ic"]])
    assert (energy.path, energy.column, energy.phase, energy.per_phase) == ("ic", "ic", None, False)


def test_getter_reads_what_of_reads() -> None:
    reading = full_reading()
    for value in values(FIELDS):
        assert fields.getter(value)(reading) == value.of(reading), value.path
    assert [fields.getter(v)(reading) for v in values([BY_KEY["u"]])] == reading.u
