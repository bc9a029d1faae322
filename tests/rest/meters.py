"""Several meters for the REST tests: each meter's readings written to its own stream (or the
classic one) and registered in the directory `hanport:meters` as its ingest registers it, and
a wait until the replica under test holds a reading.

The meters: `main` (the simulator, on the classic stream), `heatpump` (the simulator with
another seed, a named meter with streams of its own) and `gas` (a real Kaifa DSMR 4.2 capture
with a gas sub-meter, named too)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec

from services.ingest.codec.decoded import Decoded
from services.ingest.codec.p1.decoder import P1Decoder
from services.rest.state import ALL, Snapshot
from shared.meters import MeterDirectory, MeterKeys, MeterRecord
from shared.raw_stream import raw_fields
from shared.reading import Reading
from shared.stream import ReadingStream
from tests.readings import simulated_readings
from tests.rest.conftest import TIMEOUT, RestUnderTest

CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "p1" / "kfm5_nl_dsmr42.txt"


def gas_reading() -> Reading:
    """The Kaifa capture (electricity plus gas on M-Bus channel 1), decoded as ingest does."""
    decoder = P1Decoder(tz="Europe/Amsterdam")
    (decoded,) = decoder.feed(CAPTURE.read_bytes(), 1_700_000_000_000)
    assert isinstance(decoded, Decoded), decoded
    return decoded.reading


@dataclass
class Meter:
    name: str
    keys: MeterKeys
    readings: list[Reading]
    raw: bytes = b""

    def next(self) -> Reading:
        reading = self.readings.pop(0)
        self.readings.append(reading)
        return msgspec.structs.replace(reading, meter=self.name)


def box_meters(classic_stream: str, classic_raw: str) -> dict[str, Meter]:
    return {
        "main": Meter(
            "main", MeterKeys.classic(classic_stream, classic_raw), simulated_readings(5)
        ),
        "heatpump": Meter("heatpump", MeterKeys.named("heatpump"), simulated_readings(5, seed=7)),
        "gas": Meter("gas", MeterKeys.named("gas"), [gas_reading()], CAPTURE.read_bytes()),
    }


async def register(rest: RestUnderTest, meter: Meter, *, source: str = "") -> None:
    """Write the meter's directory record as its ingest does."""
    now = int(time.time() * 1000)
    record = MeterRecord(
        name=meter.name,
        readings=meter.keys.readings,
        raw=meter.keys.raw,
        status=meter.keys.status,
        source=source or f"simulated {meter.name}",
        meter_id=meter.readings[0].meter_id,
        model=meter.readings[0].meter_model,
        started=now,
        updated=now,
    )
    await MeterDirectory(rest.redis).put(record)


async def add(
    rest: RestUnderTest, reading: Reading, stream: str, *, age_s: float = 0.0
) -> Snapshot:
    """XADD `reading` to `stream`, received `age_s` seconds ago, and wait until the replica
    holds it (whichever meter it is from)."""
    queue = rest.state.subscribe(ALL)
    try:
        now = int((time.time() - age_s) * 1000)
        reading = msgspec.structs.replace(reading, received=now, ts=now)
        entry_id = await ReadingStream(rest.redis, stream).add(reading)
        async with asyncio.timeout(TIMEOUT):
            while True:
                item = await queue.get()
                if isinstance(item, Snapshot) and item.entry_id == entry_id:
                    return item
    finally:
        rest.state.unsubscribe(queue)


async def add_from(rest: RestUnderTest, meter: Meter, *, age_s: float = 0.0) -> Snapshot:
    """The meter's next reading on its stream (and its raw telegram when it has one)."""
    snapshot = await add(rest, meter.next(), meter.keys.readings, age_s=age_s)
    if meter.raw:
        fields = raw_fields(meter.raw, "ok", snapshot.reading.received)
        await rest.redis.xadd(meter.keys.raw, fields, id=snapshot.entry_id)
    return snapshot


async def wait_until_known(rest: RestUnderTest, *names: str) -> None:
    """Until the replica's directory lists `names` (it re-reads it every 2 s)."""
    async with asyncio.timeout(TIMEOUT):
        while not set(names) <= rest.state.records.keys():  # noqa: ASYNC110 - no event marks it
            await asyncio.sleep(0.05)


@dataclass
class Event:
    event: str
    data: str
    id: str | None
    meter: str | None


async def sse(response: httpx.Response) -> AsyncIterator[Event]:
    """A minimal text/event-stream parser that keeps the `meter` field too."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield Event(
                    fields.get("event", "message"),
                    fields["data"],
                    fields.get("id"),
                    fields.get("meter"),
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
