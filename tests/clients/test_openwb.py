"""openWB gets the right power from a meter that sends only the total: openWB 2.x's SDM630 read
sequence and arithmetic (tests/clients/openwb_sdm630_read.py, with the pymodbus 2.5.3 it pins,
in a venv of its own) against hanport's Modbus service, fed real Kamstrup and Aidon captures
whose meters send no phase powers. openWB's power is the sum of the three phase powers
(openWB/core packages/modules/common/sdm.py lines 63 and 121), so they must add up to the
meter's total (docs/modbus.md, "Meters that send only a total")."""

from __future__ import annotations

import asyncio
import json
import math
import struct
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from services.ingest.codec.dlms.decoder import DlmsDecoder
from services.modbus.register_map import serial32
from shared.reading import Reading
from tests.clients.venvs import OPENWB_PYMODBUS, provision
from tests.conftest import FIXTURES
from tests.modbus.conftest import SERIAL, StartModbus

READ = Path(__file__).with_name("openwb_sdm630_read.py")


def f32(value: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", value))[0])


def capture(name: str) -> Reading:
    """The reading of a real HDLC capture (tests/fixtures/hdlc/), received now."""
    decoder = DlmsDecoder("hdlc", tz="Europe/Oslo")
    data = bytes.fromhex((FIXTURES / "hdlc" / name).read_text().strip())
    (decoded,) = decoder.feed(data, 0) + decoder.flush(0)
    now = int(time.time() * 1000)
    reading: Reading = msgspec.structs.replace(decoded.reading, ts=now, received=now)  # type: ignore[union-attr]
    return reading


async def openwb_reads(port: int) -> dict[str, Any]:
    python = await asyncio.to_thread(provision, OPENWB_PYMODBUS)
    process = await asyncio.create_subprocess_exec(
        str(python), str(READ), "127.0.0.1", str(port), "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    state: dict[str, Any] = json.loads(out)
    return state


@pytest.mark.timeout(300)  # the first run makes the pymodbus 2.5.3 venv
@pytest.mark.parametrize("name", ["kamstrup_em001.hex", "aidon_gh1119.hex"])
async def test_openwb_reads_the_total_of_a_meter_without_phase_powers(
    start_modbus: StartModbus, name: str
) -> None:
    reading = capture(name)
    assert reading.p[0] is not None and reading.p[1:] == [None, None, None]  # total only
    assert reading.ic is not None and reading.ec is not None
    service = await start_modbus()
    await service.publish(reading)
    state = await openwb_reads(service.port)

    assert not math.isnan(state["power"])
    assert state["power"] == pytest.approx(reading.p[0], abs=0.01)
    # the estimate: each phase's share of the total in proportion to its U x I
    va = [u * i for u, i in zip(reading.u, reading.i, strict=True)]  # type: ignore[operator]
    assert state["powers"] == pytest.approx([reading.p[0] * x / sum(va) for x in va], rel=1e-6)
    assert state["voltages"] == [f32(u) for u in reading.u]  # type: ignore[arg-type]
    assert state["currents"] == [f32(i) for i in reading.i]  # type: ignore[arg-type]
    assert state["imported"] == f32(reading.ic) * 1000
    assert state["exported"] == f32(reading.ec) * 1000
    assert state["serial_number"] == str(serial32(SERIAL))
    # not sent by these meters: NaN, which openWB passes on as is (`NaN > 100` is false)
    assert math.isnan(state["frequency"])
    assert all(math.isnan(pf) for pf in state["power_factors"])
