"""List layouts of DLMS data-notification bodies: a decoded body in, (OBIS code, value, unit) out.

Meters list their registers in one of these shapes, each recognised from the body's own shape
and walked by one small function per shape; the per-make knowledge is data (tables below):
- OBIS-tagged with scaler and unit (Aidon, Kaifa MA309 in Austria): an array/structure of
  `[obis, value]` or `[obis, value, [scaler, unit]]` structures;
- OBIS-tagged pairs without scaler (Kamstrup, Kaifa's OBIS variant): `[list id, obis, value,
  obis, value, ...]`, with the per-register scalers each make documents (`PAIR_MAKES`);
- positional, no OBIS codes (Kaifa `KFM_001`, Landis+Gyr E450 at Netz Burgenland): the meaning
  of each position from `POSITIONAL`, chosen by the list id and the number of items.
Values come out as sent with their scaler, units as DLMS names them (W, var, Wh, varh, V, A, Hz); codes normalised
by `obis.obis_key`. A 12-byte octet string on the clock code is passed on as raw date-time bytes.
Unknown shapes raise `LayoutError`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

from ..obis import obis_key

CLOCK = "0-0:1.0.0"


class LayoutError(ValueError):
    """A notification body in no known list layout."""


class Item(NamedTuple):
    """One register: the value as sent, to be scaled by 10^scaler, in `unit`."""

    code: str
    value: Any
    unit: str | None
    scaler: int = 0


# DLMS unit enumeration (IEC 62056-6-2) for the quantities a HAN port sends.
UNITS: dict[int, str] = {
    27: "W",
    28: "VA",
    29: "var",
    30: "Wh",
    31: "VAh",
    32: "varh",
    33: "A",
    35: "V",
    44: "Hz",
}

# DLMS values sent without a scaler/unit structure are in base units: these, by register.
BASE_UNITS: dict[str, str] = {
    **{f"1-0:{c}.7.0": "W" for c in (1, 2, 21, 22, 41, 42, 61, 62)},
    **{f"1-0:{c}.7.0": "var" for c in (3, 4, 23, 24, 43, 44, 63, 64)},
    **{f"1-0:{c}.7.0": "A" for c in (31, 51, 71)},
    **{f"1-0:{c}.7.0": "V" for c in (32, 52, 72)},
    "1-0:14.7.0": "Hz",
    **{f"1-0:{c}.8.{t}": "Wh" for c in (1, 2) for t in range(5)},
    **{f"1-0:{c}.8.{t}": "varh" for c in (3, 4) for t in range(5)},
}


class PairMake(NamedTuple):
    """A make that sends bare `obis, value` pairs without scalers: the code of its meter type,
    and scalers (10^n) per register by meter-type prefix ("" = any type)."""

    type_code: str
    scalers: dict[str, dict[str, int]]


_CURRENTS = ("1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0")
_VOLTAGES = ("1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0")
_ENERGIES = ("1-0:1.8.0", "1-0:2.8.0", "1-0:3.8.0", "1-0:4.8.0")
# By list id prefix; "" is a list without a list id.
PAIR_MAKES: dict[str, PairMake] = {
    # Kamstrup: currents in 0.01 A (CT meters, type 685...: mA), energies in 10 Wh/varh.
    "Kamstrup": PairMake(
        "1-0:96.1.1",
        {
            "": {**dict.fromkeys(_CURRENTS, -2), **dict.fromkeys(_ENERGIES, 1)},
            "685": {**dict.fromkeys(_CURRENTS, -3), **dict.fromkeys(_ENERGIES, 1)},
        },
    ),
    # Kaifa's OBIS-tagged variant (no list id): currents in mA, voltages in 0.1 V.
    "": PairMake(
        "0-0:96.1.7", {"": {**dict.fromkeys(_CURRENTS, -3), **dict.fromkeys(_VOLTAGES, -1)}}
    ),
}


def _pair_scalers(list_id: Any, body: list[Any]) -> dict[str, int]:
    """The scalers for bare pairs in `body`, from its make (list id) and meter type."""
    if not isinstance(list_id, str):
        return {}
    make = PAIR_MAKES.get("") if list_id == "" else None
    for prefix, candidate in PAIR_MAKES.items():
        if prefix and list_id.startswith(prefix):
            make = candidate
    if make is None:
        return {}
    meter_type = ""
    for position, value in enumerate(body[:-1]):
        if _code(value) == make.type_code:
            meter_type = str(_text(body[position + 1]))
    scalers = make.scalers[""]
    for prefix, by_type in make.scalers.items():
        if prefix and meter_type.startswith(prefix):
            scalers = by_type
    return scalers


# Positional lists: (list id or None, number of items) -> per position (code, scaler, unit),
# None for the list id itself. Sources: Kaifa "KFM_001" HAN documentation (Norway);
# Netz Burgenland / Landis+Gyr E450 customer interface (as in amsreader-firmware LNG2).
P = tuple[str, int, str | None]
_KFM_ID: list[P | None] = [None, ("0-0:96.1.0", 0, None), ("0-0:96.1.7", 0, None)]
_KFM_POWER: list[P | None] = [
    ("1-0:1.7.0", 0, "W"),
    ("1-0:2.7.0", 0, "W"),
    ("1-0:3.7.0", 0, "var"),
    ("1-0:4.7.0", 0, "var"),
]
_KFM_I3: list[P | None] = [
    ("1-0:31.7.0", -3, "A"),
    ("1-0:51.7.0", -3, "A"),
    ("1-0:71.7.0", -3, "A"),
]
_KFM_U3: list[P | None] = [
    ("1-0:32.7.0", -1, "V"),
    ("1-0:52.7.0", -1, "V"),
    ("1-0:72.7.0", -1, "V"),
]
_KFM_ENERGY: list[P | None] = [
    (CLOCK, 0, None),
    ("1-0:1.8.0", 0, "Wh"),
    ("1-0:2.8.0", 0, "Wh"),
    ("1-0:3.8.0", 0, "varh"),
    ("1-0:4.8.0", 0, "varh"),
]
_KFM_2_1P = _KFM_ID + _KFM_POWER + _KFM_I3[:1] + _KFM_U3[:1]
_KFM_2_3P = _KFM_ID + _KFM_POWER + _KFM_I3 + _KFM_U3
_LG_E450: list[P | None] = [
    ("1-0:32.7.0", 0, "V"),
    ("1-0:52.7.0", 0, "V"),
    ("1-0:72.7.0", 0, "V"),
    ("1-0:31.7.0", -2, "A"),
    ("1-0:51.7.0", -2, "A"),
    ("1-0:71.7.0", -2, "A"),
    ("1-0:1.7.0", 0, "W"),
    ("1-0:2.7.0", 0, "W"),
    ("1-0:1.8.0", 0, "Wh"),
    ("1-0:2.8.0", 0, "Wh"),
]
POSITIONAL: dict[tuple[str | None, int], tuple[str, list[P | None]]] = {
    (None, 1): ("kaifa", [("1-0:1.7.0", 0, "W")]),  # Kaifa list 1: active power import only
    ("KFM_001", 9): ("kaifa", _KFM_2_1P),
    ("KFM_001", 13): ("kaifa", _KFM_2_3P),
    ("KFM_001", 14): ("kaifa", _KFM_2_1P + _KFM_ENERGY),
    ("KFM_001", 18): ("kaifa", _KFM_2_3P + _KFM_ENERGY),
    (None, 11): ("landis_gyr_e450", [*_LG_E450, ("0-0:96.1.0", 0, None)]),
    (None, 14): (
        "landis_gyr_e450",
        [
            *_LG_E450,
            ("landis_gyr_e450.item11", 0, None),
            ("landis_gyr_e450.item12", 0, None),
            ("landis_gyr_e450.item13", 0, None),
            ("0-0:96.1.0", 0, None),
        ],
    ),
}


def scaled(value: Any, scaler: int) -> Any:
    """`value` times 10^scaler for numbers (exact decimal division for negative scalers)."""
    if not scaler or not isinstance(value, int | float) or isinstance(value, bool):
        return value
    return value * 10**scaler if scaler > 0 else value / 10**-scaler


def _code(raw: Any) -> str | None:
    """The OBIS code of a 6-byte octet string."""
    if type(raw) is not bytes or len(raw) != 6:
        return None
    return _obis_text(raw)


@lru_cache(maxsize=4096)
def _obis_text(raw: bytes) -> str:
    """Memoised (meters repeat the same few codes): a pure function of the six bytes."""
    return obis_key(raw[0], raw[1], raw[2], raw[3], raw[4])


def _scaler_unit(code: str, element: list[Any]) -> tuple[int, str | None]:
    if len(element) > 2 and isinstance(element[2], list) and len(element[2]) == 2:
        scaler, enum = element[2]
        if not isinstance(scaler, int) or not isinstance(enum, int):
            raise LayoutError(f"bad scaler/unit for {code}")
        return scaler, UNITS.get(enum)
    return 0, None


def _tagged(body: list[Any]) -> list[Item]:
    """`[obis, value(, [scaler, unit])]` structures and bare `obis, value` pairs, in any mix,
    optionally after a list id; bare pairs of a make in `PAIR_MAKES` get its scalers, and values
    without a scaler/unit structure are in base units (`BASE_UNITS`)."""
    items: list[Item] = []
    start = 0
    head = body[0]
    if isinstance(head, str | bytes) and _code(head) is None:
        list_id = _text(head)
        items.append(Item("list_id", list_id, None))
        start = 1
    else:
        list_id = ""
    pair_scalers = _pair_scalers(list_id, body)
    i = start
    end = len(body)
    while i < end:
        element = body[i]
        if element is None:  # null-data between elements
            i += 1
            continue
        if isinstance(element, list) and element and (code := _code(element[0])) is not None:
            scaler, unit = _scaler_unit(code, element)
            value = element[1] if len(element) > 1 else None
            if unit is None:
                unit = BASE_UNITS.get(code)
            items.append(Item(code, value, unit, scaler))
            i += 1
            continue
        code = _code(element)
        if code is None or i + 1 >= end:
            raise LayoutError(f"element {i} of an OBIS-tagged list has no OBIS code")
        value = body[i + 1]
        items.append(Item(code, value, BASE_UNITS.get(code), pair_scalers.get(code, 0)))
        i += 2
    return items


def _text(value: Any) -> Any:
    if isinstance(value, bytes) and value.isascii():
        return value.decode("ascii")
    return value


def _positional(body: list[Any]) -> tuple[str, list[Item]]:
    list_id = _text(body[0])
    key = (list_id if isinstance(list_id, str) else None, len(body))
    entry = POSITIONAL.get(key)
    if entry is None:
        raise LayoutError(f"positional list {key[0] or '(no list id)'} of {len(body)} items")
    name, positions = entry
    items = []
    for position, value in zip(positions, body, strict=True):
        if position is None:
            items.append(Item("list_id", list_id, None))
            continue
        code, scaler, unit = position
        items.append(Item(code, value, unit, scaler))
    return name, items


def _is_tagged(element: Any) -> bool:
    if isinstance(element, list):
        return bool(element) and _code(element[0]) is not None
    return _code(element) is not None


def list_items(body: Any) -> tuple[str, list[Item]]:
    """(layout name, items) of a notification body; raises `LayoutError`."""
    if not isinstance(body, list) or not body:
        raise LayoutError("notification body is not a non-empty structure or array")
    if _is_tagged(body[0]) or (
        len(body) > 2 and isinstance(body[0], str | bytes) and _is_tagged(body[1])
    ):
        return "obis", _tagged(body)
    return _positional(body)
