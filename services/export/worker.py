"""One sink's worker on one readings stream: its position (the consumer group `export-<sink>`,
services/export/position.py), batches, the write, the confirmation, the dead letters.

Consumes the stream from the sink's confirmed position on (entries an earlier version of the
export left pending in its group first) and produces writes to the sink:

- A batch is up to `batch_size` readings: whatever the stream holds at once (a backlog goes out
  in full batches, as fast as the sink takes them), else what arrives within `batch_wait` s.
- Batches are written one at a time, in stream order (so in order per meter); while one is
  written the next is read, decoded and made ready for the sink (`prepare`: its line protocol
  or rows), at most `PREFETCH` ahead.
- The confirmed position moves past a batch only after the sink confirmed it (while the next
  batch is written; one batch at a time, in order). A sink that cannot take the batch now
  (`SinkDown`) gets the same batch again, with backoff, until it does; nothing after it is
  written meanwhile. After a crash the next start reads and writes again what was not
  confirmed, which stores nothing twice.
- Entries the sink refuses for good go to the dead-letter stream (sink, stream, entry id,
  reason, the reading) before the position moves past them.
- Readings of a meter the license does not serve (`meters`: services/export/license.py) are
  passed over: not written, the position moves past them with their batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.backoff import Backoff
from shared.cancellation import raise_if_cancelling, stop
from shared.reading import encode_reading
from shared.redis_retry import RedisRetry
from shared.retention import group_backlogs
from shared.stream import (
    READING_FIELD,
    REDIS_DOWN,
    ConsumerGroup,
    ReadingStream,
    field_value,
)
from shared.stream_id import entry_id_text

from . import metrics
from .license import ServedMeters
from .position import Mark, Position
from .sinks import PREFETCH, Sink, SinkDown, WriteResult
from .sinks.entries import Entries

log = logging.getLogger(__name__)

# Entries one XREADGROUP takes (a batch is several): decoding 5,000 at once held the event loop
# about 12 ms, and the write waiting on the store's answer waited as long (`made_in_chunks`)
READ_CHUNK = 500
LAG_EVERY_S = 5.0
SETTLE_ON_STOP_S = 5.0  # a stop waits this long for the last confirmation


class JsonReader(ConsumerGroup[bytes | None]):
    """A consumer group on the readings stream that leaves each reading as the stream holds it
    (its JSON; None for an entry without one), for `Entries.decode` to decode a read at once."""

    def decode(self, raw_entries: Any, bad: list[str]) -> list[tuple[str, bytes | None]]:
        try:  # the usual reply: bytes ids, `reading` the entry's first field
            return [
                (
                    i.decode(),
                    fields[1] if fields[0] == READING_FIELD else field_value(fields, READING_FIELD),
                )
                for i, fields in raw_entries
            ]
        except (AttributeError, IndexError, TypeError):  # str ids, an entry deleted
            return [(entry_id_text(i), field_value(f, READING_FIELD)) for i, f in raw_entries]


@dataclass
class DeadLetters:
    """The dead-letter stream: one entry per reading a sink refused for good."""

    redis: Redis
    key: str = "hanport:export:dead"
    maxlen: int = 10_000

    async def put(self, sink: str, stream: str, refused: list[tuple[str, Any, str]]) -> None:
        """Each refused (entry id, reading: its JSON, or a `Reading`, reason)."""
        pipe = self.redis.pipeline(transaction=False)
        now = int(time.time() * 1000)
        for entry_id, reading, reason in refused:
            pipe.xadd(
                self.key,
                {
                    "sink": sink,
                    "stream": stream,
                    "entry": entry_id,
                    "reason": reason,
                    "reading": reading if isinstance(reading, bytes) else encode_reading(reading),
                    "at": now,
                },
                maxlen=self.maxlen,
                approximate=True,
            )
        await pipe.execute()


@dataclass
class Batch:
    """Entries read together, and the read group's mark after the last of them (None: entries
    an earlier version left pending in the group, acknowledged once written); `passed_over`:
    the ids of entries read with them that are not written (a meter the license does not
    serve), settled with them."""

    entries: Entries
    mark: Mark | None
    passed_over: list[str] = field(default_factory=list)


@dataclass
class SinkWorker:
    """Writes every reading of `key` to `sink` (see the module's docstring); `run()` forever."""

    redis: Redis
    key: str
    sink: Sink
    consumer: str
    dead: DeadLetters
    group_prefix: str = "export-"
    batch_size: int = 5000
    batch_wait: float = 5.0
    meters: ServedMeters | None = None  # the license's meters; None: every meter
    written: int = field(default=0, init=False)
    _down_since: float | None = field(default=None, init=False)
    _settling: asyncio.Task[None] | None = field(default=None, init=False)  # the last confirm

    def __post_init__(self) -> None:
        self.group_name = f"{self.group_prefix}{self.sink.name}"
        self.lazy = getattr(self.sink, "reads_json", False)  # (`Entries.decode`)
        stream = ReadingStream(self.redis, self.key)
        self.position = Position(self.redis, self.key, self.group_name, self.consumer)
        # what an earlier version of the export left pending in the group (it acknowledged
        # each entry): written again first, then acknowledged
        self.left_pending = JsonReader(stream, self.group_name, self.consumer)
        self.reader = JsonReader(stream, self.position.read_group, self.consumer, noack=True)
        errors = metrics.REDIS_ERRORS.labels(self.sink.name)
        self.redis_call = RedisRetry(
            keys=f"{self.key} or {self.dead.key}",
            regroup=self._make_groups,
            groups=f"group {self.group_name} or its read group",
            gone=("NOGROUP", "UNBLOCKED", "no such key"),  # the groups, or the whole stream
            on_error=errors.inc,
        )

    async def run(self) -> None:
        await self.redis_call(self.create_group)
        await self.redis_call(self.position.start)
        log.info(
            "export to %s: stream %s, group %s, consumer %s",
            self.sink.name,
            self.key,
            self.group_name,
            self.consumer,
        )
        queue: asyncio.Queue[Batch] = asyncio.Queue(maxsize=PREFETCH)
        reading = asyncio.create_task(self._read(queue), name=f"read {self.key}")
        lag = asyncio.create_task(self._watch_lag(), name=f"lag {self.key}")
        try:
            while True:
                await self.deliver(await self._next(queue, reading))
        finally:
            if self._settling is not None:  # let the last confirmation finish (a stop)
                settling, self._settling = self._settling, None
                await asyncio.wait({settling}, timeout=SETTLE_ON_STOP_S)
                await stop(settling)
                if not settling.cancelled() and settling.exception() is not None:
                    log.warning(
                        "%s: the last batch of %s is not confirmed in Redis (%s); it is "
                        "written again at the next start, which stores nothing twice",
                        self.sink.name,
                        self.key,
                        settling.exception(),
                    )
            await stop(reading)
            await stop(lag)

    async def _next(self, queue: asyncio.Queue[Batch], reading: asyncio.Task[None]) -> Batch:
        """The next batch; raises what the reader task or the last confirmation raised (the
        supervisor starts the worker again; what was not confirmed is written again). A batch
        already made ready is taken at once, without a turn of the event loop: the store waits
        for it, and a turn lets the reader make a chunk of the next batch first."""
        self._check_settled()
        if not queue.empty() and not reading.done():
            return queue.get_nowait()
        getting = asyncio.ensure_future(queue.get())
        try:
            while True:
                watch: set[asyncio.Future[Any]] = {getting, reading}
                if self._settling is not None:
                    watch.add(self._settling)
                done, _ = await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
                if reading in done:
                    reading.result()
                    raise RuntimeError(f"the reader of {self.key} ended")
                self._check_settled()
                if getting in done:
                    return getting.result()
        finally:
            if not getting.done():
                await stop(getting)

    def _check_settled(self) -> None:
        """The last confirmation forgotten once it is done; raises what it raised."""
        if self._settling is not None and self._settling.done():
            settled, self._settling = self._settling, None
            settled.result()

    async def create_group(self) -> None:
        """The group, from the stream's first entry; its read counter set so Redis's `lag`
        counts what the stream holds (not what it held before trimming)."""
        try:
            info: Any = await self.redis.xinfo_stream(self.key)
            read = max(0, int(info.get("entries-added") or 0) - int(info.get("length") or 0))
        except ResponseError as error:
            if "no such key" not in str(error).lower():
                raise
            read = 0
        try:
            await self.redis.xgroup_create(
                self.key, self.group_name, "0", mkstream=True, entries_read=read
            )
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    # --- reading ---------------------------------------------------------------------------

    async def _read(self, queue: asyncio.Queue[Batch]) -> None:
        await self._read_left_pending(queue)
        while True:
            entries = await self.redis_call(self.next_batch)
            if entries:
                mark = await self.redis_call(self.position.read_mark)
                served, passed_over = self._served(entries)
                await self._put(queue, Batch(served, mark, passed_over))

    async def _read_left_pending(self, queue: asyncio.Queue[Batch]) -> None:
        """Entries an earlier version of the export left pending in the group (any consumer's:
        taken over), queued to be written again and then acknowledged."""
        await self.redis_call(self._claim_left_pending)
        after = "0"
        while read := await self.redis_call(
            self.left_pending.pending_after, after, self.batch_size
        ):
            bad: list[str] = []
            entries = Entries.decode(read, bad, lazy=self.lazy)
            await self.redis_call(self.left_pending.ack, *bad)  # never written: not pending
            log.info("%s: writing %d readings left pending again", self.sink.name, len(entries))
            if entries:
                served, passed_over = self._served(entries)
                await self._put(queue, Batch(served, None, passed_over))
            after = read[-1][0]

    async def _claim_left_pending(self) -> None:
        """Take over every entry pending in the group, whichever consumer read it."""
        cursor: Any = "0-0"
        while True:
            reply: Any = await self.redis.xautoclaim(
                self.key, self.group_name, self.consumer, 0, cursor, self.batch_size
            )
            cursor = reply[0]  # (then the entries taken over, and those trimmed meanwhile)
            if cursor in (b"0-0", "0-0"):
                return

    def _served(self, entries: Entries) -> tuple[Entries, list[str]]:
        """(the entries to write, the ids of those passed over: `ServedMeters.narrow`)."""
        return (entries, []) if self.meters is None else self.meters.narrow(entries)

    async def _put(self, queue: asyncio.Queue[Batch], batch: Batch) -> None:
        """Queue a batch for writing, made ready for its sink first (`prepare`: the line
        protocol, the rows), here in the reader task, while the previous batch's write waits on
        the store."""
        prepare = getattr(self.sink, "prepare", None)
        if prepare is not None:
            await prepare(batch.entries)
        await queue.put(batch)

    async def next_batch(self) -> Entries:
        """Up to `batch_size` new readings: at once when the stream holds them (a backlog),
        else the first to arrive and whatever follows within `batch_wait` s (one more read
        after that pause: a meter sending every second costs two reads per batch). An entry
        without a valid reading is skipped (logged and counted by `Entries.decode`)."""
        read = await self.reader.new(count=min(self.batch_size, READ_CHUNK))
        count = len(read)
        entries = Entries.decode(read, [], lazy=self.lazy)
        while read and count < self.batch_size and count % READ_CHUNK == 0:
            read = await self.reader.new(count=min(self.batch_size - count, READ_CHUNK), block_ms=1)
            count += len(read)
            entries.extend(Entries.decode(read, [], lazy=self.lazy))
        if not count or count >= self.batch_size or not self.batch_wait:
            return entries
        await asyncio.sleep(self.batch_wait)  # a linger, as MQTT's read_linger
        read = await self.reader.new(count=self.batch_size - count, block_ms=1)
        entries.extend(Entries.decode(read, [], lazy=self.lazy))
        return entries

    # --- writing ---------------------------------------------------------------------------

    async def deliver(self, batch: Batch) -> None:
        """Write `batch` until the sink confirmed it, then settle it (`_settle`: dead letters,
        the confirmed position) in a task of its own, so the next batch's write need not wait
        for Redis; one batch settles at a time, in stream order."""
        entries = batch.entries  # (none: every reading read was passed over)
        result = await self._write_until_confirmed(entries) if entries else WriteResult()
        if self._settling is not None:
            settled, self._settling = self._settling, None
            await settled
        self._settling = asyncio.create_task(
            self._settle(batch, result), name=f"acknowledge {self.key}"
        )

    async def _settle(self, batch: Batch, result: WriteResult) -> None:
        """Dead-letter what the sink refused, then move the confirmed position past the batch
        (or acknowledge it, entries left pending by an earlier version)."""
        if result.refused:
            metrics.DEAD.labels(self.sink.name).inc(len(result.refused))
            for entry_id, _reading, reason in result.refused[:3]:
                log.warning(
                    "%s refused reading %s of %s for good: %s (on the dead-letter stream %s)",
                    self.sink.name,
                    entry_id,
                    self.key,
                    reason,
                    self.dead.key,
                )
            await self.redis_call(self.dead.put, self.sink.name, self.key, result.refused)
        if batch.mark is None:
            await self.redis_call(self.left_pending.ack, *batch.entries.ids, *batch.passed_over)
        else:
            await self.redis_call(self.position.confirm, batch.mark)
        self.written += result.written
        metrics.WRITTEN.labels(self.sink.name).inc(result.written)

    async def _write_until_confirmed(self, batch: Entries) -> WriteResult:
        backoff = Backoff(maximum=30.0)
        while True:
            started = time.monotonic()
            try:
                result = await self.sink.write(batch)
            except SinkDown as error:
                raise_if_cancelling()
                self._down(str(error), backoff)
            except (OSError, RuntimeError, ValueError) as error:  # not expected: never a crash
                raise_if_cancelling()
                log.exception("%s: the write failed unexpectedly", self.sink.name)
                self._down(f"{type(error).__name__}: {error}", backoff)
            else:
                metrics.WRITE_SECONDS.labels(self.sink.name).observe(time.monotonic() - started)
                metrics.SINK_UP.labels(self.sink.name).set(1)
                if self._down_since is not None:
                    log.info(
                        "%s takes writes again after %.0f s; writing the backlog",
                        self.sink.name,
                        time.monotonic() - self._down_since,
                    )
                    self._down_since = None
                return result
            await asyncio.sleep(backoff.next_delay())

    def _down(self, reason: str, backoff: Backoff) -> None:
        metrics.FAILURES.labels(self.sink.name).inc()
        metrics.SINK_UP.labels(self.sink.name).set(0)
        if self._down_since is None:
            self._down_since = time.monotonic()
        if backoff.attempts in (0, 5) or backoff.attempts % 60 == 0:
            log.warning(
                "%s cannot take writes: %s; readings stay in the stream and go out when it "
                "does (attempt %d)",
                self.sink.name,
                reason,
                backoff.attempts + 1,
            )

    # --- Redis -----------------------------------------------------------------------------

    async def _make_groups(self) -> None:
        """Both groups again (Redis lost them): reading starts again at the confirmed position."""
        await self.create_group()
        await self.position.start()

    async def _watch_lag(self) -> None:
        while True:
            try:
                backlogs = await group_backlogs(self.redis, self.key, self.group_name)
                backlog = backlogs.get(self.group_name)
                if backlog is not None:
                    metrics.LAG_ENTRIES.labels(self.sink.name, self.key).set(backlog.entries)
                    metrics.LAG_SECONDS.labels(self.sink.name, self.key).set(backlog.age_s())
            except (*REDIS_DOWN, ResponseError) as error:
                raise_if_cancelling(error)
                log.debug("lag unavailable: %s", error)
            await asyncio.sleep(LAG_EVERY_S)
