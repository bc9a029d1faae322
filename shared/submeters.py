"""M-Bus sub-meters (gas, water, heat behind a P1 meter, `Reading.submeters`) as every interface
names them: the medium from the M-Bus device type (EN 13757-3, table 3), and the extra object
REST serves beside the Cozify keys.

    medium(SubMeter(channel=1, device_type=3, value=41.138, unit="m3"))   # "gas"
    submeter_object(reading.submeters)   # {"1": {"medium": "gas", "value": 41.138, ...}}
"""

from __future__ import annotations

from typing import Any

from .reading import SubMeter

# M-Bus device type -> medium (EN 13757-3 table 3): what DSMR and EN 62056-21 meters report
MEDIUMS: dict[int, str] = {
    0x02: "electricity",
    0x03: "gas",
    0x04: "heat",  # measured at the return
    0x06: "warm_water",
    0x07: "water",
    0x0A: "cooling",  # measured at the return
    0x0B: "cooling",  # measured at the flow
    0x0C: "heat",  # measured at the flow
    0x0D: "heat_cooling",
    0x15: "hot_water",
    0x16: "cold_water",
}
# a device type the meter does not send (DSMR 2.2 gas lines carry none), guessed from the unit
BY_UNIT: dict[str, str] = {"m3": "gas", "gj": "heat", "kwh": "heat", "mwh": "heat"}
OTHER = "other"


def medium(sub: SubMeter) -> str:
    """`gas`, `water`, `heat`, ...: from the device type, else from the unit, else `other`."""
    if sub.device_type is not None:
        return MEDIUMS.get(sub.device_type, OTHER)
    return BY_UNIT.get((sub.unit or "").lower(), OTHER)


def submeter_object(subs: list[SubMeter]) -> dict[str, dict[str, Any]]:
    """The sub-meters as REST serves them beside the Cozify keys: by channel (as text), each
    with its medium, M-Bus device type and id, value, unit and its own time `ts` (ms)."""
    return {
        str(sub.channel): {
            "medium": medium(sub),
            "device_type": sub.device_type,
            "id": sub.id,
            "value": sub.value,
            "unit": sub.unit,
            "ts": sub.ts,
        }
        for sub in subs
    }
