"""Sinks: where the export service writes readings, one module per kind of store.

Every sink has the same small API (`Sink`), so the export service and the fleet hub's workers
drive any of them alike:

    result = await sink.write(batch)   # batch: `Entries` (entries.py), or (id, Reading) pairs

- It returns when the store confirmed the batch (HTTP 2xx, SQL COMMIT). `result.refused` holds
  the entries the store refused for good (HTTP 400, a constraint violation), each with the reason:
  everything else of the batch is stored. The caller dead-letters the refused ones and
  acknowledges the whole batch.
- It raises `SinkDown` when the store cannot take the batch now (unreachable, 5xx, 429, a wrong
  token): nothing is confirmed, the caller retries the same batch later.

Writing a batch twice stores nothing twice (line protocol overwrites the same series and time; the
SQL tables have a primary key and `ON CONFLICT DO NOTHING`), so a retry after a crash is safe.

The pure parts (no I/O) live apart: `lineprotocol` (Reading -> line protocol), `sql` (Reading
-> rows, the schema and its migrations) and `intervals` (the accounting service's intervals).
`write_intervals` stores those (an interval written again overwrites itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast

from shared.reading import Reading

from .entries import Entries, NotANumber
from .intervals import Interval

Entry = tuple[str, Reading]
Batch = Sequence[Entry] | Entries  # what `Sink.write` takes
T = TypeVar("T")
B = TypeVar("B", bound=Sequence[Any])


class SinkDown(Exception):
    """The store cannot take the batch now; retry it later (nothing of it is confirmed)."""


class Rejected(Exception):
    """The store refused (part of) a batch for good: a bad point, a constraint violation."""


@dataclass
class WriteResult:
    """What became of a batch: all stored except `refused` (entry id, the reading, reason; the
    reading as the batch held it: a `Reading`, or its JSON from `Entries`)."""

    written: int = 0
    refused: list[tuple[str, Any, str]] = field(default_factory=list)


class Sink(Protocol):
    """A store that readings are written to."""

    name: str  # the sink's kind and its consumer group suffix: `influx`, `postgres`

    async def write(self, batch: Batch) -> WriteResult: ...

    async def write_intervals(self, intervals: list[Interval]) -> None:
        """Store (or overwrite) accounting intervals; `SinkDown` or `Rejected` as `write`."""
        ...

    async def close(self) -> None: ...


# Batches the worker makes ready ahead (its queue's size) while one is written. A sink's
# `Prepared` holds two more: the one waiting to enter the queue, the one being written (with
# fewer, a body made ahead was forgotten and made again at its write, holding the loop ~25 ms)
PREFETCH = 2


class Prepared(Generic[T]):
    """What a sink made of a batch ahead of its write (`prepare`: the line protocol body, the
    rows), so the worker's reader task does that CPU work while the previous batch's write waits
    on the store; the write takes it (`take`) when it writes that very batch, else makes it
    itself. Only a cache: a batch written again (a retry, a bisected part) is made again. At most
    `keep` batches are held (the oldest forgotten)."""

    def __init__(self, keep: int = PREFETCH + 2) -> None:
        self.keep = keep
        self._made: dict[tuple[str, str, int], T] = {}

    @staticmethod
    def key(batch: Entries) -> tuple[str, str, int]:
        return (batch.ids[0], batch.ids[-1], len(batch))

    def put(self, batch: Entries, made: T) -> None:
        if batch:
            self._made[self.key(batch)] = made
            while len(self._made) > self.keep:
                del self._made[next(iter(self._made))]

    def take(self, batch: Entries) -> T | None:
        return self._made.pop(self.key(batch), None) if batch else None


CHUNK = 250  # entries made at once by `made_in_chunks`


async def made_ahead(batch: Batch, make: Callable[[Entries], T]) -> tuple[Entries, list[T]] | None:
    """A sink's `prepare`: the batch as `Entries` and `make` of its chunks (`made_in_chunks`);
    None when a reading of it holds a value that is no number (`made_to_write` refuses it)."""
    entries = Entries.of(batch)
    try:
        return entries, await made_in_chunks(entries, make)
    except NotANumber:
        return None


def made_to_write(batch: Entries, make: Callable[[Entries], T]) -> T:
    """`make` of a batch about to be written; a reading with a value that is no number is
    refused (`Rejected`), so the batch is written in halves down to that reading (`bisect`)."""
    try:
        return make(batch)
    except NotANumber as error:
        raise Rejected(str(error)) from None


async def made_in_chunks(batch: Entries, make: Callable[[Entries], T]) -> list[T]:
    """`make` of each `CHUNK` entries of the batch, in order, letting the event loop run between
    them. A batch of 5,000 made at once held the loop 20-40 ms, and the answer to the write
    before it waited that long unread: the store idled, and the export wrote half as fast as
    it could (bench/export.py)."""
    made = []
    for start in range(0, len(batch), CHUNK):
        made.append(make(batch[start : start + CHUNK]))
        await asyncio.sleep(0)
    return made


async def bisect(batch: B, send: Callable[[B], Awaitable[None]]) -> WriteResult:
    """Write `batch` with `send`; when the store refuses it (`Rejected`), write each half again,
    down to single entries, so only the bad entries are refused (each with the store's reason)
    and every good one is stored. `SinkDown` passes through (the caller retries the whole batch,
    which stores nothing twice)."""
    result = WriteResult()
    todo = [batch]
    while todo:
        part = todo.pop()
        if not part:
            continue
        try:
            await send(part)
        except Rejected as error:
            if len(part) == 1:
                entry_id, reading = part[0]
                result.refused.append((entry_id, reading, str(error)))
                continue
            middle = len(part) // 2
            # (the halves of a list are lists, of `Entries` `Entries`: of the type of `batch`)
            todo += [cast(B, part[middle:]), cast(B, part[:middle])]  # the first half first
            continue
        result.written += len(part)
    return result
