"""The schemas the OpenAPI document shows, with examples. Answers on the hot paths are encoded
with msgspec from `shared.reading`; tests check they match these schemas (schemathesis). The
descriptions of a reading's values are those of the field catalogue (shared/fields.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.fields import BY_KEY

Value = float | None


def _about(key: str) -> str:
    """The description of the reading's value `key`, from the field catalogue."""
    return BY_KEY[key].description


Four = Annotated[list[Value], Field(min_length=4, max_length=4, description="[total, L1, L2, L3]")]
Three = Annotated[list[Value], Field(min_length=3, max_length=3, description="[L1, L2, L3]")]

METER_EXAMPLE: dict[str, Any] = {
    "type": "HAN_METER_MESSAGE",
    "ts": 1764152400000,
    "ic": 2721.126,
    "ec": 0.0,
    "ric": 1384.336,
    "rec": 0.09,
    "p": [4190.0, 1980.0, 354.0, 1855.0],
    "pi": [4190.0, 1980.0, 354.0, 1855.0],
    "pe": [0.0, 0.0, 0.0, 0.0],
    "r": [1120.0, 500.0, 120.0, 500.0],
    "u": [230.7, 230.1, 231.0],
    "i": [9.7, 1.9, 9.2],
}


class MeterMessage(BaseModel):
    """The Cozify HAN meter message. A value the meter does not send is `null`, never 0."""

    model_config = ConfigDict(json_schema_extra={"examples": [METER_EXAMPLE]})

    type: Literal["HAN_METER_MESSAGE"]
    ts: int = Field(description=_about("ts"))
    ic: Value = Field(description=_about("ic"))
    ec: Value = Field(description=_about("ec"))
    ric: Value = Field(description=_about("ric"))
    rec: Value = Field(description=_about("rec"))
    p: Four = Field(description=_about("p"))
    pi: Four = Field(description=_about("pi"))
    pe: Four = Field(description=_about("pe"))
    r: Four = Field(description=_about("r"))
    u: Three = Field(description=_about("u"))
    i: Three = Field(description=_about("i"))


class MeterNow(MeterMessage):
    """`/meter`: the newest reading's message, its missing energy counters held over."""

    held_ts: dict[str, int] | None = Field(
        default=None,
        description="Only when there is one: the energy counters (`ic`, `ec`, `ric`, `rec`) "
        "this reading did not carry, served at their last known value, each with the `ts` (ms) "
        "of the reading that sent it (at most 2 h before `ts`; same meter).",
    )


class HistoryItem(MeterMessage):
    id: str = Field(description="The reading's stream id; pass it as `since` to resume after it.")


class History(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "HAN_METER_HISTORY",
                    "readings": [{"id": "1764152400000-0", **METER_EXAMPLE}],
                    "next_since": "1764152400000-0",
                    "more": False,
                }
            ]
        }
    )

    type: Literal["HAN_METER_HISTORY"]
    readings: list[HistoryItem] = Field(description="Oldest first.")
    next_since: str | None = Field(
        description="Id of the last reading returned: pass as `since` for the next page or to "
        "resume; null when nothing was returned."
    )
    more: bool = Field(description="True when `limit` cut the answer short.")


class Meter(BaseModel):
    id: str | None = Field(description=_about("meter_id"))
    model: str | None = Field(description=_about("meter_model"))


class IngestStatus(BaseModel):
    """Why no fresh reading arrives: the ingest service's word on its source (docs/streams.md,
    `hanport:ingest:status`), or `state` `ingest` when the ingest service has not reported."""

    state: str = Field(
        description="The check that failed: source, bytes, line, frames, crc, encryption, "
        "decode; `ingest` when the ingest service is silent; `ok` when it reads fine."
    )
    reason: str = Field(description="What was found, in words.")
    fix: str = Field(description="What to do about it (empty when there is nothing to do).")
    updated: int | None = Field(description="When ingest wrote it, ms; null: never.")


class StateMessage(BaseModel):
    """The reader's state (Cozify's `HAN_STATE_MESSAGE` idea, hanport's fields)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "HAN_STATE_MESSAGE",
                    "name": "hanport",
                    "model": "hanport",
                    "serial": "HP1A2B3C4D5E",
                    "version": "0.1.0",
                    "uptime": 3600.5,
                    "meter": {"id": "7359992890941742", "model": "LGF5E360"},
                    "last_reading": 1764152400000,
                    "last_reading_age": 0.8,
                    "redis": True,
                    "licensed": {
                        "rest": True,
                        "mqtt": False,
                        "modbus": False,
                        "shelly": False,
                        "homewizard": False,
                        "sma": False,
                        "export": False,
                    },
                    "v": "0.1.0",
                    "online": False,
                    "channel": None,
                    "ethIp": None,
                    "wifiIp": None,
                }
            ]
        }
    )

    type: Literal["HAN_STATE_MESSAGE"]
    name: str
    model: str
    serial: str | None = Field(description="The reader's serial; null until Redis was reached.")
    version: str = Field(description="hanport version.")
    uptime: float = Field(description="Seconds since this service started.")
    meter: Meter
    last_reading: int | None = Field(description="`ts` of the newest reading, ms.")
    last_reading_age: float | None = Field(description="Seconds since it was received.")
    redis: bool = Field(description="Whether Redis answered the last check.")
    licensed: dict[str, bool] = Field(description="Interface -> licensed now.")
    # Keys a Cozify reader serves here (for clients written for Cozify)
    v: str = Field(description="Cozify: firmware version (= `version`).")
    online: bool = Field(description="Cozify: connected to Cozify's cloud (hanport: never).")
    channel: None = Field(description="Cozify: update channel (hanport: none).")
    ethIp: None = Field(description="Cozify: Ethernet address (hanport: not known).")
    wifiIp: None = Field(description="Cozify: Wi-Fi address (hanport: not known).")

    ingest: IngestStatus | None = Field(
        default=None, description="Only while there is no fresh reading: why (see IngestStatus)."
    )


class Network(BaseModel):
    e: bool | None = Field(description="Active (hanport: not known).")
    n: dict[str, None] = Field(description="`m`: addressing mode (hanport: not known).")


class WiFi(Network):
    s: str | None = Field(description="SSID.")
    z: int | None = Field(description="Channel.")
    b: bool | None = Field(description="Set-up beacon active.")


class Configuration(BaseModel):
    """A Cozify reader's `/configuration`, with hanport's values or null where it has none."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "v": "0.1.0",
                    "t": "EET",
                    "m": {"f": None},
                    "e": {"e": None, "n": {"m": None}},
                    "w": {"e": None, "n": {"m": None}, "s": None, "z": None, "b": None},
                }
            ]
        }
    )

    v: str = Field(description="Firmware version (hanport's version).")
    t: str = Field(description="Timezone of the service.")
    m: dict[str, float | None] = Field(description="`f`: main fuse, A (hanport: not known).")
    e: Network = Field(description="Ethernet.")
    w: WiFi = Field(description="Wi-Fi.")


class Telegram(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "HAN_TELEGRAM",
                    "id": "1764152400000-0",
                    "encoding": "text",
                    "telegram": "/LGF5E360\r\n\r\n0-0:1.0.0(221215155050W)\r\n...!5F0E\r\n",
                }
            ]
        }
    )

    type: Literal["HAN_TELEGRAM"]
    id: str = Field(description="Stream id of the raw entry (receive time in ms, sequence).")
    encoding: Literal["text", "hex"] = Field(description="`text` for P1, `hex` for binary frames.")
    telegram: str = Field(description="The telegram exactly as sent (hex digits when binary).")
    fields: dict[str, str] = Field(
        default_factory=dict, description="Any other fields of the raw stream entry."
    )


class Error(BaseModel):
    """Every error answer: a machine-readable `error` and a sentence saying why and what to do."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(
        description="stale | unauthorized | forbidden | unlicensed | bad_request | "
        "redis_unavailable | not_found"
    )
    message: str


class StaleError(Error):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "error": "stale",
                    "message": "no fresh reading: the newest reading is 42.0 s old (limit 30 s)",
                    "age_seconds": 42.0,
                    "stale_after": 30.0,
                    "last_reading": 1764152400000,
                }
            ]
        },
    )

    age_seconds: float | None = Field(description="Age of the newest reading; null: none yet.")
    stale_after: float
    last_reading: int | None


class BadRequest(Error):
    detail: list[dict[str, Any]] = Field(description="One item per bad parameter.")


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    ready: bool
    redis: bool
    fresh: bool
    message: str
    ingest: IngestStatus | None = Field(
        default=None, description="Only while there is no fresh reading: why (see IngestStatus)."
    )


# --- several meters (docs/rest.md, "Several meters") ---------------------------------------
METER_NAME = r"^[A-Za-z0-9._-]{1,64}$"  # shared.meters.NAME_PATTERN


class SubMeterValue(BaseModel):
    """An M-Bus sub-meter behind the meter (gas, water, heat), with its own time."""

    medium: str = Field(
        description="`gas`, `water`, `heat`, `warm_water`, `hot_water`, `cold_water`, "
        "`cooling`, `heat_cooling`, `electricity` or `other` (from the M-Bus device type, "
        "else the unit)."
    )
    device_type: int | None = Field(description="M-Bus device type as sent (0-n:24.1.0).")
    id: str | None = Field(description="The sub-meter's equipment id (0-n:96.1.0) as sent.")
    value: float | None = Field(description="Its register (0-n:24.2.1): m3, GJ or kWh.")
    unit: str | None = Field(description="The register's unit as sent: `m3`, `GJ`, `kWh`.")
    ts: int | None = Field(description="When the sub-meter took the value, ms (its own time).")


SUBMETERS_EXAMPLE: dict[str, Any] = {
    "1": {
        "medium": "gas",
        "device_type": 3,
        "id": "4730303339303031363532303530323136",
        "value": 41.138,
        "unit": "m3",
        "ts": 1764151200000,
    }
}


class MeterOfBox(MeterNow):
    """`/meters/{id}`: that meter's message as `/meter` serves the default one, plus its name
    and its sub-meters (the Cozify keys unchanged)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {**METER_EXAMPLE, "meter": "gas-and-power", "submeters": SUBMETERS_EXAMPLE}
            ]
        }
    )

    meter: str = Field(description="The meter's name on this box (its id in `/meters`).")
    submeters: dict[str, SubMeterValue] | None = Field(
        default=None,
        description="Only when the meter has M-Bus sub-meters: by channel (`1`-`4`).",
    )


class SubMeterBrief(BaseModel):
    channel: int = Field(description="M-Bus channel (the `n` of 0-n:24.2.1).")
    medium: str = Field(description="As in `SubMeterValue`.")


class MeterListItem(BaseModel):
    id: str = Field(description="The meter's name on this box: use it in `/meters/{id}`.")
    model: str | None = Field(description=_about("meter_model"))
    meter_id: str | None = Field(description=_about("meter_id"))
    default: bool = Field(description="Whether `/meter`, `/han`, `/ws` and `/events` serve it.")
    last_reading: int | None = Field(description="`ts` of its newest reading, ms; null: none.")
    last_reading_age: float | None = Field(description="Seconds since it was received.")
    stale: bool = Field(description="Whether its data is stale (`/meters/{id}` answers 503).")
    submeters: list[SubMeterBrief] = Field(description="Its M-Bus sub-meters, if any.")
    stream: str = Field(description="The readings stream it is read from.")
    source: str | None = Field(description="Its ingest's source, from the directory.")
    in_directory: bool = Field(
        description="Whether its ingest registered it in the directory (`hanport:meters`); "
        "a meter only seen in readings is served all the same."
    )
    served: bool = Field(
        description="Whether its data is served here: false when the REST license names the "
        "meters it serves and not this one (then its endpoints answer 403)."
    )


class MeterList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "HAN_METERS",
                    "default": "7359992890941742",
                    "meters": [
                        {
                            "id": "7359992890941742",
                            "model": "LGF5E360",
                            "meter_id": "7359992890941742",
                            "default": True,
                            "last_reading": 1764152400000,
                            "last_reading_age": 0.8,
                            "stale": False,
                            "submeters": [],
                            "stream": "hanport:readings",
                            "source": "/dev/ttyUSB0",
                            "in_directory": True,
                            "served": True,
                        }
                    ],
                }
            ]
        }
    )

    type: Literal["HAN_METERS"]
    default: str | None = Field(description="The default meter's id; null: no meter yet.")
    meters: list[MeterListItem] = Field(description="Every meter of the box, by id.")


class UnknownMeter(Error):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "error": "unknown_meter",
                    "message": "no meter 'garage' on this box; known: heatpump, main",
                    "meters": ["heatpump", "main"],
                }
            ]
        },
    )

    meters: list[str] = Field(description="The ids of the meters this box knows.")
