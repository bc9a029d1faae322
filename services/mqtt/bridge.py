"""Delivery from the readings stream to the broker, nothing lost.

Consumes the readings stream through the Redis consumer group `mqtt` (`shared.stream.GroupReader`)
and produces MQTT messages: the Cozify `/meter` JSON on the data topic, optional split topics,
Home Assistant discovery and the retained availability. A stream entry is acknowledged only once
the broker confirmed every message made from it (PUBACK for QoS 1, PUBCOMP for QoS 2, written for
QoS 0); until then it stays pending, so a lost connection or a crash loses nothing.

Order of work after each (re)connect: this consumer's own pending entries, then entries dead
replicas left pending (idle for `HANPORT_MQTT_CLAIM_IDLE`), then new entries. Entries that were
already in the stream at connect time are the backlog and go out at most
`HANPORT_MQTT_BACKLOG_RATE` per second; newer ones go out at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiomqtt
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.backoff import Backoff
from shared.cancellation import raise_if_cancelling
from shared.entitlements import Entitlements, EntitlementSource
from shared.gate import while_granted
from shared.identity import SERIAL_KEY, reader_serial
from shared.log import redact_url
from shared.metrics import REDIS_CONNECTED, REDIS_RECONNECTS, STREAM_ENTRIES
from shared.reading import Reading, encode_cozify
from shared.stream import BLOCK_MS, REDIS_DOWN, ConsumerGroup, Entry, GroupReader, ReadingStream
from shared.stream_id import FIRST, StreamId
from shared.supervise import Fatal, Work, run_supervised

from . import metrics
from .confirm import Confirmations
from .connection import OFFLINE, ONLINE, ConfigError, explain, make_client
from .discovery import SENSORS, Sensor, discovery_messages, present_sensors
from .licence import FEATURE, report
from .raw import RawForwarder
from .settings import MqttSettings
from .topics import Topics, split_messages

log = logging.getLogger(__name__)
T = TypeVar("T")
BATCH = 100
ACK_DELAY = 0.05  # seconds a confirmed entry waits to be acknowledged with the next ones
PENDING_WARN = 100_000
# A consumer that held nothing and did not even try to read for this long is a replica gone for
# good (`compose up` recreating a container gives it a new host name, so a new consumer name):
# its name is removed from the groups, looked for every FORGET_EVERY_S.
FORGET_IDLE_MS = 3_600_000
FORGET_EVERY_S = 300.0
STOP_WAIT = 0.5  # seconds a stop waits for the session's tasks to end
KINDS = ("reading", "split", "raw", "other")
Sent = tuple["asyncio.Future[None] | None", str]  # a message's confirmation and its kind


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


class Bridge:
    """The MQTT bridge of one replica; `run()` until cancelled."""

    def __init__(
        self,
        settings: MqttSettings,
        redis: Redis,
        *,
        entitlements: EntitlementSource | None = None,
    ) -> None:
        if not settings.mqtt_url:
            raise ValueError("HANPORT_MQTT_URL is unset")
        self.settings = settings
        self.redis = redis
        self.entitlements = entitlements
        self.stream = ReadingStream(redis, settings.stream)
        self.group = GroupReader(self.stream, settings.mqtt_group, settings.mqtt_consumer)
        self.raw = (
            RawForwarder(
                redis,
                settings.raw_stream,
                f"{settings.mqtt_group}-raw",
                settings.mqtt_consumer,
                settings.mqtt_raw_topic,
            )
            if settings.mqtt_raw_topic
            else None
        )
        self.serial = ""
        self.topics: Topics | None = None
        self.connected_once = False
        self.last_failure: str | None = None
        self.unannounced: tuple[Sensor, ...] = SENSORS  # discovery configs not yet sent
        self.last_reading: Reading | None = None
        self.held: dict[str, Reading] = {}  # entry id -> reading, waiting for the next slot
        # entries whose messages the broker confirmed, acknowledged together (one XACK per
        # ACK_DELAY or per BATCH instead of one per reading) and before anything is re-read
        self.confirmed: list[str] = []
        self.ack_due = 0.0
        self.ack_delay = min(ACK_DELAY, settings.mqtt_claim_idle / 4)
        self.redis_hiccup = False
        self.next_slot = 0.0
        self.pacer = Pacer(settings.mqtt_backlog_rate)
        self._published = {k: metrics.PUBLISHED.labels(k) for k in KINDS}
        self._failed = {k: metrics.FAILED.labels(k) for k in KINDS}

    # --- the whole life of the bridge -------------------------------------------------------

    async def run(self) -> None:
        self.serial = await self._redis(reader_serial, self.settings.serial, self.redis)
        self.topics = Topics.from_settings(self.settings, self.serial)
        await self._redis(self.group.ensure_group)
        works: dict[str, Work] = {"backlog and consumer housekeeping": self._watch_backlog}
        entitlements = self.entitlements
        if entitlements is None:
            real = Entitlements(self.redis, self.settings)
            await self._redis(real.refresh)  # decide on the installed licence, not on none yet
            works["entitlements"] = real.run
            entitlements = real
        log.info(
            "MQTT bridge %s: readings from %s (group %s) to %s on %s",
            self.settings.mqtt_consumer,
            self.settings.stream,
            self.settings.mqtt_group,
            redact_url(self.settings.mqtt_url or ""),
            self.topics.data,
        )
        gated = entitlements
        works["delivery"] = lambda: while_granted(
            gated, FEATURE, self._connected_forever, report=report
        )
        await run_supervised(works)  # a Fatal error ends them all, and the service

    async def _connected_forever(self) -> None:
        """Connect, deliver until the connection ends, reconnect with backoff; forever."""
        backoff = Backoff()
        while True:
            connected = False
            try:
                client = make_client(self.settings, self._topics())
                client.pending_calls_threshold = PENDING_WARN  # a batch in flight is normal
                async with client:
                    connected = True
                    self._on_connected()
                    backoff.reset()
                    await self._session(client)
            except (aiomqtt.MqttError, ConfigError) as error:
                metrics.CONNECTED.set(0)
                await self._ack_confirmed()
                if connected:
                    log.warning(
                        "lost the broker connection (%s); reconnecting, unconfirmed readings "
                        "stay pending and are published again",
                        error,
                    )
                else:
                    self._connect_failed(error)
            except (*REDIS_DOWN, ResponseError, RuntimeError, ValueError) as error:
                # not expected; never a crash loop: say what happened, start the session again
                metrics.CONNECTED.set(0)
                metrics.CONNECT_FAILURES.labels("unexpected").inc()
                log.exception("MQTT session failed unexpectedly (%s); starting it again", error)
            await asyncio.sleep(backoff.next_delay())

    def _on_connected(self) -> None:
        metrics.CONNECTED.set(1)
        if self.connected_once:
            metrics.RECONNECTS.inc()
        self.connected_once = True
        self.last_failure = None
        log.info("connected to %s", redact_url(self.settings.mqtt_url or ""))

    def _connect_failed(self, error: BaseException) -> None:
        reason, message = explain(error, self.settings)
        metrics.CONNECT_FAILURES.labels(reason).inc()
        if reason != self.last_failure:  # one line per cause, not one per retry
            log.error("%s (retrying with backoff)", message, extra={"reason": reason})
            self.last_failure = reason
        else:
            log.debug("still cannot connect: %s", error)

    def _topics(self) -> Topics:
        assert self.topics is not None
        return self.topics

    # --- one connection ----------------------------------------------------------------------

    async def _session(self, client: aiomqtt.Client) -> None:
        topics = self._topics()
        await client.publish(topics.availability, ONLINE, qos=1, retain=True)
        self.unannounced = SENSORS
        status_topic = f"{self.settings.mqtt_discovery_prefix}/status"
        if self.settings.mqtt_discovery:
            await self._subscribe(client, status_topic)
        out = Confirmations(client, self.settings.mqtt_inflight)
        tasks = [
            asyncio.create_task(self._watch_messages(client, out, status_topic)),
            asyncio.create_task(self._deliver(out)),
        ]
        if self.raw is not None:
            tasks.append(asyncio.create_task(self._forward_raw(client)))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # stopping (signal or licence gone): say so, cleanly
            await self._stop(client, *tasks)
            out.cancel()
            raise
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        out.cancel()
        for task in done:
            task.result()
        raise ConnectionLost("the session ended")

    async def _stop(self, client: aiomqtt.Client, *tasks: asyncio.Task[None]) -> None:
        for task in tasks:
            task.cancel()
        # redis-py (Python 3.11) can swallow a cancel that lands as a blocking read starts; that
        # read then runs its course (up to 5 s) and reads nothing it could publish (entries it
        # takes stay pending): do not hold the shutdown for it
        _done, slow = await asyncio.wait(tasks, timeout=STOP_WAIT)
        if slow:
            log.debug("%d tasks still stopping; not waiting for them", len(slow))
        if self.confirmed:  # one attempt: what stays pending is published again next time
            try:
                await asyncio.wait_for(self.group.ack(*self.confirmed), 2)
                self.confirmed.clear()
            except (TimeoutError, *REDIS_DOWN, ResponseError) as error:
                log.debug("could not acknowledge the last confirmed readings: %s", error)
        try:
            await client.publish(
                self._topics().availability, OFFLINE, qos=1, retain=True, timeout=2
            )
        except aiomqtt.MqttError as error:
            log.debug("could not publish offline: %s", error)
        metrics.CONNECTED.set(0)

    async def _subscribe(self, client: aiomqtt.Client, topic: str) -> None:
        codes = await client.subscribe(topic, qos=1)
        refused = [code for code in codes if _is_failure(code)]
        if refused:
            metrics.SUBSCRIBE_REFUSED.labels(topic).inc()
            log.error(
                "the broker refused the subscription to %s (%s): allow this user to read it in "
                "the broker's ACL; until then discovery is only re-sent when the bridge reconnects",
                topic,
                refused[0],
            )

    async def _watch_messages(
        self, client: aiomqtt.Client, out: Confirmations, status_topic: str
    ) -> None:
        """Raises when the connection ends; re-sends discovery when Home Assistant restarts."""
        resend: set[asyncio.Task[None]] = set()
        async for message in client.messages:
            if message.topic.matches(status_topic) and message.payload == b"online":
                self.unannounced = SENSORS
                if self.last_reading is not None:
                    sent = self._announce(out, self.last_reading)
                    if sent:
                        task = asyncio.ensure_future(self._confirm(sent))
                        resend.add(task)
                        task.add_done_callback(resend.discard)

    async def _forward_raw(self, client: aiomqtt.Client) -> None:
        assert self.raw is not None
        qos = self.settings.mqtt_qos

        async def publish(topic: str, payload: bytes) -> None:
            await self._publish(client, topic, payload, qos, False, "raw")

        await self.raw.run(self._redis, publish)

    # --- delivery ------------------------------------------------------------------------------

    async def _deliver(self, out: Confirmations) -> None:
        last_id: str | None = await self._redis(self.stream.last_id)
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
                await self._ack_confirmed()
            if now >= next_claim:
                await self._ack_confirmed()  # never take over our own confirmed entries
                claimed = await self._redis(self.group.claim_idle, int(claim_idle * 1000), BATCH)
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
            entries = await self._redis(self.group.new, BATCH, block_ms)
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
        await self._ack_confirmed()  # confirmed ones are not published again
        self.redis_hiccup = False
        cursor = "0"
        while entries := await self._redis(self.group.pending_after, cursor, BATCH):
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
                sent.append((entry_id, time.perf_counter(), self._send(out, reading)))
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
                await self._ack_confirmed()
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

    async def _ack_confirmed(self) -> None:
        """XACK every confirmed entry (waiting out a Redis outage)."""
        if self.confirmed:
            await self._redis(self.group.ack, *self.confirmed)
            self.confirmed.clear()

    def _send(self, out: Confirmations, reading: Reading) -> list[Sent]:
        """Hand this reading's messages to the client (in order)."""
        topics = self._topics()
        qos, retain = self.settings.mqtt_qos, self.settings.mqtt_retain
        self.last_reading = reading
        sent = self._announce(out, reading) if self.settings.mqtt_discovery else []
        sent.append((out.publish(topics.data, encode_cozify(reading), qos, retain), "reading"))
        if self.settings.mqtt_split_topics:
            for topic, payload in split_messages(reading, topics.prefix):
                sent.append((out.publish(topic, payload, qos, retain), "split"))
        return sent

    def _announce(self, out: Confirmations, reading: Reading) -> list[Sent]:
        """Discovery configs (retained) for sensors of this reading not yet announced."""
        if not self.unannounced:  # the usual case: look at no value at all
            return []
        fresh = present_sensors(reading, self.unannounced)
        if not fresh:
            return []
        self.unannounced = tuple(s for s in self.unannounced if s not in fresh)
        configs = discovery_messages(
            fresh,
            reading=reading,
            topics=self._topics(),
            serial=self.serial,
            prefix=self.settings.mqtt_discovery_prefix,
            expire_after=self.settings.mqtt_expire_after,
        )
        return [(out.publish(topic, payload, 1, True), "other") for topic, payload in configs]

    async def _confirm(self, sent: list[Sent]) -> None:
        """Wait for these publishes and count them; a failure only matters to the session,
        which sees it anyway."""
        futures = {future for future, _kind in sent if future is not None}
        if futures:
            await asyncio.wait(futures, timeout=self.settings.mqtt_publish_timeout)
        for future, kind in sent:
            ok = future is None or (future.done() and not future.cancelled())
            (self._published if ok else self._failed)[kind].inc()

    async def _publish(
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

    # --- Redis ---------------------------------------------------------------------------------

    async def _redis(self, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        """`await call(*args)`, waiting out Redis outages with backoff (and a lost group)."""
        backoff = Backoff()
        while True:
            try:
                result = await call(*args)
            except REDIS_DOWN as error:
                # redis-py can turn a cancel that lands inside a command into a ConnectionError:
                # a cancelled bridge stops here instead of retrying (a blocking read: 5 s)
                raise_if_cancelling()
                REDIS_CONNECTED.set(0)
                self.redis_hiccup = True
                if backoff.attempts == 0:
                    REDIS_RECONNECTS.inc()
                    log.warning(
                        "lost Redis (%s); retrying, nothing is acknowledged meanwhile", error
                    )
                await asyncio.sleep(backoff.next_delay())
                continue
            except ResponseError as error:
                raise_if_cancelling(error)
                if "WRONGTYPE" in str(error):
                    raise Fatal(
                        f"Redis refused a command ({error}): a key the bridge uses "
                        f"(HANPORT_STREAM '{self.settings.stream}', HANPORT_RAW_STREAM "
                        f"'{self.settings.raw_stream}', {SERIAL_KEY}) holds another kind of "
                        "value; delete that key or name other keys"
                    ) from error
                if "NOGROUP" not in str(error) or backoff.attempts > 5:
                    raise
                log.warning("a consumer group is gone (Redis lost its data?); creating it again")
                await self.group.ensure_group()
                if self.raw is not None:
                    await self.raw.ensure_group()
                await asyncio.sleep(backoff.next_delay())
                continue
            if backoff.attempts:
                REDIS_CONNECTED.set(1)
            raise_if_cancelling()
            return result

    async def _watch_backlog(self, every: float = 2.0) -> None:
        """Keep the backlog gauges current: pending + undelivered entries, oldest age; now and
        then remove the consumer names of replicas gone for good."""
        key, group = self.settings.stream, self.settings.mqtt_group
        next_forget = time.monotonic() + every
        while True:
            if time.monotonic() >= next_forget:
                await self.forget_gone_replicas()
                next_forget = time.monotonic() + FORGET_EVERY_S
            try:
                summary = await self.redis.xpending(key, group)
                groups = await self.redis.xinfo_groups(key)
                info = next((g for g in groups if _text(g.get("name")) == group), {})
                lag = int(info.get("lag") or 0)
                oldest = _text(summary.get("min")) if summary.get("pending") else None
                if oldest is None and lag:
                    after = _text(info.get("last-delivered-id") or "0-0")
                    nxt = await self.redis.xrange(key, f"({after}", "+", count=1)
                    oldest = _text(nxt[0][0]) if nxt else None
                metrics.BACKLOG.set(int(summary.get("pending") or 0) + lag)
                age = time.time() - StreamId.parse(oldest).ms / 1000 if oldest else 0.0
                metrics.BACKLOG_AGE.set(max(0.0, age))
            except (*REDIS_DOWN, ResponseError) as error:
                raise_if_cancelling(error)  # a cancelled command is not an outage: stop
                log.debug("backlog metrics unavailable: %s", error)
            await asyncio.sleep(every)

    async def forget_gone_replicas(self, min_idle_ms: int = FORGET_IDLE_MS) -> list[str]:
        """Remove from the readings (and raw) consumer groups every other consumer that holds no
        pending entry and has not tried to read for `min_idle_ms`; the names removed."""
        groups: list[ConsumerGroup[Any]] = [self.group]
        if self.raw is not None:
            groups.append(self.raw.reader)
        removed: list[str] = []
        for reader in groups:
            try:
                names = await reader.forget_idle_consumers(min_idle_ms)
            except (*REDIS_DOWN, ResponseError) as error:  # tried again next time
                raise_if_cancelling(error)
                log.debug("could not look for gone replicas in %s: %s", reader.group, error)
                continue
            if names:
                log.info(
                    "removed %d consumers of replicas gone for over %d s from group %s: %s",
                    len(names),
                    min_idle_ms // 1000,
                    reader.group,
                    ", ".join(sorted(names)),
                )
                metrics.CONSUMERS_FORGOTTEN.inc(len(names))
            removed += names
        return removed


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_failure(code: Any) -> bool:
    if isinstance(code, int):
        return code >= 0x80
    return bool(getattr(code, "is_failure", False))
