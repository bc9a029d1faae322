"""The Shelly Pro 3EM personality: Gen2 JSON-RPC answers for a reading (pure, no I/O).

`answer(method, params, reading, device)` is a method's result; `frame(request, reading,
device)` the JSON-RPC response frame (`id`, `src`, `dst`, `result` or `error`) for one request
from HTTP POST /rpc, RPC over WebSocket or a UDP datagram. Values follow the real device:
power in W, positive while importing (Shelly's `act_power` is negative while returning energy
to the grid), energy in Wh with import and export as separate counters (`total_act`,
`total_act_ret`), current in A, voltage in V. A value the meter does not send is left out.

Without a fresh reading the methods that carry measurements (`EM.GetStatus`,
`EMData.GetStatus`, `Shelly.GetStatus`) answer error -114 "unavailable", the code a Shelly
answers when a component cannot deliver; the others (device info, config) keep answering.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.reading import Reading

from .device import Identity
from .table import Row, apparent, apparent_total, power_factor, render, total

MODEL = "SPEM-003CEBEU"
APP = "Pro3EM"
GEN = 2
VERSION = "1.4.4"
FIRMWARE = "20241011-114455/1.4.4-hanport"

NOT_FOUND = 404  # no such method
INVALID_ARGUMENT = -103  # e.g. a component id other than 0
UNAVAILABLE = -114  # the meter's values are stale or missing

# HTTP status a GET /rpc/<method> answers with each error code
HTTP_STATUS = {NOT_FOUND: 404, INVALID_ARGUMENT: 400, UNAVAILABLE: 503}


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Device:
    """The emulated Pro 3EM's identity (ids from the reader's serial)."""

    identity: Identity

    @property
    def mac(self) -> str:
        return self.identity.mac("shelly")

    @property
    def id(self) -> str:
        return f"shellypro3em-{self.mac.lower()}"

    @property
    def instance(self) -> str:
        """The mDNS instance name the real device announces."""
        return f"ShellyPro3EM-{self.mac}"


# ---------------------------------------------------------------- the measurement tables

PHASES = (("a", 0), ("b", 1), ("c", 2))

EM_STATUS: tuple[Row, ...] = tuple(
    row
    for x, k in PHASES
    for row in (
        Row(f"{x}_current", f"i[{k}]"),
        Row(f"{x}_voltage", f"u[{k}]", digits=1),
        Row(f"{x}_act_power", f"p[{k + 1}]"),
        Row(f"{x}_aprt_power", apparent(k), digits=1),
        Row(f"{x}_pf", power_factor(k), digits=2),
        Row(f"{x}_freq", "frequency", digits=1),
    )
) + (
    Row("total_current", total("i")),
    Row("total_act_power", "p[0]"),
    Row("total_aprt_power", apparent_total, digits=1),
)

# Energy: the meter's registers are totals (no per-phase energy), so only the totals.
EMDATA_STATUS: tuple[Row, ...] = (
    Row("total_act", "ic", scale=1000, digits=2),
    Row("total_act_ret", "ec", scale=1000, digits=2),
)


def em_status(reading: Reading) -> dict[str, Any]:
    return {"id": 0, **render(EM_STATUS, reading), "user_calibrated_phase": []}


def emdata_status(reading: Reading) -> dict[str, Any]:
    return {"id": 0, **render(EMDATA_STATUS, reading)}


# ---------------------------------------------------------------- what does not need a reading


def device_info(device: Device) -> dict[str, Any]:
    return {
        "name": None,
        "id": device.id,
        "mac": device.mac,
        "slot": 0,
        "model": MODEL,
        "gen": GEN,
        "fw_id": FIRMWARE,
        "ver": VERSION,
        "app": APP,
        "auth_en": False,
        "auth_domain": None,
        "profile": "triphase",
    }


def em_config() -> dict[str, Any]:
    return {
        "id": 0,
        "name": None,
        "blink_mode_selector": "active_energy",
        "phase_selector": "all",
        "monitor_phase_sequence": False,
        "ct_type": "120A",
    }


def sys_config(device: Device) -> dict[str, Any]:
    return {
        "device": {"name": None, "mac": device.mac, "fw_id": FIRMWARE, "discoverable": True},
        "location": {"tz": None, "lat": None, "lon": None},
        "debug": {"mqtt": {"enable": False}, "websocket": {"enable": False}, "udp": {"addr": None}},
        "ui_data": {},
        "rpc_udp": {"dst_addr": None, "listen_port": None},
        "sntp": {"server": "time.google.com"},
        "cfg_rev": 1,
    }


def sys_status(device: Device, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    return {
        "mac": device.mac,
        "restart_required": False,
        "time": time.strftime("%H:%M", time.localtime(now)),
        "unixtime": int(now),
        "uptime": int(now - device.identity.started),
        "ram_size": 245_000,
        "ram_free": 120_000,
        "fs_size": 524_288,
        "fs_free": 200_000,
        "cfg_rev": 1,
        "kvs_rev": 0,
        "schedule_rev": 0,
        "webhook_rev": 0,
        "available_updates": {},
    }


def config(device: Device) -> dict[str, Any]:
    return {
        "ble": {"enable": False, "rpc": {"enable": False}},
        "cloud": {"enable": False, "server": None},
        "em:0": em_config(),
        "emdata:0": {},
        "eth": {"enable": True, "ipv4mode": "dhcp"},
        "mqtt": {"enable": False, "server": None},
        "sys": sys_config(device),
        "wifi": {"sta": {"enable": False, "ssid": None}},
        "ws": {"enable": False, "server": None},
    }


def status(device: Device, reading: Reading) -> dict[str, Any]:
    return {
        "ble": {},
        "cloud": {"connected": False},
        "em:0": em_status(reading),
        "emdata:0": emdata_status(reading),
        "eth": {"ip": None},
        "modbus": {},
        "mqtt": {"connected": False},
        "sys": sys_status(device),
        "wifi": {"sta_ip": None, "status": "disconnected", "ssid": None, "rssi": 0},
        "ws": {"connected": False},
    }


# ---------------------------------------------------------------- the method table

Method = Callable[[Device, Reading | None], Any]


def _measured(build: Callable[[Device, Reading], Any], *, reuse: bool = True) -> Method:
    """A method answering from a fresh reading. `reuse`: its answer depends on the reading
    alone, so the last one is kept and served again until the next reading (batteries poll
    the same reading several times a second)."""
    last: list[Any] = [None, None]  # the reading, its answer

    def method(device: Device, reading: Reading | None) -> Any:
        if reading is None:
            raise RpcError(UNAVAILABLE, "meter data unavailable (no fresh reading)")
        if not reuse:
            return build(device, reading)
        if last[0] is not reading:
            last[1] = build(device, reading)
            last[0] = reading
        return last[1]

    return method


METHODS: dict[str, Method] = {
    "Shelly.GetDeviceInfo": lambda device, _r: device_info(device),
    "Shelly.GetConfig": lambda device, _r: config(device),
    "Shelly.GetStatus": _measured(status, reuse=False),  # sys carries the time
    "Shelly.GetComponents": lambda _d, _r: {"components": [], "cfg_rev": 1, "offset": 0,
                                            "total": 0},
    "Sys.GetConfig": lambda device, _r: sys_config(device),
    "Sys.GetStatus": lambda device, _r: sys_status(device),
    "EM.GetConfig": lambda _d, _r: em_config(),
    "EM.GetStatus": _measured(lambda _d, reading: em_status(reading)),
    "EMData.GetConfig": lambda _d, _r: {},
    "EMData.GetStatus": _measured(lambda _d, reading: emdata_status(reading)),
}  # fmt: skip
METHODS["Shelly.ListMethods"] = lambda _d, _r: {"methods": sorted(METHODS)}
# methods of one component (EM:0, EMData:0): their `id` parameter must be 0
COMPONENT = frozenset({"EM.GetConfig", "EM.GetStatus", "EMData.GetConfig", "EMData.GetStatus"})
# methods that answer only from a fresh reading
MEASURED = frozenset({"Shelly.GetStatus", "EM.GetStatus", "EMData.GetStatus"})


def answer(method: str, params: Any, reading: Reading | None, device: Device) -> Any:
    """The result of `method`; raises `RpcError` as the device would."""
    handler = METHODS.get(method)
    if handler is None:
        raise RpcError(NOT_FOUND, f"No handler for {method}")
    if method in COMPONENT:
        component = params.get("id", 0) if isinstance(params, dict) else 0
        if component != 0 and str(component) != "0":
            raise RpcError(INVALID_ARGUMENT, f"Argument 'id', value {component} not found!")
    return handler(device, reading)


def frame(request: dict[str, Any], reading: Reading | None, device: Device) -> dict[str, Any]:
    """The JSON-RPC response frame to one request frame (a dict with `method`)."""
    out: dict[str, Any] = {"id": request.get("id"), "src": device.id}
    if "src" in request:
        out["dst"] = request["src"]
    try:
        out["result"] = answer(str(request["method"]), request.get("params"), reading, device)
    except RpcError as error:
        out["error"] = {"code": error.code, "message": error.message}
    return out
