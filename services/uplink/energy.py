"""The accounting service's intervals -> JetStream (the box's spool, or the hub directly).

Reads every meter's quarter-hour, hour, day and month intervals with the export's reader
(`services.export.intervals.changed_intervals` over services/accounting/store.py): at the first
start every stored interval (then `HISTORY_SENT` is set), at later starts those of the last
`LOOKBACK_MS`, then every `every` s those of the last `LOOKBACK_MS` whose stored member changed
since it was last acknowledged (the running interval grows, a gap is spread). Each goes out as
`interval_message` (subject `hanport.<box>.<meter>.energy`); an interval counts as sent only
when JetStream acknowledged it, what was not is sent again after a backoff. The message id holds
a hash of the member, so a replay (a restart sends the last two months again) is dropped by the
hub's duplicate window (later than it, stored again: the stores overwrite), and a grown interval
is stored as a new message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from nats.js import JetStreamContext
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.export.intervals import LOOKBACK_MS, Seen, changed_intervals
from services.export.sinks.intervals import Interval
from shared.backoff import Backoff
from shared.cancellation import raise_if_cancelling
from shared.stream import REDIS_DOWN

from .messages import interval_message
from .metrics import ERRORS, INTERVALS
from .publish import publish_in_order

log = logging.getLogger(__name__)

# Set (to the time in ms) once every stored interval was acknowledged: later starts send only
# the intervals that can still change (the last `LOOKBACK_MS`), not years of history again.
# Delete it to send the whole history again (a new hub).
HISTORY_SENT = "hanport:uplink:energy:history_sent"


@dataclass
class EnergyRelay:
    redis: Redis
    js: JetStreamContext
    box: str
    stage: str
    every: float = 60.0
    batch: int = 100
    timeout: float = 5.0
    seen: Seen = field(default_factory=dict)  # (meter, resolution, start) -> member acked
    backoff: Backoff = field(default_factory=Backoff)

    async def run(self) -> None:
        first = True
        while True:
            try:
                since: int | None = int(time.time() * 1000) - LOOKBACK_MS
                if first and not await self.redis.exists(HISTORY_SENT):
                    since = None  # never sent in full: the whole history
                changed = await changed_intervals(self.redis, self.seen, since)
            except (*REDIS_DOWN, ResponseError) as error:
                raise_if_cancelling(error)
                ERRORS.labels(self.stage, "redis").inc()
                delay = self.backoff.next_delay()
                log.warning("cannot read the accounting intervals (%s); again in %.1f s",
                            error, delay)  # fmt: skip
                await asyncio.sleep(delay)
                continue
            for start in range(0, len(changed), self.batch):
                await self.send(changed[start : start + self.batch])
            if first and since is None and changed:  # nothing stored yet: look again next start
                await self.redis.set(HISTORY_SENT, str(int(time.time() * 1000)))
                log.info("sent the whole accounting history (%d intervals)", len(changed))
            first = False
            since = int(time.time() * 1000) - LOOKBACK_MS
            for key in [k for k in self.seen if k[2] < since]:
                del self.seen[key]
            await asyncio.sleep(self.every)

    async def send(self, part: list[tuple[Interval, str]]) -> None:
        """Publish until JetStream acknowledged every interval of `part`, in order."""
        todo = [(i, interval_message(self.box, i, m)) for i, m in part]
        while todo:
            done = await publish_in_order(
                self.js, [m for _i, m in todo], ack_timeout=self.timeout, stage=self.stage
            )
            for interval, message in todo[:done]:
                self.seen[(interval.meter, interval.resolution, interval.start_ms)] = message.key
            INTERVALS.labels(self.stage).inc(done)
            todo = todo[done:]
            if done:
                self.backoff.reset()
            if todo:
                await asyncio.sleep(self.backoff.next_delay())
