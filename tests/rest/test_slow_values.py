"""Values the meter sends only now and then: Nordic meters send their energy registers once an
hour, in lists that alternate with shorter ones (Aidon, Kaifa, Kamstrup list 1/2/3). Between
them `/meter` serves the last known energy counters with the `ts` of the reading that sent them
(`held_ts`), never a fast quantity (power, current, voltage) from an older reading. The readings
are the real captures of tests/fixtures/hdlc, decoded by ingest's decoder and added to the
stream."""

from __future__ import annotations

import shutil

import msgspec
import pytest

from services.ingest.codec.decoded import Decoded
from services.ingest.codec.dlms.decoder import DlmsDecoder
from services.rest.state import SLOW_HOLD_S, meter_body, remember_slow
from shared.reading import Reading, encode_cozify
from tests.rest.conftest import RestUnderTest
from tests.rest.test_compat import EVCC_JQ, jq

FIXTURES = "tests/fixtures/hdlc"


def capture(name: str) -> Reading:
    """One real capture decoded as ingest decodes it."""
    with open(f"{FIXTURES}/{name}") as file:
        data = bytes.fromhex(file.read().strip())
    decoder = DlmsDecoder("hdlc", tz="Europe/Oslo")
    (decoded,) = decoder.feed(data, 1_700_000_000_000) + decoder.flush(1_700_000_000_000)
    assert isinstance(decoded, Decoded)
    return decoded.reading


# Aidon's hourly list 3 (energy registers) and its 2.5 s list 2 (no energy): two meters'
# captures, told here as one meter's (the list 3 reading takes the list 2 meter's id)
LIST_2 = capture("aidon_no_list2_doc.hex")
LIST_3 = msgspec.structs.replace(capture("aidon_gh1119.hex"), meter_id=LIST_2.meter_id)


async def test_energy_between_hourly_lists_is_the_last_known_with_its_time(
    rest: RestUnderTest,
) -> None:
    assert LIST_2.ic is None and LIST_3.ic is not None  # what the captures say
    await rest.add(LIST_3, age_s=60)
    sent = rest.state.latest
    assert sent is not None
    await rest.add(LIST_2)
    message = (await rest.client.get("/meter")).json()
    assert (message["ic"], message["ec"], message["ric"], message["rec"]) == (
        LIST_3.ic, LIST_3.ec, LIST_3.ric, LIST_3.rec,
    )  # fmt: skip
    assert message["held_ts"] == dict.fromkeys(("ic", "ec", "ric", "rec"), sent.reading.ts)
    # fast values are this reading's own: list 2 of this meter has one phase
    assert message["u"] == [250.0, None, None] and message["i"][1:] == [None, None]
    assert message["p"][0] == LIST_2.p[0]


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
async def test_evccs_tonumber_gets_the_energy_between_hourly_lists(rest: RestUnderTest) -> None:
    await rest.add(LIST_3, age_s=30)
    await rest.add(LIST_2)
    body = (await rest.client.get("/meter/data")).content
    assert await jq("(.ic|tonumber)", body) == LIST_3.ic
    assert await jq(EVCC_JQ["energy"], body) == LIST_3.ic


async def test_another_meters_energy_is_never_carried(rest: RestUnderTest) -> None:
    await rest.add(capture("kamstrup_em001.hex"), age_s=10)
    await rest.add(capture("kaifa_gh180.hex"))
    message = (await rest.client.get("/meter")).json()
    assert message["ic"] is None and "held_ts" not in message


def test_a_held_value_expires_and_a_full_reading_is_served_as_before() -> None:
    held: dict = {}
    remember_slow(held, LIST_3)
    too_late = msgspec.structs.replace(LIST_2, ts=LIST_3.ts + int(SLOW_HOLD_S * 1000) + 1)
    assert meter_body(too_late, held) == encode_cozify(too_late)
    in_time = msgspec.structs.replace(LIST_2, ts=LIST_3.ts + int(SLOW_HOLD_S * 1000))
    assert msgspec.json.decode(meter_body(in_time, held))["ic"] == LIST_3.ic
    assert meter_body(LIST_3, held) == encode_cozify(LIST_3)
