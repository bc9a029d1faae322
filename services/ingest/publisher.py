"""Publishing readings to the readings stream, and raw telegrams to the raw stream, through any
Redis outage. Consumes `put(reading, raw, result)` calls from the ingest loop; produces stream
entries, each exactly once, in order.

- Entry ids are chosen here: `<receive ms>-<seq>`, always after the last id this publisher or
  the streams already hold. An entry keeps its id across retries, so a publish retried after a
  lost reply is refused by Redis (`DuplicateEntry`) instead of stored twice.
- A reading and its raw telegram go out together, and whatever queued up meanwhile (a fast
  source, a backlog after an outage) with them: up to `PIPELINE` entries per round trip, as one
  Lua script call (one command, atomic, in order). While telegrams arrive faster than 50/s each waits up to 5 ms for
  others to share its round trip.
- While Redis is away the ingest loop keeps reading the meter: entries wait in memory, bounded by
  count and bytes; when full the oldest is dropped and counted. On reconnect they are flushed in
  order.
- A telegram that did not decode goes to the raw stream only (result = its error reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.backoff import Backoff
from shared.cancellation import raise_if_cancelling
from shared.log import redact_url
from shared.metrics import LAST_READING_TS, REDIS_CONNECTED, REDIS_RECONNECTS
from shared.raw_stream import FIELDS
from shared.reading import Reading, encode_reading
from shared.retention import Retention
from shared.stream import READING_FIELD, REDIS_DOWN, connect
from shared.stream_id import StreamId, entry_id_text

from .metrics import BUFFER_BYTES, BUFFER_DEPTH, DROPPED, PUBLISH_SECONDS, PUBLISHED

log = logging.getLogger(__name__)

OVERHEAD_BYTES = 200  # per buffered entry, beyond its encoded reading and raw bytes
PIPELINE = 200  # entries (reading + raw telegram XADDs) sent per round trip at most
# XADD each entry (id, reading JSON or "" for none, raw, result, received) to the readings and
# raw streams, in order. The field names are arguments too (`shared.stream.READING_FIELD`,
# `shared.raw_stream.FIELDS`): each stream's fields are defined once, in shared/. An id Redis
# already holds is a retry after a lost reply: skipped and counted (what `ReadingStream.add`
# reports as `DuplicateEntry`). Stops at the first other error. Answers {entries stored, error
# or "", duplicates}.
PUBLISH_SCRIPT = """
local maxlen, raw_maxlen, field = ARGV[1], ARGV[2], ARGV[3]
local raw_field, result_field, received_field = ARGV[4], ARGV[5], ARGV[6]
local stored, duplicates = 0, 0
local function add(...)
  local r = redis.pcall('XADD', ...)
  if type(r) == 'table' and r.err then
    if string.find(r.err, 'equal or smaller', 1, true) then
      duplicates = duplicates + 1
      return nil
    end
    return r.err
  end
  return nil
end
for i = 7, #ARGV, 5 do
  local id, err = ARGV[i], nil
  if ARGV[i + 1] ~= '' then
    err = add(KEYS[1], 'MAXLEN', '~', maxlen, id, field, ARGV[i + 1])
  end
  if not err and raw_maxlen ~= '0' then
    err = add(KEYS[2], 'MAXLEN', '~', raw_maxlen, id,
              raw_field, ARGV[i + 2], result_field, ARGV[i + 3], received_field, ARGV[i + 4])
  end
  if err then return {stored, err, duplicates} end
  stored = stored + 1
end
return {stored, '', duplicates}
"""
# A telegram arriving less than HOT_GAP s after the last round trip (faster than 50/s) waits
# BATCH_WAIT s for others to share its round trip; a meter sending every second never waits.
HOT_GAP = 0.02
BATCH_WAIT = 0.005


@dataclass
class Pending:
    """One telegram waiting to be published."""

    reading: Reading | None
    raw: bytes
    result: str
    received: int
    size: int
    entry_id: str | None = None
    encoded: bytes | None = None  # the reading as stream JSON, encoded once


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


@dataclass
class Publisher:
    url: str
    stream_key: str
    raw_key: str
    maxlen: int = 86400
    raw_maxlen: int = 1000
    max_items: int = 100_000
    max_bytes: int = 64 * 1024 * 1024
    batch_wait: float = BATCH_WAIT
    retention: Retention | None = None  # keeps what export sinks have not confirmed
    queue: deque[Pending] = field(default_factory=deque, init=False)
    queued_bytes: int = field(default=0, init=False)
    dropped: int = field(default=0, init=False)
    published: int = field(default=0, init=False)
    _last: StreamId = field(default=StreamId(0, -1), init=False)
    _inflight: int = field(default=0, init=False)  # entries at the queue's head being sent
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _idle: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _drained: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _redis: Redis | None = field(default=None, init=False)

    def put(self, reading: Reading | None, raw: bytes, result: str, received: int) -> None:
        """Queue one telegram (never blocks); drops the oldest entries when over the bounds."""
        if reading is None and not self.raw_maxlen:
            return
        size = len(raw) + OVERHEAD_BYTES
        encoded = None
        if reading is not None:
            encoded = encode_reading(reading)
            size += len(encoded)
        if self.raw_maxlen == 0:
            raw = b""
        self.queue.append(Pending(reading, raw, result, received, size, encoded=encoded))
        self.queued_bytes += size
        while len(self.queue) > self.max_items or self.queued_bytes > self.max_bytes:
            # Never drop entries being published right now: they may already be in Redis.
            index = self._inflight
            if index >= len(self.queue):
                break
            victim = self.queue[index]
            del self.queue[index]
            self.queued_bytes -= victim.size
            if victim.reading is not None:
                self.dropped += 1
                DROPPED.inc()
        self._gauges()
        self._idle.clear()
        self._wakeup.set()

    def _gauges(self) -> None:
        BUFFER_DEPTH.set(len(self.queue))
        BUFFER_BYTES.set(self.queued_bytes)
        if len(self.queue) <= self._room_mark():
            self._drained.set()
        else:
            self._drained.clear()

    async def wait_for_room(self) -> None:
        """Wait until at most one round trip's worth of entries is queued: backpressure for a
        source that can wait (a capture replayed as fast as possible), where dropping the
        oldest, as for a live meter, would lose readings for nothing."""
        if len(self.queue) > self._room_mark():
            self._drained.clear()
            await self._drained.wait()

    def _room_mark(self) -> int:
        return min(PIPELINE, max(1, self.max_items // 2))

    def _next_id(self, received: int) -> str:
        ms, seq = self._last
        self._last = StreamId(received, 0) if received > ms else StreamId(ms, seq + 1)
        return str(self._last)

    async def _connect(self, backoff: Backoff) -> Redis:
        redis = await connect(self.url, backoff)
        for key in (self.stream_key, self.raw_key):
            entries = await redis.xrevrange(key, "+", "-", count=1)
            if entries:
                self._last = max(self._last, StreamId.parse(entry_id_text(entries[0][0])))
        log.info("publishing to %s stream %s", redact_url(self.url), self.stream_key)
        return redis

    async def run(self) -> None:
        """Publish queued entries for ever: connect, flush, wait for more; reconnect on outages."""
        backoff = Backoff()
        try:
            while True:
                try:
                    if self._redis is None:
                        self._redis = await self._connect(backoff)
                        backoff.reset()
                    await self._flush(self._redis)
                except REDIS_DOWN as error:
                    await self._lost(error, backoff)
                    continue
                except ResponseError as error:  # e.g. OOM, WRONGTYPE: keep the entry, retry
                    raise_if_cancelling()
                    delay = backoff.next_delay()
                    log.error("Redis refused a reading (%s); retrying in %.1f s", error, delay)
                    await asyncio.sleep(delay)
                    continue
                backoff.reset()
                flushed = time.monotonic()
                self._idle.set()
                self._wakeup.clear()
                raise_if_cancelling()  # redis-py can swallow a cancel that hits a command
                await self._wakeup.wait()
                if self.batch_wait and time.monotonic() - flushed < HOT_GAP:
                    # Readings arrive fast: let a few more queue up for the same round trip.
                    await asyncio.sleep(self.batch_wait)
        finally:
            if self._redis is not None:
                await self._redis.aclose()

    async def _lost(self, error: BaseException, backoff: Backoff) -> None:
        raise_if_cancelling()
        REDIS_CONNECTED.set(0)
        REDIS_RECONNECTS.inc()
        log.warning(
            "lost Redis (%s); buffering readings (%d waiting)",
            error or type(error).__name__,
            len(self.queue),
        )
        redis, self._redis = self._redis, None
        if redis is not None:
            with contextlib.suppress(*REDIS_DOWN):
                await redis.aclose()
        await asyncio.sleep(backoff.next_delay())

    async def _flush(self, redis: Redis) -> None:
        """Publish the queue in order, up to PIPELINE entries per round trip (one script call:
        no other client's command runs in between, and it stops at the first entry Redis
        refuses, so nothing after it is stored before it). The batch stays in flight (never
        dropped) until Redis has answered."""
        limit = max(1, min(PIPELINE, self.max_items))
        script = redis.register_script(PUBLISH_SCRIPT)
        while self.queue:
            batch = list(itertools.islice(self.queue, limit))
            self._inflight = len(batch)
            maxlen = self.maxlen
            if self.retention is not None:
                maxlen = await self.retention.maxlen(redis, self.stream_key, self.maxlen)
            args: list[bytes | str | int] = [maxlen, self.raw_maxlen, READING_FIELD, *FIELDS]
            for item in batch:
                if item.entry_id is None:
                    item.entry_id = self._next_id(item.received)
                if item.reading is not None and item.encoded is None:
                    item.encoded = encode_reading(item.reading)
                args += (item.entry_id, item.encoded or b"", item.raw, item.result, item.received)
            answer: Any = await script(keys=[self.stream_key, self.raw_key], args=args)
            stored, refused, duplicates = int(answer[0]), answer[1], int(answer[2])
            if duplicates:
                log.info("%d entries were already published; not adding them twice", duplicates)
            self._published(batch[:stored])
            if refused:  # the rest stays queued with its ids: a retry cannot double it
                raise ResponseError(_text(refused))

    def _published(self, done: list[Pending]) -> None:
        """Take stored entries off the queue and count them."""
        self._inflight -= len(done)
        now = time.time()
        last: Reading | None = None
        for item in done:
            if self.queue and self.queue[0] is item:
                self.queue.popleft()
                self.queued_bytes -= item.size
            if item.reading is not None:
                self.published += 1
                PUBLISHED.inc()
                PUBLISH_SECONDS.observe(max(0.0, now - item.received / 1000))
                last = item.reading
        if last is not None:
            LAST_READING_TS.set(last.ts / 1000)
        self._gauges()

    async def drain(self, seconds: float) -> bool:
        """Wait until everything queued is published (True) or `seconds` pass (False)."""
        if not self.queue:
            return True
        self._idle.clear()
        self._wakeup.set()
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        return not self.queue
