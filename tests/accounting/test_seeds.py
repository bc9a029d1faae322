"""A Belgian meter's own peaks, from a real Fluvius e-MUCS 1.7.1 telegram (tests/fixtures) as
the P1 decoder keeps them in the reading's extras: 1-0:1.6.0 this month's peak with its time,
0-0:98.1.0 the peak of each closed month."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from services.accounting import seeds
from services.ingest.codec.p1.decoder import P1Decoder

BRUSSELS = ZoneInfo("Europe/Brussels")


def extras_of(fixtures: Path) -> dict[str, object]:
    data = (fixtures / "p1" / "flu5_be_v171.txt").read_bytes().replace(b"\n", b"\r\n")
    # the capture's CRC was computed on other line endings than the file keeps
    decoded = P1Decoder(tz=BRUSSELS, check_crc=False).feed(data, 0)
    reading = decoded[0].reading  # type: ignore[union-attr]
    assert reading is not None
    return reading.extras


def test_the_meters_peak_and_monthly_peaks(fixtures: Path) -> None:
    extras = extras_of(fixtures)
    assert seeds.meter_peak(extras, BRUSSELS) == (
        datetime(2023, 11, 2, 11, 45, tzinfo=BRUSSELS),
        3.064,
    )
    assert seeds.monthly_peaks(extras, BRUSSELS) == {
        "2023-07": 0.0,  # its peak time is the meter's "none" (632525252525W); 0 kW
        "2023-08": 1.862,
        "2023-09": 4.229,
        "2023-10": 4.927,
    }


def test_what_does_not_parse_is_left_out() -> None:
    assert seeds.meter_peak({"1-0:1.6.0": ["garbage", "03.064*kW"]}, BRUSSELS) is None
    assert seeds.meter_peak({}, BRUSSELS) is None
    assert (
        seeds.monthly_peaks({"0-0:98.1.0": ["1", "x", "y", "231301000000W", "", "1*kW"]}, BRUSSELS)
        == {}
    )
