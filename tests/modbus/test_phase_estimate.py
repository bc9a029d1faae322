"""The SDM630 phase powers of a meter that sends only the total add up to it (estimated from
U x I), and the native map says when they are estimates (docs/modbus.md, "Meters that send only
a total")."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest

from services.modbus.register_map import Identity, blocks, encode, phase_powers, reading_values
from shared.reading import Reading

IDENTITY = Identity(serial="HP0A1B2C3D4E", version="1.2.3")
SDM630, NATIVE = blocks()[1], blocks()[3]


def reading(**fields: Any) -> Reading:
    return Reading(ts=1, received=1, **fields)


def sdm_phase_powers(r: Reading) -> list[float]:
    words = encode(SDM630, reading_values(r, IDENTITY))[0x0C:0x12]
    return list(struct.unpack(">3f", struct.pack(">6H", *words)))


def estimated_flag(r: Reading | None) -> int:
    return encode(NATIVE, reading_values(r, IDENTITY))[1070 - NATIVE.start]


def test_a_total_only_meter_gets_shares_by_volt_amperes() -> None:
    # Kamstrup (tests/fixtures/hdlc/kamstrup_em001.hex): 1247 W, no phase powers
    r = reading(p=[1247.0, None, None, None], u=[236.0, 236.0, 236.0], i=[1.89, 3.27, 1.28])
    powers = sdm_phase_powers(r)
    assert sum(powers) == pytest.approx(1247.0, abs=1e-3)
    assert powers == pytest.approx([1247.0 * i / 6.44 for i in (1.89, 3.27, 1.28)], rel=1e-6)
    assert estimated_flag(r) == 1


def test_phases_the_meter_sends_are_served_as_sent() -> None:
    r = reading(p=[4190.0, 1980.5, 354.0, 1855.5], u=[230.0] * 3, i=[9.0, 1.5, 8.0])
    assert sdm_phase_powers(r) == [1980.5, 354.0, 1855.5]
    assert estimated_flag(r) == 0


def test_a_single_phase_meter_gets_zero_on_the_phases_it_does_not_have() -> None:
    r = reading(p=[1500.0, 1500.0, None, None], u=[229.9, None, None], i=[6.5, None, None])
    assert sdm_phase_powers(r) == [1500.0, 0.0, 0.0]  # was NaN, NaN: openWB summed to NaN
    assert estimated_flag(r) == 1


def test_export_and_a_meter_without_currents() -> None:
    # exporting 900 W with no voltages or currents: equal shares of the total
    assert phase_powers([-900.0, None, None, None] + [None] * 6) == ([-300.0] * 3, True)
    # one phase sent: the others share what it leaves, by U x I
    assert phase_powers([1000.0, 400.0, None, None, 230.0, 230.0, 230.0, 1.0, 1.0, 3.0]) == (
        [400.0, 150.0, 450.0],
        True,
    )


def test_no_total_means_nothing_to_estimate() -> None:
    r = reading(p=[None, None, None, None], u=[230.0] * 3, i=[1.0] * 3)
    assert all(math.isnan(p) for p in sdm_phase_powers(r))
    assert estimated_flag(r) == 0
    assert estimated_flag(None) == 0xFFFF  # before the first reading: not implemented
