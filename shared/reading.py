"""The canonical meter reading every service shares, and its two JSON forms.

A `Reading` is what one P1 telegram or one DLMS frame said, in fixed units: energy in kWh/kvarh,
power in W/var, voltage in V, current in A, times in milliseconds since the Unix epoch.

- `encode_reading` / `decode_reading`: the full form stored on the readings stream.
- `cozify_message`: the Cozify HAN meter message (`HAN_METER_MESSAGE`) that REST `/meter` answers
  and MQTT publishes, so clients written for Cozify work unchanged.

Arrays follow Cozify: `p`, `pi`, `pe`, `r` are `[total, L1, L2, L3]`; `u`, `i` are `[L1, L2, L3]`.
A value the meter did not send is `None` (JSON `null`), never 0. What each value is, and how each
interface shows it, is the field catalogue in shared/fields.py (checked against `Reading`).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

MESSAGE_TYPE = "HAN_METER_MESSAGE"

Value = float | None
CrcStatus = Literal["ok", "absent", "unchecked"]


def _four() -> list[Value]:
    return [None, None, None, None]


def _three() -> list[Value]:
    return [None, None, None]


class SubMeter(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An M-Bus device behind the electricity meter (gas, water, heat): 0-n:24.2.1 and friends."""

    channel: int
    device_type: int | None = None
    id: str | None = None
    value: float | None = None
    unit: str | None = None
    ts: int | None = None


class Reading(msgspec.Struct, kw_only=True):
    """One decoded telegram or frame."""

    ts: int
    received: int
    meter: str | None = None  # the meter's name on this box (shared.meters.meter_of)
    ic: Value = None
    ec: Value = None
    ric: Value = None
    rec: Value = None
    p: list[Value] = msgspec.field(default_factory=_four)
    pi: list[Value] = msgspec.field(default_factory=_four)
    pe: list[Value] = msgspec.field(default_factory=_four)
    r: list[Value] = msgspec.field(default_factory=_four)
    u: list[Value] = msgspec.field(default_factory=_three)
    i: list[Value] = msgspec.field(default_factory=_three)
    meter_id: str | None = None
    meter_model: str | None = None
    meter_time: str | None = None
    tariffs: dict[str, float] = msgspec.field(default_factory=dict)
    tariff: str | None = None
    frequency: Value = None
    power_failures: int | None = None
    long_power_failures: int | None = None
    submeters: list[SubMeter] = msgspec.field(default_factory=list)
    crc: CrcStatus = "absent"
    protocol: str = "p1"
    extras: dict[str, Any] = msgspec.field(default_factory=dict)


COZIFY_KEYS = ("ts", "ic", "ec", "ric", "rec", "p", "pi", "pe", "r", "u", "i")

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Reading)


def encode_reading(reading: Reading) -> bytes:
    """The full reading as compact JSON bytes (the stream's `reading` field)."""
    return _encoder.encode(reading)


def decode_reading(data: bytes | str) -> Reading:
    """Parse a stream entry's `reading` field; raises `msgspec.ValidationError` on bad data."""
    return _decoder.decode(data)


def cozify_message(reading: Reading) -> dict[str, Any]:
    """The Cozify HAN meter message for this reading."""
    message: dict[str, Any] = {"type": MESSAGE_TYPE}
    for key in COZIFY_KEYS:
        message[key] = getattr(reading, key)
    return message


def encode_cozify(reading: Reading) -> bytes:
    """`cozify_message` as JSON bytes: the body of REST `/meter` and of each MQTT message."""
    return _encoder.encode(cozify_message(reading))
