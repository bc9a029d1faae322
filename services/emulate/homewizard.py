"""The HomeWizard P1 meter personality: local API v1 answers for a reading (pure, no I/O).

`device_info(device)` is `GET /api`; `data(reading)` is `GET /api/v1/data`. Values follow the
real device: `active_power_w` (and per phase) positive while importing, negative while
exporting; energy as separate import and export counters in kWh, per tariff when the meter
sends tariff registers; gas, water and heat meters on the M-Bus as `external[]`. A value the
meter does not send is left out, as the real device leaves out what its meter lacks.

Without a fresh reading `/api/v1/data` and `/api/v1/telegram` answer 503 with the API's error
body (`{"error": {"id": ..., "description": ...}}`); `/api` keeps answering.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from shared.reading import Reading, SubMeter

from .device import Identity
from .table import BY_PATH, Read, Row, render, tariff

PRODUCT_TYPE = "HWE-P1"
PRODUCT_NAME = "P1 meter"
FIRMWARE = "5.18"
API_VERSION = "v1"
UNAVAILABLE_ERROR = 503  # the error id sent with it (the API's ids are numbers)


@dataclass(frozen=True)
class Device:
    identity: Identity

    @property
    def serial(self) -> str:
        return self.identity.mac("homewizard").lower()

    @property
    def instance(self) -> str:
        """The mDNS instance name the real device announces."""
        return f"p1meter-{self.serial[-6:]}"


def device_info(device: Device) -> dict[str, Any]:
    return {
        "product_type": PRODUCT_TYPE,
        "product_name": PRODUCT_NAME,
        "serial": device.serial,
        "firmware_version": FIRMWARE,
        "api_version": API_VERSION,
    }


def _unique_id(reading: Reading) -> str | None:
    """The equipment id as the P1 meter sends it: its characters as hex."""
    return reading.meter_id.encode().hex() if reading.meter_id else None


def _smr_version(reading: Reading) -> int | None:
    """DSMR version line 1-3:0.2.8 (`50` for 5.0), when the meter sends it."""
    value = reading.extras.get("1-3:0.2.8")
    text = value.get("value") if isinstance(value, dict) else value
    return int(text) if isinstance(text, str | int) and str(text).isdigit() else None


def _first_tariff(key: str, total: str) -> Read:
    """Tariff 1's register; a meter with no tariff registers (one tariff, as Nordic meters)
    has all its energy on tariff 1, as a DSMR meter with a single tariff reports it: clients
    that add the tariffs up (evcc, Alfen) get the total."""
    prefix = key.rsplit(".", 1)[0] + "."
    read_total = BY_PATH[total]

    def read(reading: Reading) -> float | None:
        tariffs = reading.tariffs
        if key in tariffs:
            return tariffs[key]
        if any(k.startswith(prefix) for k in tariffs):
            return None
        return read_total(reading)

    return read


def _active_tariff(reading: Reading) -> int | None:
    return int(reading.tariff) if reading.tariff and reading.tariff.isdigit() else None


DATA: tuple[Row, ...] = (
    Row("smr_version", _smr_version, digits=None),
    Row("meter_model", lambda r: r.meter_model, digits=None),
    Row("unique_id", _unique_id, digits=None),
    Row("active_tariff", _active_tariff, digits=None),
    Row("total_power_import_kwh", "ic"),
    Row("total_power_import_t1_kwh", _first_tariff("1.8.1", "ic")),
    Row("total_power_import_t2_kwh", tariff("1.8.2")),
    Row("total_power_import_t3_kwh", tariff("1.8.3")),
    Row("total_power_import_t4_kwh", tariff("1.8.4")),
    Row("total_power_export_kwh", "ec"),
    Row("total_power_export_t1_kwh", _first_tariff("2.8.1", "ec")),
    Row("total_power_export_t2_kwh", tariff("2.8.2")),
    Row("total_power_export_t3_kwh", tariff("2.8.3")),
    Row("total_power_export_t4_kwh", tariff("2.8.4")),
    Row("active_power_w", "p[0]"),
    Row("active_power_l1_w", "p[1]"),
    Row("active_power_l2_w", "p[2]"),
    Row("active_power_l3_w", "p[3]"),
    Row("active_voltage_l1_v", "u[0]"),
    Row("active_voltage_l2_v", "u[1]"),
    Row("active_voltage_l3_v", "u[2]"),
    Row("active_current_l1_a", "i[0]"),
    Row("active_current_l2_a", "i[1]"),
    Row("active_current_l3_a", "i[2]"),
    Row("active_frequency_hz", "frequency"),
    Row("any_power_fail_count", lambda r: r.power_failures, digits=None),
    Row("long_power_fail_count", lambda r: r.long_power_failures, digits=None),
)

# M-Bus device type (EN 13757-3) -> the `type` HomeWizard gives the external device
EXTERNAL_TYPES = {3: "gas_meter", 4: "heat_meter", 6: "warm_water_meter", 7: "water_meter",
                  12: "inlet_heat_meter"}  # fmt: skip
UNITS = {"m3": "m3", "GJ": "GJ", "kWh": "kWh"}


def _stamp(ms: int | None) -> int | None:
    """A P1 timestamp as the API gives it: YYMMDDhhmmss as a number (local time)."""
    if ms is None:
        return None
    return int(time.strftime("%y%m%d%H%M%S", time.localtime(ms / 1000)))


def external(submeter: SubMeter) -> dict[str, Any] | None:
    """One `external[]` entry, or None for a device type or reading the API cannot show."""
    kind = EXTERNAL_TYPES.get(submeter.device_type or -1)
    if kind is None or submeter.id is None or submeter.value is None:
        return None
    return {
        "unique_id": submeter.id.encode().hex(),
        "type": kind,
        "timestamp": _stamp(submeter.ts),
        "value": submeter.value,
        "unit": UNITS.get(submeter.unit or "", submeter.unit or ""),
    }


# What the real device always sends about itself (a wired box has no Wi-Fi; strict clients
# declare these required).
DEVICE_FIELDS: dict[str, Any] = {"wifi_ssid": "hanport (wired)", "wifi_strength": 100}


def data(reading: Reading) -> dict[str, Any]:
    out = {**DEVICE_FIELDS, **render(DATA, reading)}
    out["external"] = [e for e in map(external, reading.submeters) if e is not None]
    gas = next((e for e in out["external"] if e["type"] == "gas_meter"), None)
    if gas is not None:  # the older, still documented gas keys
        out["total_gas_m3"] = gas["value"]
        out["gas_timestamp"] = gas["timestamp"]
        out["gas_unique_id"] = gas["unique_id"]
    return out


def unavailable(description: str) -> dict[str, Any]:
    return {"error": {"id": UNAVAILABLE_ERROR, "description": description}}
