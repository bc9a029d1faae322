"""M-Bus sub-meters (gas, water, heat behind a P1 meter) on MQTT: pure functions, no I/O.

Consumes a reading's `submeters` (`shared.reading.SubMeter`, the medium from
`shared.submeters.medium`); produces the sub-meters message (one JSON object per meter, on
`<meter prefix>/submeters`, each sub-meter by its key `gas_1`, `water_2`: medium, M-Bus channel,
device type and id, value, unit, and its own time as `ts` (ms) and `time` (ISO 8601, UTC)) and
the Home Assistant sensors reading it: per sub-meter its value (gas: device class `gas`, m³;
water: `water`, m³; heat: `energy`, GJ/kWh/MWh; electricity: `energy`, kWh; all
`total_increasing`) and its time (device class `timestamp`). A sub-meter without a value or
whose unit is unknown is in the message but gets no value sensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from shared.reading import SubMeter
from shared.submeters import medium

# medium -> (sensor name, Home Assistant device class, unit as sent (lower case) -> HA unit)
_VOLUME = {"m3": "m³", "m³": "m³"}
_HEAT = {"gj": "GJ", "kwh": "kWh", "mwh": "MWh"}
KINDS: dict[str, tuple[str, str | None, dict[str, str]]] = {
    "gas": ("Gas", "gas", _VOLUME),
    "water": ("Water", "water", _VOLUME),
    "warm_water": ("Warm water", "water", _VOLUME),
    "hot_water": ("Hot water", "water", _VOLUME),
    "cold_water": ("Cold water", "water", _VOLUME),
    "heat": ("Heat", "energy", _HEAT),
    "cooling": ("Cooling", "energy", _HEAT),
    "heat_cooling": ("Heat and cooling", "energy", _HEAT),
    "electricity": ("Electricity", "energy", {"kwh": "kWh", "mwh": "MWh"}),
}
OTHER: tuple[str, str | None, dict[str, str]] = ("M-Bus", None, {})


@dataclass(frozen=True)
class SubSensor:
    """A Home Assistant sensor of one sub-meter's value or time."""

    slug: str  # `gas_1`, `gas_1_time`: unique per meter
    name: str  # `Gas 1`, `Gas 1 time`
    path: str  # in the sub-meters message: `gas_1.value`
    device_class: str | None
    state_class: str | None
    unit: str | None


def key(sub: SubMeter) -> str:
    """`gas_1`: the sub-meter's medium and M-Bus channel (stable for an installation)."""
    return f"{medium(sub)}_{sub.channel}"


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def submeter_payload(subs: list[SubMeter]) -> bytes:
    """The sub-meters message: every sub-meter, by `key`."""
    body: dict[str, Any] = {
        key(sub): {
            "medium": medium(sub),
            "channel": sub.channel,
            "device_type": sub.device_type,
            "id": sub.id,
            "value": sub.value,
            "unit": sub.unit,
            "ts": sub.ts,
            "time": _iso(sub.ts),
        }
        for sub in subs
    }
    return msgspec.json.encode(body)


def sensors(sub: SubMeter) -> list[SubSensor]:
    """The sensors of one sub-meter: its value (with the device class of its medium when Home
    Assistant knows its unit for it, else none) and its time. None for an empty M-Bus channel
    (no value or no unit: DSMR meters list unused channels as `(700101010000W)(00000000)`)."""
    if sub.value is None or not sub.unit:
        return []
    name, device_class, units = KINDS.get(medium(sub), OTHER)
    slug = key(sub)
    label = f"{name} {sub.channel}"
    known = units.get(sub.unit.lower())
    out = [
        SubSensor(
            slug,
            label,
            f"{slug}.value",
            device_class if known else None,
            "total_increasing",
            known or sub.unit,
        )
    ]
    if sub.ts is not None:
        out.append(
            SubSensor(f"{slug}_time", f"{label} time", f"{slug}.time", "timestamp", None, None)
        )
    return out
