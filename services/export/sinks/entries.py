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
from collections.abc import Callable, Iterable, Iterator, Sequence
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


# What `canonical` (sinks/_stream_json.c) requires of each field of `Exported`, from its type
_KINDS: dict[Any, bytes] = {
    int: b"int",
    int | None: b"int|null",
    str | None: b"str|null",
    list[SubMeter]: b"[]",  # (a reading with sub-meters is decoded at once)
    Raw: b"any",
}
CANONICAL_FIELDS = tuple(
    (f.encode_name.encode(), _KINDS[f.type], f.required) for f in msgspec.structs.fields(Exported)
)

check_canonical: Callable[[list[bytes], tuple[tuple[bytes, bytes, bool], ...]], bool] | None
try:
    from ._stream_json import canonical as check_canonical
except ImportError:  # not built (no C compiler where it was installed): decoded at once
    check_canonical = None


class Entries(Sequence[tuple[str, Any]]):
    """Entries in order: `ids[n]` and `readings[n]`: `Exported` when read from the stream (with
    `payloads[n]`, the reading's JSON as the stream holds it), else the `Reading` given (`of`).
    An item is (id, the JSON, or the `Reading`): what a dead letter keeps; a slice is `Entries`
    (a refused batch's halves).

    `canonical`: every payload is a reading's JSON as the ingest writes it (`decode` checked, in
    C: sinks/_stream_json.c), so it decodes for sure, and is decoded only when `readings` is
    first asked for: the line protocol is made of the JSON itself (lineprotocol.stream_body).
    The check takes 0.45 µs a reading, decoding 1.0 (docs/performance.md, Export)."""

    def __init__(
        self,
        ids: list[str] | None = None,
        readings: list[AnyReading] | None = None,
        payloads: list[bytes] | None = None,
        *,
        canonical: bool = False,
    ) -> None:
        self.ids: list[str] = [] if ids is None else ids
        self.payloads = payloads
        self.canonical = canonical and payloads is not None
        self._readings = [] if readings is None and not self.canonical else readings

    @property
    def readings(self) -> list[AnyReading]:
        if self._readings is None:  # (canonical payloads: they decode)
            self._readings = list(decode_exported(self.payloads or []))
        return self._readings

    @classmethod
    def decode(
        cls, raw: Sequence[tuple[str, bytes | None]], bad: list[str], *, lazy: bool = False
    ) -> Entries:
        """Entries of (id, the reading's JSON) pairs, as read; one that does not decode (or
        has no reading) is logged, counted and left out, its id appended to `bad`. `lazy`
        (for a sink that reads the JSON itself): a read that is `canonical` is decoded only
        when its readings are asked for."""
        payloads = [data for _id, data in raw if data is not None]
        ids = [entry_id for entry_id, _data in raw]
        if len(payloads) < len(ids):  # deleted while pending, or no `reading` field
            for entry_id, data in raw:
                if data is None:
                    STREAM_BAD_ENTRIES.inc()
                    log.warning("skipping stream entry %s: no 'reading' field", entry_id)
                    bad.append(entry_id)
            ids = [entry_id for entry_id, data in raw if data is not None]
        if lazy and check_canonical is not None and check_canonical(payloads, CANONICAL_FIELDS):
            return cls(ids, None, payloads, canonical=True)  # (decoded when asked for)
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

    def _part(self, pick: Callable[[list[Any]], list[Any]]) -> Entries:
        """The entries `pick` keeps of each list, as `Entries` (not decoded if these are not)."""
        return Entries(
            pick(self.ids),
            None if self._readings is None else pick(self._readings),
            None if self.payloads is None else pick(self.payloads),
            canonical=self.canonical,
        )

    def only(self, kept: Sequence[bool]) -> Entries:
        """The entries whose flag in `kept` (one per entry) is true, in order."""
        return self._part(lambda items: list(compress(items, kept)))

    def extend(self, other: Entries) -> None:
        if self._readings is not None or other._readings is not None:
            self._readings = self.readings + other.readings
        self.ids += other.ids
        if self.payloads is not None and other.payloads is not None:
            self.payloads += other.payloads
        elif other:
            self.payloads = None
        self.canonical = self.canonical and other.canonical and self.payloads is not None

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> tuple[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Entries: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return self._part(lambda items: items[index])
        payloads = self.payloads
        return self.ids[index], self.readings[index] if payloads is None else payloads[index]

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return (self[n] for n in range(len(self)))

    def __repr__(self) -> str:
        return f"Entries({len(self)}, {'canonical' if self.canonical else 'decoded'})"
