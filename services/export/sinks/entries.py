"""A batch of readings-stream entries as the export reads them (`Entries`): their ids, each
reading's JSON as the stream holds it, and what the sinks need of it (`Exported`), decoded for
a whole read at once. Pure, no I/O.

`Exported` keeps each number as the stream's JSON text (`msgspec.Raw`): the export's line
protocol and COPY text are made of those texts (sinks/lineprotocol.py, sinks/sql.py), never
parsed to floats and formatted again. Decoding a read of 500 entries to `Exported` at once took
1.3 µs a reading, against 2.1 for each to a full `Reading` (docs/performance.md, Export); a
refused entry's dead letter keeps its JSON as the stream held it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress
from typing import Any, overload

import msgspec
from msgspec import Raw

from shared.metrics import STREAM_BAD_ENTRIES
from shared.reading import Reading, SubMeter

log = logging.getLogger(__name__)

NULL = Raw(b"null")


class NotANumber(ValueError):
    """A value of a stream entry is neither a number nor null (another program wrote it): the
    sinks refuse that reading, which goes to the dead-letter stream with this message."""


class Exported(msgspec.Struct, kw_only=True, gc=False):
    """What the export writes of a reading: its times, meter, sub-meters, and every exported
    number (`lineprotocol.EXPORTED`'s keys) as the JSON text the stream holds (`null` when
    absent). Read from the full reading's JSON, its other fields skipped. (Not tracked by the
    garbage collector, `gc=False`: it holds no cycle.)"""

    ts: int
    received: int | None = None
    meter: str | None = None
    meter_id: str | None = None  # (names the meter when `meter` is missing: `meter_of`)
    ic: Raw = NULL
    ec: Raw = NULL
    ric: Raw = NULL
    rec: Raw = NULL
    p: Raw = NULL
    pi: Raw = NULL
    pe: Raw = NULL
    r: Raw = NULL
    u: Raw = NULL
    i: Raw = NULL
    frequency: Raw = NULL
    submeters: list[SubMeter] = msgspec.field(default_factory=list)


AnyReading = Reading | Exported  # what the line protocol and the rows are made of

_decode_one = msgspec.json.Decoder(Exported).decode
_decode_many = msgspec.json.Decoder(list[Exported]).decode


def decode_exported(payloads: list[bytes]) -> list[Exported]:
    """`Exported` of each reading's JSON, in one decode; raises what msgspec raises when one of
    them does not decode (`Entries.decode` then finds which)."""
    return _decode_many(b"[" + b",".join(payloads) + b"]")


@dataclass
class Entries(Sequence[tuple[str, Any]]):
    """Entries in order: `ids[n]` and `readings[n]`: `Exported` when read from the stream (with
    `payloads[n]`, the reading's JSON as the stream holds it), else the `Reading` given (`of`).
    An item is (id, the JSON, or the `Reading`): what a dead letter keeps; a slice is `Entries`
    (a refused batch's halves)."""

    ids: list[str] = field(default_factory=list)
    readings: list[AnyReading] = field(default_factory=list)
    payloads: list[bytes] | None = None

    @classmethod
    def decode(cls, raw: Sequence[tuple[str, bytes | None]], bad: list[str]) -> Entries:
        """Entries of (id, the reading's JSON) pairs, as read; one that does not decode (or
        has no reading) is logged, counted and left out, its id appended to `bad`."""
        payloads = [data for _id, data in raw if data is not None]
        ids = [entry_id for entry_id, _data in raw]
        if len(payloads) < len(ids):  # deleted while pending, or no `reading` field
            for entry_id, data in raw:
                if data is None:
                    STREAM_BAD_ENTRIES.inc()
                    log.warning("skipping stream entry %s: no 'reading' field", entry_id)
                    bad.append(entry_id)
            ids = [entry_id for entry_id, data in raw if data is not None]
        try:
            return cls(ids, list(decode_exported(payloads)), payloads)
        except (msgspec.DecodeError, ValueError):  # (ValidationError is a DecodeError)
            pass
        kept: list[tuple[str, AnyReading, bytes]] = []
        for entry_id, data in zip(ids, payloads, strict=True):
            try:
                kept.append((entry_id, _decode_one(data), data))
            except (msgspec.DecodeError, ValueError) as error:
                STREAM_BAD_ENTRIES.inc()
                log.warning("skipping stream entry %s: %s", entry_id, error)
                bad.append(entry_id)
        return cls([k[0] for k in kept], [k[1] for k in kept], [k[2] for k in kept])

    @classmethod
    def of(cls, batch: Iterable[tuple[str, Reading]] | Entries) -> Entries:
        """`Entries` of (id, `Reading`) pairs (a test's, the fleet hub's); `Entries` as they are."""
        if isinstance(batch, Entries):
            return batch
        pairs = list(batch)
        return cls([entry_id for entry_id, _ in pairs], [reading for _, reading in pairs])

    def only(self, kept: Sequence[bool]) -> Entries:
        """The entries whose flag in `kept` (one per entry) is true, in order."""
        payloads = None if self.payloads is None else list(compress(self.payloads, kept))
        return Entries(
            list(compress(self.ids, kept)), list(compress(self.readings, kept)), payloads
        )

    def extend(self, other: Entries) -> None:
        self.ids += other.ids
        self.readings += other.readings
        if self.payloads is not None and other.payloads is not None:
            self.payloads += other.payloads

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> tuple[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Entries: ...
    def __getitem__(self, index: int | slice) -> Any:
        payloads = self.payloads
        if isinstance(index, slice):
            part = None if payloads is None else payloads[index]
            return Entries(self.ids[index], self.readings[index], part)
        return self.ids[index], self.readings[index] if payloads is None else payloads[index]

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return (self[n] for n in range(len(self)))
