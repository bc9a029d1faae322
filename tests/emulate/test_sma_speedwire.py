"""The SMA Energy Meter datagram (services/emulate/sma/speedwire.py), decoded by pysma-plus.

pysma-plus (the library Home Assistant's `pysmaplus` integration uses) decodes each datagram
with its own Speedwire energy-meter reader (`SMAspeedwireEM.datagram_received`); the values it
finds must be the reading's, in the device's units, import and export apart, never negative.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pysmaplus.device_em import SMAspeedwireEM

from services.emulate.sma.speedwire import CHANNELS, SUSY_ID, encode
from shared.reading import Reading
from tests.readings import simulated_readings

SERIAL = 3_912_345_678

# the channels a real Energy Meter 2.0 (firmware 2.03.4.R and later) sends, in its order
DEVICE_ORDER = (
    ["1:4", "1:8", "2:4", "2:8", "3:4", "3:8", "4:4", "4:8", "9:4", "9:8", "10:4", "10:8"]
    + ["13:4", "14:4"]
    + [
        f"{20 * k + i}:{t}"
        for k in (1, 2, 3)
        for i, t in [(1, 4), (1, 8), (2, 4), (2, 8), (3, 4), (3, 8), (4, 4), (4, 8)]
        + [(9, 4), (9, 8), (10, 4), (10, 8), (11, 4), (12, 4), (13, 4)]
    ]
)


def full_reading() -> Reading:
    """Every value a three-phase meter sends: house importing, L1 and L3 exporting."""
    return Reading(
        ts=1_700_000_000_000,
        received=1_700_000_000_000,
        ic=1320.34,
        ec=305.03,
        ric=5.9,
        rec=949.68,
        p=[121.6, -21.7, 160.8, -17.6],
        pi=[121.6, 0.0, 160.8, 0.0],
        pe=[0.0, 21.7, 0.0, 17.6],
        r=[-188.9, -22.3, -126.0, -40.6],
        u=[231.97, 230.66, 230.09],
        i=[0.18, 1.12, 0.23],
        frequency=50.16,
    )


def decode(datagram: bytes) -> dict[str, Any]:
    """pysma-plus's decoding of one datagram (its receive path, without the socket)."""
    return SMAspeedwireEM().datagram_received(datagram, ("192.0.2.10", 9522))


def obis_keys(decoded: dict[str, Any]) -> list[str]:
    return [key.rsplit(":", 1)[0] for key in decoded if key.count(":") == 2]


def test_the_table_is_the_devices_channel_order() -> None:
    assert [f"{c.index}:{c.kind}" for c in CHANNELS] == DEVICE_ORDER


async def test_the_header_is_an_energy_meters() -> None:
    datagram = encode(full_reading(), SERIAL, 0x1_2345_6789)
    assert datagram[:4] == b"SMA\x00"
    assert struct.unpack(">HHI", datagram[4:12]) == (4, 0x02A0, 1)
    length, tag, protocol, susy, serial, ticker = struct.unpack(">HHHHII", datagram[12:28])
    assert (tag, protocol, susy, serial) == (0x0010, 0x6069, SUSY_ID, SERIAL)
    assert ticker == 0x2345_6789  # the ms ticker wraps at 2**32
    assert 16 + length + 4 == len(datagram)  # up to the end tag, then the end tag
    assert datagram[-4:] == b"\x00\x00\x00\x00"
    assert datagram[-12:-4] == bytes((144, 0, 0, 0, 2, 3, 4, ord("R")))
    decoded = decode(datagram)
    assert (decoded["protocolID"], decoded["susyid"], decoded["serial"]) == (
        0x6069,
        349,
        SERIAL,
    )
    assert decoded["sw_version"] == "2.3.4.R"


async def test_pysma_plus_reads_the_readings_values() -> None:
    reading = full_reading()
    values = decode(encode(reading, SERIAL, 1))
    # totals: 0.1 W, Ws, 0.001
    assert values["1:4:0"] / 10 == 121.6
    assert values["2:4:0"] == 0
    assert values["1:8:0"] / 3_600_000 == 1320.34
    assert values["2:8:0"] / 3_600_000 == 305.03
    assert values["3:4:0"] == 0 and values["4:4:0"] / 10 == 188.9
    assert values["3:8:0"] / 3_600_000 == 5.9
    assert values["4:8:0"] / 3_600_000 == 949.68
    apparent = math.hypot(121.6, 188.9)
    assert values["9:4:0"] == round(apparent * 10) and values["10:4:0"] == 0
    assert values["13:4:0"] == round(121.6 / apparent * 1000)
    assert values["14:4:0"] / 1000 == 50.16
    # phases: L1 exports, L2 imports
    assert values["21:4:0"] == 0 and values["22:4:0"] / 10 == 21.7
    assert values["41:4:0"] / 10 == 160.8 and values["42:4:0"] == 0
    assert values["29:4:0"] == 0 and values["30:4:0"] == round(math.hypot(21.7, 22.3) * 10)
    for k, base in ((0, 31), (1, 51), (2, 71)):
        assert values[f"{base}:4:0"] / 1000 == reading.i[k]
        assert values[f"{base + 1}:4:0"] / 1000 == reading.u[k]
    # what no meter here measures is left out, not sent as 0
    present = set(obis_keys(values))
    assert {"9:8", "10:8", "21:8", "22:8", "43:8", "69:8"}.isdisjoint(present)
    assert present == set(DEVICE_ORDER) - {
        f"{20 * k + i}:8" for k in (1, 2, 3) for i in (1, 2, 3, 4, 9, 10)
    } - {"9:8", "10:8"}


async def test_readings_of_the_p1_decoder_read_back_through_pysma_plus() -> None:
    """Readings as ingest makes them (simulated meter's telegrams, real P1 decoder), read with
    pysma-plus's own sensor table and factors (what Home Assistant shows)."""
    em = SMAspeedwireEM()
    for n, reading in enumerate(simulated_readings(30, interval_ms=60_000)):
        sensors = await em.get_sensors()
        values = em.datagram_received(encode(reading, SERIAL, n), ("192.0.2.10", 9522))
        for sensor in sensors:
            if sensor.key in values:
                sensor.value = values[sensor.key] / sensor.factor
        got = {sensor.key: sensor.value for sensor in sensors}
        assert got["1:4:0"] == reading.pi[0] and got["2:4:0"] == reading.pe[0]
        assert got["1:8:0"] == reading.ic and got["2:8:0"] == reading.ec
        for k, base in ((1, 21), (2, 41), (3, 61)):
            assert got[f"{base}:4:0"] == reading.pi[k]
            assert got[f"{base + 1}:4:0"] == reading.pe[k]
            assert got[f"{base + 10}:4:0"] == reading.i[k - 1]
            assert got[f"{base + 11}:4:0"] == reading.u[k - 1]
        assert got["14:4:0"] is None  # this meter sends no frequency: left out, not 0


async def test_export_is_its_own_channel_and_never_negative() -> None:
    # only the net power is known (p), exporting 2.5 kW: import 0, export 2500 W
    reading = Reading(ts=1, received=1, p=[-2500.0, None, None, None], ec=12.5)
    values = decode(encode(reading, SERIAL, 1))
    assert values["1:4:0"] == 0
    assert values["2:4:0"] == 25_000
    assert values["2:8:0"] == 12.5 * 3_600_000
    assert "1:8:0" not in values  # the import register is unknown: left out


async def test_a_meter_without_phase_values_sends_only_totals() -> None:
    reading = Reading(ts=1, received=1, ic=10.0, ec=2.0, p=[300.0, None, None, None])
    values = decode(encode(reading, SERIAL, 1))
    assert sorted(obis_keys(values), key=DEVICE_ORDER.index) == ["1:4", "1:8", "2:4", "2:8"]
    assert values["1:4:0"] == 3000 and values["2:4:0"] == 0


async def test_values_are_rounded_and_kept_within_the_types_range() -> None:
    reading = Reading(
        ts=1,
        received=1,
        p=[1e12, None, None, None],  # beyond 32 bits of 0.1 W
        ic=0.0000001,
        frequency=float("nan"),
        i=[-3.0, None, None],  # a meter that signs its current: the device sends it unsigned
    )
    values = decode(encode(reading, SERIAL, 1))
    assert values["1:4:0"] == 2**32 - 1
    assert values["1:8:0"] == 0
    assert "14:4:0" not in values
    assert values["31:4:0"] == 3000


finite = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False))
positive = st.one_of(st.none(), st.floats(0, 1e9, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(
    p=st.lists(finite, min_size=4, max_size=4),
    r=st.lists(finite, min_size=4, max_size=4),
    u=st.lists(st.one_of(st.none(), st.floats(0, 500)), min_size=3, max_size=3),
    i=st.lists(finite, min_size=3, max_size=3),
    ic=positive,
    ec=positive,
)
def test_any_reading_decodes_to_what_was_encoded(
    p: list[float | None],
    r: list[float | None],
    u: list[float | None],
    i: list[float | None],
    ic: float | None,
    ec: float | None,
) -> None:
    reading = Reading(ts=1, received=1, p=list(p), r=list(r), u=list(u), i=list(i), ic=ic, ec=ec)
    datagram = encode(reading, SERIAL, 7)
    length = struct.unpack(">H", datagram[12:14])[0]
    assert 16 + length + 4 == len(datagram)
    values = _Receiver().datagram_received(datagram, ("192.0.2.10", 9522))
    for k, net in enumerate(p):
        imported, exported = values.get(f"{20 * k + 1}:4:0"), values.get(f"{20 * k + 2}:4:0")
        if net is None:
            assert imported is None and exported is None
        else:
            assert imported == round(max(net, 0.0) * 10)
            assert exported == round(max(-net, 0.0) * 10)
    for k, volts in enumerate(u):
        got = values.get(f"{20 * k + 32}:4:0")
        assert got == (None if volts is None else round(volts * 1000))
    if ic is not None:
        assert values["1:8:0"] == round(ic * 3_600_000)


class _Receiver(SMAspeedwireEM):
    """pysma-plus's decoder without an event loop (hypothesis runs the test synchronously)."""

    def __init__(self) -> None:
        from pysmaplus.device_em import Debug_information_em

        self.di = Debug_information_em()
        self._data_received = None
        self._expected_device = None
