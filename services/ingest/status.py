"""The ingest service's word on its source, kept in Redis for other services and `hanport
doctor`: the hash `STATUS_KEY` (`hanport:ingest:status`, docs/streams.md; the key and its reader
are in `shared/ingest_status.py`), rewritten every
`EVERY_SECONDS` (and about a second after the source opened or failed) with the verdict of
`diagnosis.py` over the last one to two minutes:

    state     ok, or the check that failed: source, bytes, line, frames, crc, encryption, decode
    reason    what was found, in words ("serial /dev/ttyUSB0 ...: [Errno 2] No such file ...")
    fix       what to do about it ("" when ok)
    updated   when this was written, ms since the epoch
    source, protocol, line, bytes, frames: what the verdict rests on

`StatusWriter.run` writes through Redis outages (it simply tries again at the next round).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.backoff import Backoff
from shared.cancellation import raise_if_cancelling
from shared.ingest_status import EVERY_SECONDS, STATUS_KEY
from shared.stream import REDIS_DOWN, connect

from .codec.decoded import Decoded, DecodeError
from .diagnosis import Finding, Tally, source_findings, verdict
from .registration import Registration
from .sources.spec import Source
from .sources.status import SourceStatus

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0  # the verdict covers the current and the previous window
SETTLE_SECONDS = 1.0  # after the source opened or failed: time for first bytes or a retry


def status_fields(
    findings: list[Finding], source: Source, tally: Tally, status: SourceStatus | None, now_ms: int
) -> dict[str, str | int]:
    """The hash's fields for `findings` (see the module docstring)."""
    chosen = verdict(findings)
    return {
        "state": "ok" if chosen.ok and tally.results["ok"] else chosen.check,
        "reason": chosen.says,
        "fix": chosen.fix,
        "updated": now_ms,
        "source": source.spec.describe(),
        "protocol": tally.protocol,
        "line": status.line if status is not None else "",
        "bytes": tally.bytes,
        "frames": ", ".join(f"{n} {reason}" for reason, n in tally.results.most_common()),
    }


@dataclass
class StatusWriter:
    """Counts what the ingest loop decodes (`tally`, a window) and writes the verdict."""

    url: str
    source: Source
    key: str = STATUS_KEY
    every: float = EVERY_SECONDS
    window: float = WINDOW_SECONDS
    tally: Tally = field(default_factory=Tally)  # the current window, counted by the ingest loop
    previous: Tally = field(default_factory=Tally)
    started: float = field(default_factory=time.monotonic)
    _window_start: float = field(default_factory=time.monotonic)
    registration: Registration | None = None  # the meter's directory record, written alongside
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # write now (the name is known)

    def counted(self, size: int, items: list[Decoded | DecodeError], protocol: str) -> None:
        """Count one chunk of `size` bytes and what the decoder made of it."""
        self.tally.bytes += size
        self.tally.count(items)
        if protocol != "auto":
            self.tally.protocol = protocol

    def fields(self) -> dict[str, str | int]:
        now = time.monotonic()
        if now - self._window_start >= self.window:
            self.previous, self.tally = self.tally, Tally(protocol=self.tally.protocol)
            self._window_start = now
        seconds = min(now - self.started, now - self._window_start + self.window)
        status: SourceStatus | None = getattr(self.source, "status", None)
        tally = self.previous.add(self.tally)
        findings = source_findings(self.source.spec, status, tally, round(seconds, 1))
        return status_fields(findings, self.source, tally, status, int(time.time() * 1000))

    async def next_round(self) -> None:
        """Wait `every` seconds, or less when the source opens or fails (then the new state is
        in Redis within `SETTLE_SECONDS`, not at the next round) or `wake` is set."""
        status: SourceStatus | None = getattr(self.source, "status", None)
        changed = status.changed if status is not None else asyncio.Event()
        changed.clear()
        waits = [asyncio.ensure_future(e.wait()) for e in (changed, self.wake)]
        try:
            await asyncio.wait(waits, timeout=self.every, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        if changed.is_set():
            await asyncio.sleep(min(SETTLE_SECONDS, self.every))
        self.wake.clear()

    async def run(self) -> None:
        backoff = Backoff()
        redis: Redis | None = None
        if self.registration is not None and self.registration.record(0) is not None:
            self.wake.set()  # a configured name: in the directory at once
        try:
            while True:
                await self.next_round()
                try:
                    if redis is None:
                        redis = await connect(self.url, backoff)
                    await redis.hset(self.key, mapping=self.fields())  # type: ignore[arg-type]
                    if self.registration is not None:
                        await self.registration.write(redis)
                    raise_if_cancelling()  # a cancel redis-py swallowed (shared/cancellation.py)
                except ResponseError as error:  # e.g. the key holds something else
                    log.warning("cannot write %s: %s", self.key, error)
                except REDIS_DOWN as error:
                    raise_if_cancelling()
                    log.debug("status not written (%s); next round", error)
                    if redis is not None:
                        await redis.aclose()
                    redis = None
        finally:
            if redis is not None:
                await redis.aclose()
