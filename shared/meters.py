"""Several meters per box: a meter's name, its Redis keys, and the directory of meters.

One ingest process reads one meter. Its name is `HANPORT_METER_NAME` when set, else the
equipment id the meter sends, else one derived from the source (`name_from_source`). Every
reading carries it (`Reading.meter`); `meter_of` is how a consumer keys state by meter.

Keys (docs/streams.md): a named meter writes `hanport:{<name>}:readings`, `...:raw` and
`...:ingest:status`; the braces are a Redis Cluster hash tag, so one meter's keys (which the
ingest's publish script writes together) share a slot. A meter read by an ingest without
`HANPORT_METER_NAME` writes the box's classic keys (`HANPORT_STREAM`, `HANPORT_RAW_STREAM`,
`hanport:ingest:status`), so a one-meter box is exactly as before.

The directory is one Redis hash, `hanport:meters`: field = meter name, value = a `MeterRecord`
as JSON, rewritten by the meter's ingest every few seconds. Consumers read it to find every
meter's stream (`MeterDirectory`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Protocol

import msgspec
from redis.asyncio import Redis

NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
DIRECTORY_KEY = "hanport:meters"
CLASSIC_STATUS_KEY = "hanport:ingest:status"
FALLBACK_NAME = "meter"
# A directory record not rewritten for this long: its ingest is not running (the meter is listed,
# and its data is stale, but it is no longer a name conflict).
ALIVE_S = 30.0


def check_name(name: str) -> str:
    """`name` if it is a valid meter name; `ValueError` saying what is allowed otherwise."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"{name!r} is not a meter name: use 1 to 64 letters, digits, . _ or -")
    return name


def name_from_text(text: str) -> str:
    """A valid meter name made from any text (an equipment id, a device path): other
    characters become '-', at most 64 kept; empty text gives `FALLBACK_NAME`."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:64]
    return cleaned or FALLBACK_NAME


def equipment_name(meter_id: str) -> str:
    """The meter name an equipment id gives: DSMR meters send theirs as hex-encoded ASCII
    (`4530303434...` is `E0044...`), which is decoded; any other id is kept as sent."""
    text = meter_id.strip()
    if len(text) >= 4 and len(text) % 2 == 0 and re.fullmatch(r"[0-9A-Fa-f]+", text):
        decoded = bytes.fromhex(text).decode("ascii", errors="replace")
        if decoded.isprintable() and decoded.strip() and NAME_PATTERN.match(decoded.strip()):
            return decoded.strip()
    return name_from_text(text)


class FromMeter(Protocol):
    """A reading, or what a consumer kept of one (the export's `Exported`): its meter's name."""

    @property
    def meter(self) -> str | None: ...
    @property
    def meter_id(self) -> str | None: ...


def meter_of(reading: FromMeter) -> str:
    """The name of the meter a reading is from: every consumer keys its state by this. A reading
    written without a name (an older ingest, a test's own XADD) is its equipment id's, else the
    box's one meter's."""
    if reading.meter:
        return reading.meter
    if reading.meter_id:
        return equipment_name(reading.meter_id)
    return FALLBACK_NAME


@dataclass(frozen=True)
class MeterKeys:
    """The Redis keys one meter's ingest writes."""

    readings: str
    raw: str
    status: str

    @classmethod
    def named(cls, name: str) -> MeterKeys:
        tag = "{" + name + "}"
        return cls(f"hanport:{tag}:readings", f"hanport:{tag}:raw", f"hanport:{tag}:ingest:status")

    @classmethod
    def classic(cls, stream: str, raw_stream: str) -> MeterKeys:
        return cls(stream, raw_stream, CLASSIC_STATUS_KEY)


class MeterRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the directory says of one meter (written by its ingest)."""

    name: str
    readings: str
    raw: str
    status: str
    source: str = ""  # where its ingest reads it (`serial /dev/ttyUSB0`)
    host: str = ""  # the host name its ingest runs on
    meter_id: str | None = None
    model: str | None = None
    started: int = 0  # ms: when its ingest started
    updated: int = 0  # ms: when its ingest last rewrote this record

    def alive(self, now_ms: int | None = None) -> bool:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        return now_ms - self.updated < ALIVE_S * 1000


_encode = msgspec.json.Encoder().encode
_decode_record = msgspec.json.Decoder(MeterRecord).decode


def encode_record(record: MeterRecord) -> bytes:
    return _encode(record)


def decode_record(data: bytes | str) -> MeterRecord:
    return _decode_record(data)


def default_meter(names: list[str], configured: str | None, classic: str | None) -> str | None:
    """The meter `/meter`, the classic MQTT topic and unmapped Modbus unit ids serve: the
    configured one (`HANPORT_DEFAULT_METER`), else the one on the classic stream, else the first
    by name."""
    if configured:
        return configured
    if classic:
        return classic
    return min(names) if names else None


@dataclass
class MeterDirectory:
    """The directory of meters in Redis (`hanport:meters`)."""

    redis: Redis
    key: str = DIRECTORY_KEY

    async def records(self) -> list[MeterRecord]:
        """Every meter's record, by name; a record that does not decode is skipped."""
        raw = await self.redis.hgetall(self.key)
        out = []
        for value in raw.values():
            try:
                out.append(decode_record(value))
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
        return sorted(out, key=lambda r: r.name)

    async def get(self, name: str) -> MeterRecord | None:
        value = await self.redis.hget(self.key, name)
        if value is None:
            return None
        try:
            return decode_record(value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None

    async def put(self, record: MeterRecord) -> None:
        await self.redis.hset(self.key, record.name, encode_record(record))
