"""Access to the readings stream in Redis: connect with retry, publish, follow, consumer groups.

The contract (docs/streams.md): one entry per reading in the stream `HANPORT_STREAM`, with the
field `reading` holding `shared.reading.encode_reading` JSON. The ingest service chooses entry ids
itself (`<receive ms>-<seq>`), so a publish retried after a lost reply is refused by Redis as a
duplicate instead of being stored twice.

Interfaces either follow the stream on their own (`follow_batches`, through
`shared.follow.Follower`: every replica sees every reading) or share a consumer group
(`GroupReader`, every reading handled once by one replica; `ConsumerGroup` is the same for any
stream, e.g. `shared.raw_stream.RawGroupReader`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .backoff import Backoff
from .cancellation import raise_if_cancelling
from .log import redact_url
from .metrics import (
    REDIS_CONNECTED,
    REDIS_RECONNECTS,
    STREAM_BAD_ENTRIES,
)
from .reading import Reading, decode_reading, encode_reading
from .stream_id import FIRST, entry_id_text

log = logging.getLogger(__name__)

READING_FIELD = b"reading"
BLOCK_MS = 5000
# Errors that mean "Redis is away for now": retry with backoff, never crash.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)

Entry = tuple[str, Reading]
E = TypeVar("E")


# Connections one client may hold at once. redis-py 8 caps a pool at 100 by default, and a
# consumer-group reader per meter (`shared.meter_streams.each_meter_stream`) holds one blocking
# connection per meter's stream: 100 meters took every one and the rest failed with "Too many
# connections". Redis itself accepts 10,000 clients.
MAX_CONNECTIONS = 2000


def redis_client(url: str) -> Redis:
    """A client whose reads outlast a blocking XREAD but notice a vanished server."""
    return Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=BLOCK_MS / 1000 + 5,
        health_check_interval=15,
        max_connections=MAX_CONNECTIONS,
    )


async def connect(url: str, backoff: Backoff | None = None) -> Redis:
    """A connected client; waits (with backoff) until Redis answers PING. Any Redis error is
    waited out, not only an unreachable server: still loading its data (`LOADING`), refusing
    clients (`DENIED` in protected mode), a password required or wrong. One line per attempt
    says which (the URL without its password)."""
    backoff = backoff or Backoff()
    client = redis_client(url)
    while True:
        try:
            await client.ping()
        except (RedisError, *REDIS_DOWN) as error:
            raise_if_cancelling(error)
            REDIS_CONNECTED.set(0)
            delay = backoff.next_delay()
            log.warning(
                "Redis at %s does not answer yet (%s: %s); retrying in %.1f s (attempt %d)",
                redact_url(url),
                type(error).__name__,
                error,
                delay,
                backoff.attempts,
            )
            await asyncio.sleep(delay)
            continue
        REDIS_CONNECTED.set(1)
        return client


def field_value(fields: Any, name: bytes) -> Any:
    """One field of a stream entry as a reply holds its fields: a dict (what redis-py makes of
    them), the flat `[name, value, ...]` list of a raw reply (`ConsumerGroup`), or None (an
    entry deleted while pending)."""
    if not fields:
        return None
    if isinstance(fields, dict):
        return fields.get(name)
    if fields[0] == name:  # the usual case: the entry's only (or first) field
        return fields[1]
    return dict(zip(fields[::2], fields[1::2], strict=True)).get(name)


def parse_entries(entries: Any, bad: list[str] | None = None) -> list[Entry]:
    """Stream entries to (id, Reading); entries that do not decode are logged, counted, skipped
    (and their ids appended to `bad` when given)."""
    out: list[Entry] = []
    for raw_id, fields in entries:
        entry_id = entry_id_text(raw_id)
        data = field_value(fields, READING_FIELD)
        try:
            if data is None:
                raise ValueError("no 'reading' field")
            out.append((entry_id, decode_reading(data)))
        except (msgspec.DecodeError, ValueError) as error:
            STREAM_BAD_ENTRIES.inc()
            log.warning("skipping stream entry %s: %s", entry_id, error)
            if bad is not None:
                bad.append(entry_id)
    return out


@dataclass
class ReadingStream:
    """One reader's readings stream."""

    redis: Redis
    key: str

    async def add(self, reading: Reading, *, entry_id: str = "*", maxlen: int | None = None) -> str:
        """XADD the reading; returns its id. Raises `DuplicateEntry` if `entry_id` is not newer
        than the stream's last entry (it was already published)."""
        try:
            raw = await self.redis.xadd(
                self.key,
                {READING_FIELD: encode_reading(reading)},
                id=entry_id,
                maxlen=maxlen,
                approximate=True,
            )
        except ResponseError as error:
            if "equal or smaller" in str(error):
                raise DuplicateEntry(entry_id) from error
            raise
        return entry_id_text(raw)

    async def last_id(self) -> str | None:
        entries = await self.redis.xrevrange(self.key, "+", "-", count=1)
        return entry_id_text(entries[0][0]) if entries else None

    async def latest(self) -> Entry | None:
        """The newest reading, or None when the stream is empty."""
        entries = parse_entries(await self.redis.xrevrange(self.key, "+", "-", count=1))
        return entries[0] if entries else None

    async def wait_latest(self) -> Entry | None:
        """`latest`, waiting out a Redis outage (with backoff) instead of raising."""
        backoff = Backoff()
        while True:
            try:
                return await self.latest()
            except REDIS_DOWN as error:
                await wait_for_redis(error, backoff)

    async def range(
        self, start: str = "-", end: str = "+", count: int | None = None
    ) -> list[Entry]:
        return parse_entries(await self.redis.xrange(self.key, start, end, count=count))

    async def follow(self, after: str = "$", *, count: int = 100) -> AsyncIterator[Entry]:
        """Every reading after `after` ('$': only new ones), forever, in order (see
        `follow_batches`)."""
        async for batch in self.follow_batches(after, count=count):
            for entry in batch:
                yield entry

    async def follow_batches(
        self, after: str = "$", *, count: int = 100
    ) -> AsyncGenerator[list[Entry], None]:
        """Every reading after `after` ('$': only new ones), forever, in order, as the batches
        one XREAD returns (up to `count`): a consumer that serves only the newest values can
        skip to `batch[-1]` when readings arrive faster than it handles them.

        Survives Redis outages: waits with backoff, reconnects and resumes after the last id it
        yielded, so nothing is skipped or repeated.
        """
        from .meter_streams import MeterStreams  # it builds on this module

        last = after
        if last == "$":
            last = await self._resolve_latest_id(Backoff())
        async for batch in MeterStreams.single(self).follow_batches({self.key: last}, count=count):
            yield batch

    async def _resolve_latest_id(self, backoff: Backoff) -> str:
        while True:
            try:
                return await self.last_id() or FIRST
            except REDIS_DOWN as error:
                await wait_for_redis(error, backoff)


async def wait_for_redis(error: BaseException, backoff: Backoff) -> None:
    """After a Redis error while following: note it (once per outage) and wait the backoff's
    next delay. A cancel passes through: a cancelled follower stops, it does not reconnect."""
    raise_if_cancelling(error)
    REDIS_CONNECTED.set(0)
    if backoff.attempts == 0:
        REDIS_RECONNECTS.inc()
        log.warning("lost Redis (%s); reconnecting", error or type(error).__name__)
    await asyncio.sleep(backoff.next_delay())


class DuplicateEntry(Exception):
    """The entry id is not newer than the stream's last one: it was already published."""


# Deletes the consumers of a group that hold nothing (no pending entry) and have not even tried
# to read for ARGV[2] ms, never ARGV[3] (the caller). One script: no consumer can take an entry
# between the look and the delete, so no pending entry is ever deleted with its consumer.
FORGET_SCRIPT = """
local removed = {}
for _, fields in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #fields, 2 do info[fields[i]] = fields[i + 1] end
  if info['pending'] == 0 and info['idle'] >= tonumber(ARGV[2]) and info['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed[#removed + 1] = info['name']
  end
end
return removed
"""


class StreamKey(Protocol):
    """A stream: the client and the key (`ReadingStream`, `shared.raw_stream.RawStream`)."""

    redis: Redis
    key: str


@dataclass
class ConsumerGroup(Generic[E]):
    """A consumer in a Redis consumer group: each entry goes to one consumer, which acknowledges
    it once handled. Unacknowledged entries stay pending and can be claimed after a crash.
    Subclasses say how an entry's fields decode (`decode`); an entry that does not decode is
    acknowledged at once (it would stay pending forever) and skipped."""

    stream: StreamKey
    group: str
    consumer: str
    # New entries are delivered without a pending entry each (XREADGROUP NOACK): the group is
    # then only a read position (services/export/position.py keeps its own confirmed one)
    noack: bool = False

    def decode(self, raw_entries: Any, bad: list[str]) -> list[tuple[str, E]]:
        """(id, value) of each entry of one reply; ids of entries that do not decode to `bad`."""
        raise NotImplementedError

    async def ensure_group(self, start: str = "0") -> None:
        """Create the group (and the stream) if missing; `start` is where a new group begins."""
        try:
            await self.stream.redis.xgroup_create(self.stream.key, self.group, start, mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def pending_mine(self, count: int = 100) -> list[tuple[str, E]]:
        """Entries delivered to this consumer and not yet acknowledged, oldest first."""
        return await self._read("0", count, block=None)

    async def pending_after(self, after: str, count: int = 100) -> list[tuple[str, E]]:
        """Like `pending_mine`, but only entries with ids greater than `after` (a cursor for
        walking a long pending list while some entries stay pending)."""
        return await self._read(after, count, block=None)

    async def new(self, count: int = 100, block_ms: int = BLOCK_MS) -> list[tuple[str, E]]:
        """Entries never delivered to any consumer of the group, oldest first."""
        return await self._read(">", count, block=block_ms)

    async def claim_idle(self, min_idle_ms: int, count: int = 100) -> list[tuple[str, E]]:
        """Take over entries other (dead) consumers left pending for `min_idle_ms` or longer."""
        result: Any = await self.stream.redis.xautoclaim(
            self.stream.key, self.group, self.consumer, min_idle_ms, "0-0", count=count
        )
        bad: list[str] = []
        entries = self.decode([e for e in result[1] if e and e[1] is not None], bad)
        await self.ack(*bad)
        return entries

    async def forget_idle_consumers(self, min_idle_ms: int) -> list[str]:
        """Delete the group's consumers that hold no pending entry and have not read for
        `min_idle_ms` (replicas gone for good: a recreated container has a new host name, so a
        new consumer name); their names. A consumer that comes back is simply created again."""
        script = self.stream.redis.register_script(FORGET_SCRIPT)
        removed: Any = await script(
            keys=[self.stream.key], args=[self.group, min_idle_ms, self.consumer]
        )
        return [n.decode() if isinstance(n, bytes) else str(n) for n in removed]

    async def ack(self, *entry_ids: str) -> None:
        if entry_ids:
            await self.stream.redis.xack(self.stream.key, self.group, *entry_ids)

    async def _read(self, start: str, count: int, block: int | None) -> list[tuple[str, E]]:
        """XREADGROUP, its reply as Redis sent it: redis-py's parsing of it (a dict per entry)
        cost as much CPU as decoding the readings (bench/export.py). The command is named
        with its first argument, as redis-py names subcommands (`XINFO STREAM`), so no
        response callback parses it."""
        args: list[Any] = [self.group, self.consumer, "COUNT", count]
        if block is not None:
            args += ["BLOCK", block]
        if self.noack and start == ">":
            args.append("NOACK")
        args += ["STREAMS", self.stream.key, start]
        response: Any = await self.stream.redis.execute_command("XREADGROUP GROUP", *args)
        if isinstance(response, dict):  # RESP3: {stream: entries}; RESP2: [[stream, entries]]
            response = response.items()
        entries: list[tuple[str, E]] = []
        bad: list[str] = []
        for _key, raw_entries in response or ():
            entries.extend(self.decode(raw_entries, bad))
        await self.ack(*bad)  # an entry that never decodes must not stay pending forever
        return entries


class GroupReader(ConsumerGroup[Reading]):
    """A consumer group on the readings stream."""

    def decode(self, raw_entries: Any, bad: list[str]) -> list[Entry]:
        return parse_entries(raw_entries, bad)
