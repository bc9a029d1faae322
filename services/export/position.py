"""Where a sink stands in one readings stream: what it has confirmed, and what it has read.

Two consumer groups per sink and stream, and no pending entries: a pending entry per reading
cost Redis 2.3 µs to make and to drop again, most of what Redis spent on the export
(docs/performance.md, Export).

- `export-<sink>`, the confirmed position (`Position.confirm`): its last-delivered id is the
  newest entry the sink confirmed (HTTP 2xx, COMMIT), every entry up to it is stored. Its
  `entries-read` is kept exact, so Redis's lag is what the sink has not confirmed: the ingest's
  trimming keeps those entries (shared/retention.py) and the lag gauges show them.
- `read-export-<sink>-<consumer>`, this export's read position: new entries are read through it
  without pending entries (XREADGROUP NOACK), which Redis counts (`entries-read`) exactly, trims
  included: a batch is confirmed with the count at its last entry (`Position.read_mark`). At
  every start it is set back to the confirmed position (`Position.start`), so what was read and
  not confirmed before a crash or a stop is read and written again, which stores nothing twice.

A second export on the same box has read groups of its own: it writes the same readings again
(nothing twice in the store, but twice the work), and either confirms only what it wrote itself.
Read groups whose consumer has been idle for an hour (`stale_ms`: a replaced container, a new
host name) are deleted at start; one that has not read yet is kept (its export may be starting).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)

READ_PREFIX = "read-"  # outside `export-`: the ingest's retention ignores read positions


@dataclass(frozen=True)
class Mark:
    """A point in a stream as a group holds it: the last entry id, and how many entries the
    stream had added up to it (`entries-read`; None when Redis cannot tell)."""

    last_id: str
    entries_read: int | None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def group_marks(redis: Redis, key: str) -> dict[str, Mark]:
    """Every consumer group of `key` by name, with its mark."""
    groups: Any = await redis.xinfo_groups(key)
    out = {}
    for info in groups:
        read = info.get("entries-read")
        last = _text(info.get("last-delivered-id") or "0-0")
        out[_text(info.get("name"))] = Mark(last, None if read is None else int(read))
    return out


@dataclass
class Position:
    """A sink's two positions in one stream (the module's docstring)."""

    redis: Redis
    key: str
    group: str  # the confirmed position: `export-<sink>`
    consumer: str
    stale_ms: int = 3_600_000  # a read group whose consumer has been idle this long is deleted

    @property
    def read_group(self) -> str:
        return f"{READ_PREFIX}{self.group}-{self.consumer}"

    async def start(self) -> Mark:
        """Set the read group to the confirmed position (made first: `SinkWorker.create_group`),
        creating it when missing, and delete this sink's stale read groups; the mark."""
        marks = await group_marks(self.redis, self.key)
        confirmed = marks[self.group]
        try:
            await self.redis.xgroup_setid(
                self.key, self.read_group, confirmed.last_id, confirmed.entries_read
            )
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            await self.redis.xgroup_create(
                self.key, self.read_group, confirmed.last_id, entries_read=confirmed.entries_read
            )
        await self._forget_stale(name for name in marks if name != self.read_group)
        return confirmed

    async def _forget_stale(self, names: Any) -> None:
        prefix = f"{READ_PREFIX}{self.group}-"
        for name in names:
            if not name.startswith(prefix):
                continue
            consumers: Any = await self.redis.xinfo_consumers(self.key, name)
            if consumers and all(int(c.get("idle") or 0) >= self.stale_ms for c in consumers):
                await self.redis.xgroup_destroy(self.key, name)
                log.info("deleted the read group %s of %s (its reader is gone)", name, self.key)

    async def read_mark(self) -> Mark:
        """The read group's mark: where the entries read so far end."""
        return (await group_marks(self.redis, self.key))[self.read_group]

    async def confirm(self, mark: Mark) -> None:
        """Everything up to `mark` is stored: move the confirmed position there."""
        await self.redis.xgroup_setid(self.key, self.group, mark.last_id, mark.entries_read)
