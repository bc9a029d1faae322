"""Delivery from the readings consumer group to the broker, and the acknowledgements.

Consumes the consumer group `mqtt` (`shared.stream.GroupReader`) and a connected client's
`Confirmations`; produces the messages of each reading (`services.mqtt.messages`) and, once the
broker confirmed all of them, the entry's XACK. Per connection: this consumer's own pending
entries first, then entries dead replicas left pending (idle for `HANPORT_MQTT_CLAIM_IDLE`),
then new ones. Entries already in the stream at connect time are the backlog and go out at most
`HANPORT_MQTT_BACKLOG_RATE` per second; with `HANPORT_MQTT_MIN_INTERVAL` only the newest of the
readings that arrived within the interval is published (the others are acknowledged as
superseded). The state here lasts across connections.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiomqtt
from redis.exceptions import ResponseError

from shared.identity import SERIAL_KEY
from shared.metrics import REDIS_RECONNECTS, STREAM_ENTRIES
from shared.reading import Reading
from shared.redis_retry import RedisRetry
from shared.stream import BLOCK_MS, REDIS_DOWN, Entry, GroupReader, ReadingStream
from shared.stream_id import FIRST, StreamId

from . import metrics
from .confirm import Confirmations
from .discovery import box_messages
from .messages import KINDS, announcements, reading_messages, submeter_announcements
from .meters import Meters, MeterState
from .raw import RawForwarder
from .settings import MqttSettings
from .topics import Topics

log = logging.getLogger(__name__)
BATCH = 100
ACK_DELAY = 0.05  # seconds a confirmed entry waits to be acknowledged with the next ones
Sent = tuple["asyncio.Future[None] | None", str]  # a message's confirmation and its kind
Serves = Callable[[MeterState, Reading], bool]  # whether a meter's readings may be published


def _serve_all(_state: MeterState, _reading: Reading) -> bool:
    return True


class Pacer:
    """Spaces calls to `wait` at least 1/rate seconds apart (the backlog's bounded rate)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1 / rate
        self.next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        if self.next > now:
            await asyncio.sleep(self.next - now)
        self.next = max(now, self.next) + self.interval


class ConnectionLost(aiomqtt.MqttError):
    """The broker connection ended while the bridge was using it."""


class Delivery:
    """The readings of one replica's consumer of one meter stream, from Redis to the broker.
    `meters` (what each meter publishes to, and what was announced for it) is the bridge's,
    shared by the deliveries of every stream; `serves` says whether a meter's readings may be
    published (its license): those of a meter it refuses are acknowledged unpublished."""

    def __init__(
        self,
        settings: MqttSettings,
        stream: ReadingStream,
        group: GroupReader,
        raw: RawForwarder | None,
        meters: Meters | None = None,
        serves: Serves = _serve_all,
    ) -> None:
        self.settings = settings
        self.stream = stream
        self.group = group
        self.raw = raw
        self.meters = meters or Meters(settings.stream, settings.default_meter)
        self.serves = serves
        self.held: dict[str, Reading] = {}  # entry id -> reading, waiting for the next slot
        # entries whose messages the broker confirmed, acknowledged together (one XACK per
        # ACK_DELAY or per BATCH instead of one per reading) and before anything is re-read
        self.confirmed: list[str] = []
        self.ack_due = 0.0
        self.ack_delay = min(ACK_DELAY, settings.mqtt_claim_idle / 4)
        self.redis_hiccup = False
        self.redis_call = RedisRetry(
            keys=(
                f"a key the bridge uses (HANPORT_STREAM '{settings.stream}', HANPORT_RAW_STREAM "
                f"'{settings.raw_stream}', {SERIAL_KEY})"
            ),
            regroup=self._make_groups,
            on_down=self._redis_down,
        )
        self.next_slot = 0.0
        self.pacer = Pacer(settings.mqtt_backlog_rate)
        self._published = {k: metrics.PUBLISHED.labels(k) for k in KINDS}
        self._failed = {k: metrics.FAILED.labels(k) for k in KINDS}

    async def deliver(self, out: Confirmations) -> None:
        last_id: str | None = await self.redis_call(self.stream.last_id)
        backlog_end = StreamId.parse(last_id or FIRST)
        self.held.clear()
        await self._publish_pending(out)
        # entries held for the minimum interval are pending too: never take them from a live
        # replica (or from ourselves) while they wait for their slot
        claim_idle, interval = self.settings.mqtt_claim_idle, self.settings.mqtt_min_interval
        if interval:
            claim_idle = max(claim_idle, 2 * interval + 10)
        claim_every = claim_idle / 2
        next_claim = next_read = 0.0
        linger = self.settings.mqtt_read_linger
        while True:
            now = time.monotonic()
            if now < next_read:  # readings keep coming: let a few more gather
                await asyncio.sleep(next_read - now)
                now = time.monotonic()
            if self.confirmed and now >= self.ack_due:
                await self.ack_confirmed()
            if now >= next_claim:
                await self.ack_confirmed()  # never take over our own confirmed entries
                claimed = await self.redis_call(
                    self.group.claim_idle, int(claim_idle * 1000), BATCH
                )
                if claimed:
                    log.info("took over %d readings another replica left pending", len(claimed))
                    await self._handle(out, claimed, paced=True)
                    continue
                next_claim = now + claim_every
            block_s = next_claim - now
            if self.held:
                block_s = min(block_s, self.next_slot - now)
            if self.confirmed:
                block_s = min(block_s, self.ack_due - now)
            block_ms = max(1, min(BLOCK_MS, int(block_s * 1000)))
            entries = await self.redis_call(self.group.new, BATCH, block_ms)
            STREAM_ENTRIES.inc(len(entries))
            if entries and len(entries) < BATCH:
                next_read = time.monotonic() + linger
            if self.redis_hiccup:
                # a read whose reply was lost left its entries pending with us: publish every
                # pending entry (these `entries` are among them), oldest first
                await self._publish_pending(out)
                continue
            paced = bool(entries) and StreamId.parse(entries[0][0]) <= backlog_end
            await self._handle(out, entries, paced=paced)

    async def _publish_pending(self, out: Confirmations) -> None:
        """This consumer's unacknowledged entries, oldest first (after a crash or lost reply)."""
        await self.ack_confirmed()  # confirmed ones are not published again
        self.redis_hiccup = False
        cursor = "0"
        while entries := await self.redis_call(self.group.pending_after, cursor, BATCH):
            fresh = [entry for entry in entries if entry[0] not in self.held]
            await self._handle(out, fresh, paced=True)
            cursor = entries[-1][0]

    async def _handle(self, out: Confirmations, entries: list[Entry], *, paced: bool) -> None:
        interval = self.settings.mqtt_min_interval
        if not interval:
            await self._publish_entries(out, entries, paced=paced)
            return
        self.held.update(entries)  # latest wins: publish the newest when the slot comes
        now = time.monotonic()
        if self.held and now >= self.next_slot:
            newest = max(self.held, key=StreamId.parse)
            superseded = set(self.held) - {newest}
            await self._publish_entries(out, [(newest, self.held[newest])], paced=False)
            self._confirmed(*superseded)
            metrics.SUPERSEDED.inc(len(superseded))
            self.held.clear()
            self.next_slot = now + interval

    async def _publish_entries(
        self, out: Confirmations, entries: list[Entry], *, paced: bool
    ) -> None:
        """Publish every entry's messages in order, at most HANPORT_MQTT_INFLIGHT awaiting the
        broker's confirmation; mark each entry whose messages the broker confirmed for
        acknowledgement, in order."""
        sent: list[tuple[str, float, list[Sent]]] = []
        timeout = self.settings.mqtt_publish_timeout
        try:
            for entry_id, reading in entries:
                if paced:
                    await self.pacer.wait()
                if out.full():
                    try:
                        async with asyncio.timeout(timeout):
                            await out.until_room()
                    except TimeoutError:
                        raise ConnectionLost(
                            f"the broker confirmed nothing within {timeout} s"
                        ) from None
                sent.append((entry_id, time.perf_counter(), self.send(out, reading)))
            try:
                async with asyncio.timeout(timeout):
                    for entry_id, start, messages in sent:
                        for future, kind in messages:
                            if future is not None:
                                await future
                            self._published[kind].inc()
                        metrics.PUBLISH_LATENCY.observe(time.perf_counter() - start)
                        self._confirmed(entry_id)
            except TimeoutError:
                raise ConnectionLost(f"the broker confirmed nothing within {timeout} s") from None
            if len(self.confirmed) >= BATCH:
                await self.ack_confirmed()
        finally:
            for _entry_id, _start, messages in sent:
                for future, kind in messages:
                    if future is not None and (future.cancel() or future.cancelled()):
                        self._failed[kind].inc()  # unconfirmed (the one awaited is cancelled)

    def _confirmed(self, *entry_ids: str) -> None:
        """These entries are done: acknowledge them within `ack_delay` (`_ack_confirmed`)."""
        if entry_ids and not self.confirmed:
            self.ack_due = time.monotonic() + self.ack_delay
        self.confirmed.extend(entry_ids)

    async def ack_confirmed(self) -> None:
        """XACK every confirmed entry (waiting out a Redis outage)."""
        if self.confirmed:
            await self.redis_call(self.group.ack, *self.confirmed)
            self.confirmed.clear()

    def send(self, out: Confirmations, reading: Reading) -> list[Sent]:
        """Hand this reading's messages to the client (in order): none when its meter is not
        served (its license names other meters)."""
        settings = self.settings
        state = self.meters.note(reading, self.stream.key)
        if not self.serves(state, reading):
            return []
        state.last_reading = reading
        sent = self.announce(out, state, reading) if settings.mqtt_discovery else []
        for topic, payload, qos, retain, kind in reading_messages(
            reading,
            state.topics,
            qos=settings.mqtt_qos,
            retain=settings.mqtt_retain,
            split=settings.mqtt_split_topics,
        ):
            sent.append((out.publish(topic, payload, qos, retain), kind))
        return sent

    def announce(self, out: Confirmations, state: MeterState, reading: Reading) -> list[Sent]:
        """Discovery configs (retained) for sensors of this reading not yet announced: the
        box's device first when there is one, then the meter's sensors and sub-meters."""
        settings, meters = self.settings, self.meters
        prefix, expire_after = settings.mqtt_discovery_prefix, settings.mqtt_expire_after
        messages = []
        if meters.boxed and not meters.box_announced:
            meters.box_announced = True
            box = box_messages(serial=meters.serial, topics=self.current_topics(), prefix=prefix)
            messages += [(topic, payload, 1, True, "other") for topic, payload in box]
        state.unannounced, configs = announcements(
            reading,
            state.unannounced,
            topics=state.topics,
            serial=meters.serial,
            prefix=prefix,
            expire_after=expire_after,
            device=state.device,
        )
        messages += configs
        if reading.submeters:
            messages += submeter_announcements(
                reading,
                state.announced,
                topics=state.topics,
                device=state.device,
                prefix=prefix,
                expire_after=expire_after,
            )
        return [(out.publish(t, p, qos, retain), kind) for t, p, qos, retain, kind in messages]

    async def confirm(self, sent: list[Sent]) -> None:
        """Wait for these publishes and count them; a failure only matters to the session,
        which sees it anyway."""
        futures = {future for future, _kind in sent if future is not None}
        if futures:
            await asyncio.wait(futures, timeout=self.settings.mqtt_publish_timeout)
        for future, kind in sent:
            ok = future is None or (future.done() and not future.cancelled())
            (self._published if ok else self._failed)[kind].inc()

    async def publish(
        self, client: aiomqtt.Client, topic: str, payload: bytes, qos: int, retain: bool, kind: str
    ) -> None:
        start = time.perf_counter()
        try:
            await client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError:
            self._failed[kind].inc()
            raise
        self._published[kind].inc()
        if kind == "reading":
            metrics.PUBLISH_LATENCY.observe(time.perf_counter() - start)

    async def ack_last(self) -> None:
        """One attempt to acknowledge the confirmed entries (when stopping): what stays pending
        is published again next time."""
        if self.confirmed:
            try:
                await asyncio.wait_for(self.group.ack(*self.confirmed), 2)
                self.confirmed.clear()
            except (TimeoutError, *REDIS_DOWN, ResponseError) as error:
                log.debug("could not acknowledge the last confirmed readings: %s", error)

    def current_topics(self) -> Topics:
        """The default meter's topics (the settings'), whose availability is the bridge's."""
        assert self.meters.base is not None
        return self.meters.base

    # --- Redis ---------------------------------------------------------------------------------

    async def _make_groups(self) -> None:
        await self.group.ensure_group()
        if self.raw is not None:
            await self.raw.ensure_group()

    def _redis_down(self, new_outage: bool) -> None:
        self.redis_hiccup = True
        if new_outage:
            REDIS_RECONNECTS.inc()
