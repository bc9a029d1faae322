"""What the uplink publishes (pure: no I/O).

- a reading: subject `hanport.<box>.<meter>.readings`, payload the reading's stream JSON
  (`shared.reading.encode_reading`), header `Nats-Msg-Id` = `<box>:<meter>:<stream entry id>`, so
  the hub's JetStream stores a reading sent twice (a replay after a crash) once;
- the box's health: subject `hanport.<box>.health`, JSON (`Health`), id `<box>:health:<ms>`;
- an accounting interval: subject `hanport.<box>.<meter>.energy`, JSON (the export's
  `Interval`), id `<box>:<meter>:energy:<resolution>:<start ms>:<hash of its stored member>`: the
  same interval sent again is dropped by the hub, one whose values changed is a new message.

A meter's name may hold '.', which separates subject tokens: it becomes '~' in the subject (a
meter name never holds '~', so the mapping is reversible: `meter_from_token`). The box (the reader
serial) is checked to be one token.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import msgspec

from services.export.sinks.intervals import Interval
from shared.meters import meter_of
from shared.reading import Reading, encode_reading

PREFIX = "hanport"
MSG_ID = "Nats-Msg-Id"
BOX_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
READINGS = "readings"
HEALTH = "health"
ENERGY = "energy"


@dataclass(frozen=True)
class Outgoing:
    """One message to publish, and the key its acknowledgement releases (a stream entry id)."""

    subject: str
    payload: bytes
    msg_id: str
    key: str = ""

    def headers(self) -> dict[str, str]:
        return {MSG_ID: self.msg_id}


def check_box(box: str) -> str:
    if not BOX_PATTERN.match(box):
        raise ValueError(
            f"box id {box!r}: 1 to 64 letters, digits, '_' or '-' (it is a NATS subject token)"
        )
    return box


def meter_token(meter: str) -> str:
    return meter.replace(".", "~")


def meter_from_token(token: str) -> str:
    return token.replace("~", ".")


def readings_subject(box: str, meter: str) -> str:
    return f"{PREFIX}.{box}.{meter_token(meter)}.{READINGS}"


def energy_subject(box: str, meter: str) -> str:
    return f"{PREFIX}.{box}.{meter_token(meter)}.{ENERGY}"


def health_subject(box: str) -> str:
    return f"{PREFIX}.{box}.{HEALTH}"


def box_subjects(box: str) -> str:
    """Every subject a box publishes under (its permission, its spool's subjects)."""
    return f"{PREFIX}.{box}.>"


def reading_message(box: str, entry_id: str, reading: Reading) -> Outgoing:
    meter = meter_of(reading)
    return Outgoing(
        readings_subject(box, meter), encode_reading(reading), f"{box}:{meter}:{entry_id}", entry_id
    )


class MeterHealth(msgspec.Struct, kw_only=True, omit_defaults=True):
    stream: str
    lag: int = 0  # readings in Redis not yet handed on (not yet read by the group, or pending)
    last_entry: str | None = None  # the newest entry handed on


class Health(msgspec.Struct, kw_only=True, omit_defaults=True):
    box: str
    ts: int  # ms
    version: str
    licence: dict[str, str]  # feature -> "granted" or the reason it is not
    meters: dict[str, MeterHealth] = msgspec.field(default_factory=dict)
    spool: int = 0  # readings on the box's disk spool not yet acknowledged by the hub
    lag: int = 0  # all readings on the box not yet acknowledged by the hub


_encode = msgspec.json.Encoder().encode
decode_health = msgspec.json.Decoder(Health).decode


decode_interval = msgspec.json.Decoder(Interval).decode


def interval_message(box: str, interval: Interval, member: str) -> Outgoing:
    """An accounting interval; `member` is its stored form (services/accounting/store.py), whose
    hash in the id tells a revision (grown values) from a replay. `key` is the member."""
    digest = hashlib.sha256(member.encode()).hexdigest()[:16]
    msg_id = f"{box}:{interval.meter}:{ENERGY}:{interval.resolution}:{interval.start_ms}:{digest}"
    return Outgoing(energy_subject(box, interval.meter), _encode(interval), msg_id, member)


def health_message(health: Health) -> Outgoing:
    return Outgoing(
        health_subject(health.box), _encode(health), f"{health.box}:{HEALTH}:{health.ts}"
    )


@dataclass(frozen=True)
class Subject:
    """A hub subject taken apart (`parse_subject`)."""

    box: str
    meter: str | None
    kind: str


def parse_subject(subject: str) -> Subject | None:
    """`hanport.<box>.<meter>.readings|energy` or `hanport.<box>.health`; None for anything
    else."""
    parts = subject.split(".")
    if len(parts) == 4 and parts[0] == PREFIX:
        return Subject(parts[1], meter_from_token(parts[2]), parts[3])
    if len(parts) == 3 and parts[0] == PREFIX:
        return Subject(parts[1], None, parts[2])
    return None
