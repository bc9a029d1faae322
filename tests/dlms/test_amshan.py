"""Differential test against amshan (test dependency): on the HDLC frames amshan decodes, both
give the same values."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.codec.decoded import Decoded
from services.ingest.codec.dlms.decoder import DlmsDecoder
from shared.reading import Reading

from .conftest import HDLC_FILES, frame
from .frames import hdlc

han = pytest.importorskip("han.autodecoder")
from han import hdlc as han_hdlc  # noqa: E402


def amshan(raw: bytes) -> dict[str, Any]:
    frames = han_hdlc.HdlcFrameReader(False).read(raw)
    assert len(frames) == 1 and frames[0].is_good_ffc
    decoded = han.AutoDecoder().decode_message_payload(frames[0].payload)
    assert decoded is not None
    return decoded


def ours(raw: bytes) -> Reading:
    (out,) = DlmsDecoder("hdlc").feed(raw, 1)
    assert isinstance(out, Decoded)
    return out.reading


def approx(value: Any) -> Any:
    return value if isinstance(value, str) else pytest.approx(value, rel=1e-9, abs=1e-9)


# amshan field -> how to read the same quantity from a Reading (units: W, var, V, A, Wh, varh).
FIELDS: dict[str, Any] = {
    "active_power_import": lambda r: r.pi[0],
    "active_power_export": lambda r: r.pe[0],
    "current_l1": lambda r: r.i[0],
    "current_l2": lambda r: r.i[1],
    "current_l3": lambda r: r.i[2],
    "voltage_l1": lambda r: r.u[0],
    "voltage_l2": lambda r: r.u[1],
    "voltage_l3": lambda r: r.u[2],
    "active_power_import_l1": lambda r: r.pi[1],
    "active_power_import_l2": lambda r: r.pi[2],
    "active_power_import_l3": lambda r: r.pi[3],
    "active_power_export_l1": lambda r: r.pe[1],
    "active_power_export_l2": lambda r: r.pe[2],
    "active_power_export_l3": lambda r: r.pe[3],
    "active_power_import_total": lambda r: r.ic * 1000,
    "active_power_export_total": lambda r: r.ec * 1000,
    "reactive_power_import_total": lambda r: r.ric * 1000,
    "reactive_power_export_total": lambda r: r.rec * 1000,
    "meter_id": lambda r: r.meter_id,
    "meter_type": lambda r: r.meter_model,
}


def compare(raw: bytes) -> int:
    theirs = amshan(raw)
    reading = ours(raw)
    compared = 0
    for field, value in theirs.items():
        if field in FIELDS:
            assert FIELDS[field](reading) == approx(value), field
            compared += 1
    if "reactive_power_import" in theirs:
        net = theirs["reactive_power_import"] - theirs.get("reactive_power_export", 0)
        assert reading.r[0] == approx(net)
    return compared


@pytest.mark.parametrize("name", HDLC_FILES)
def test_same_values_as_amshan(name: str) -> None:
    assert compare(frame(f"hdlc/{name}")) >= 5


AIDON = frame("hdlc/aidon_se_27items_doc.hex")
APDU = AIDON[12:-3]
P_IMPORT = APDU.index(bytes.fromhex("0100010700ff")) + 6  # uint32 tag
U1 = APDU.index(bytes.fromhex("0100200700ff")) + 6  # uint16 tag


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**16 - 1))
def test_same_values_as_amshan_on_generated_aidon_frames(power: int, volts: int) -> None:
    apdu = bytearray(APDU)
    assert apdu[P_IMPORT] == 0x06 and apdu[U1] == 0x12
    apdu[P_IMPORT + 1 : P_IMPORT + 5] = power.to_bytes(4, "big")
    apdu[U1 + 1 : U1 + 3] = volts.to_bytes(2, "big")
    raw = hdlc(b"\xe6\xe7\x00" + bytes(apdu))
    compare(raw)
    assert ours(raw).pi[0] == power
