"""What the uplink publishes: subjects, message ids, health (pure)."""

from __future__ import annotations

import msgspec
import pytest

from services.accounting.account import IntervalRow
from services.accounting.store import encode_row
from services.export.intervals import interval_of
from services.uplink.messages import (
    Health,
    MeterHealth,
    check_box,
    decode_health,
    decode_interval,
    health_message,
    interval_message,
    parse_subject,
    reading_message,
    readings_subject,
)
from shared.reading import decode_reading
from tests.readings import simulated_readings


def test_a_reading_message_names_box_meter_and_entry() -> None:
    reading = msgspec.structs.replace(simulated_readings(1)[0], meter="flat.2")
    message = reading_message("HP01", "1717236000000-0", reading)
    assert message.subject == "hanport.HP01.flat~2.readings"  # '.' would split the token
    assert message.msg_id == "HP01:flat.2:1717236000000-0"
    assert message.headers() == {"Nats-Msg-Id": "HP01:flat.2:1717236000000-0"}
    assert message.key == "1717236000000-0"
    assert decode_reading(message.payload) == reading
    parsed = parse_subject(message.subject)
    assert parsed is not None and (parsed.box, parsed.meter, parsed.kind) == (
        "HP01", "flat.2", "readings",
    )  # fmt: skip


def test_health_round_trip() -> None:
    health = Health(
        box="HP01", ts=1, version="1.2.3", licence={"mqtt": "granted", "modbus": "no licence"},
        meters={"hanport:readings": MeterHealth(stream="hanport:readings", lag=4)}, spool=3,
        lag=7,
    )  # fmt: skip
    message = health_message(health)
    assert message.subject == "hanport.HP01.health"
    assert message.msg_id == "HP01:health:1"
    assert decode_health(message.payload) == health
    parsed = parse_subject(message.subject)
    assert parsed is not None and (parsed.box, parsed.meter, parsed.kind) == (
        "HP01",
        None,
        "health",
    )


@pytest.mark.parametrize("box", ["", "a.b", "a*", "a>", "a b", "x" * 65])
def test_a_box_id_is_one_subject_token(box: str) -> None:
    with pytest.raises(ValueError, match="subject token"):
        check_box(box)


def test_other_subjects_are_not_ours() -> None:
    assert parse_subject("other.HP01.m.readings") is None
    assert parse_subject("hanport.HP01") is None
    assert readings_subject("HP01", "m") == "hanport.HP01.m.readings"


def test_an_interval_message_ids_its_revision() -> None:
    """The id holds the stored member's hash: the same interval again has the same id (a replay,
    dropped by the hub); grown values give another id (a revision, stored)."""
    row = IntervalRow("quarter", 1717236000000, (0.25, 0.0, 0.01, 0.0), False)
    member = encode_row(row)
    interval = interval_of("flat.2", row)
    message = interval_message("HP01", interval, member)
    assert message.subject == "hanport.HP01.flat~2.energy"
    assert message.msg_id.startswith("HP01:flat.2:energy:15m:1717236000000:")
    assert decode_interval(message.payload) == interval
    assert interval_message("HP01", interval, member).msg_id == message.msg_id
    grown = IntervalRow("quarter", 1717236000000, (0.5, 0.0, 0.01, 0.0), False)
    again = interval_message("HP01", interval_of("flat.2", grown), encode_row(grown))
    assert again.msg_id != message.msg_id
    parsed = parse_subject(message.subject)
    assert parsed is not None and (parsed.box, parsed.meter, parsed.kind) == (
        "HP01", "flat.2", "energy",
    )  # fmt: skip
