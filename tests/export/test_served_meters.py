"""`ServedMeters` (services/export/license.py), pure: a batch narrowed to the meters a license
names, decided once per meter and counted per reading; the intervals' meters likewise, not
counted. (tests/export/test_license.py runs it in the service with a signed license.)"""

from __future__ import annotations

import logging

import pytest

from services.export.license import ServedMeters
from shared.entitlements import METER_REFUSED, Decision, Feature
from shared.reading import Reading, encode_reading

from .support import reading
from .test_entries import read

HEATPUMP_ID = "HP-0077"


class License:
    """An entitlement source granting `export` for `meters` (None: every meter)."""

    def __init__(self, meters: set[str] | None) -> None:
        self.meters = None if meters is None else frozenset(meters)

    def decide(self, feature: Feature) -> Decision:
        return Decision(True, "test", license_id="L-TEST", meters=self.meters)

    async def wait_until(self, feature: Feature, granted: bool) -> Decision:
        return self.decide(feature)


def refused(meter: str) -> float:
    return METER_REFUSED.labels("export", meter)._value.get()


def mixed_batch() -> list[Reading]:
    """main, heatpump (by its equipment id, no name), main, heatpump, ...: 6 readings."""
    out = [reading(n) for n in range(6)]
    for one in out[1::2]:
        one.meter, one.meter_id = None, HEATPUMP_ID
    return out


def test_a_license_without_meters_passes_the_batch_as_it_is() -> None:
    entries = read(mixed_batch())
    kept, passed_over = ServedMeters(License(None)).narrow(entries)
    assert kept is entries and passed_over == []


def test_another_meters_readings_are_passed_over_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    served = ServedMeters(License({"main"}))
    readings = mixed_batch()
    before = refused(HEATPUMP_ID)
    with caplog.at_level(logging.INFO, logger="shared.entitlements"):
        kept, passed_over = served.narrow(read(readings))
        again, _ = served.narrow(read(readings))
    assert kept.ids == ["1-0", "3-0", "5-0"] and passed_over == ["2-0", "4-0", "6-0"]
    assert [r.ts for r in kept.readings] == [readings[n].ts for n in (0, 2, 4)]
    assert kept.payloads == [encode_reading(readings[n]) for n in (0, 2, 4)]  # as read
    assert again.ids == kept.ids
    assert refused(HEATPUMP_ID) == before + 6  # each reading, both batches
    logged = [r.getMessage() for r in caplog.records if HEATPUMP_ID in r.getMessage()]
    assert logged == [
        f"export: license L-TEST serves only the meters main, not meter {HEATPUMP_ID}: its "
        "data is not served on export; install a license that names it"
    ]


def test_a_meter_named_by_its_equipment_id_is_served() -> None:
    entries = read(mixed_batch())
    kept, passed_over = ServedMeters(License({"main", HEATPUMP_ID})).narrow(entries)
    assert kept is entries and passed_over == []


def test_a_batch_of_another_meter_only_leaves_nothing_to_write() -> None:
    kept, passed_over = ServedMeters(License({"main"})).narrow(read([reading(0, meter="gas")]))
    assert len(kept) == 0 and kept.payloads == [] and passed_over == ["1-0"]


def test_the_intervals_meters_are_narrowed_without_counting() -> None:
    served = ServedMeters(License({"main"}))
    before = refused("heatpump")
    assert served.names(["main", "heatpump", "main"]) == {"main"}
    assert refused("heatpump") == before
    assert ServedMeters(License(None)).names(["main", "heatpump"]) == {"main", "heatpump"}
