"""The MQTT bridge of one replica: its life and its broker connections.

Consumes the readings stream through the Redis consumer group `mqtt` and produces MQTT messages:
the Cozify `/meter` JSON on the data topic, optional split topics, Home Assistant discovery and
the retained availability. A stream entry is acknowledged only once the broker confirmed every
message made from it (PUBACK for QoS 1, PUBCOMP for QoS 2, written for QoS 0); until then it
stays pending, so a lost connection or a crash loses nothing.

Here: start-up (serial, topics, group), the tasks that run under `shared.supervise` (the
delivery behind the license gate `shared.gate.while_granted`, the entitlements, the
housekeeping), and each connection: connect with backoff, publish `online`, run the delivery
(`services.mqtt.delivery`), the raw topic (`services.mqtt.raw`) and the Home Assistant status
watch until the connection ends, and `offline` when stopping. The messages themselves are built
in `services.mqtt.messages`; the backlog gauges and the forgetting of gone replicas are in
`services.mqtt.housekeeping`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiomqtt
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from shared.backoff import Backoff
from shared.cancellation import raise_if_cancelling, stop
from shared.entitlements import Entitlements, EntitlementSource, MeterFilter
from shared.gate import while_granted
from shared.identity import wait_for_serial
from shared.log import redact_url
from shared.meter_streams import REFRESH_S, each_meter_stream
from shared.meters import MeterDirectory
from shared.reading import Reading
from shared.stream import REDIS_DOWN, ConsumerGroup, GroupReader, ReadingStream
from shared.supervise import Work, run_supervised

from . import metrics
from .accounting import publish_accounting
from .confirm import Confirmations
from .connection import OFFLINE, ONLINE, ConfigError, explain, lost_hint, make_client
from .delivery import ConnectionLost, Delivery
from .housekeeping import FORGET_IDLE_MS, forget_gone_replicas, watch_backlog
from .license import FEATURE, report
from .meters import Meters, MeterState
from .raw import RawForwarder
from .settings import MqttSettings
from .topics import Topics

log = logging.getLogger(__name__)
PENDING_WARN = 100_000
STOP_WAIT = 0.5  # seconds a stop waits for the session's tasks to end


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
        self.meters = Meters(settings.stream, settings.default_meter)
        self.meter_filter = MeterFilter(FEATURE)
        self.gate: EntitlementSource | None = None  # what `_serves` asks (set by `run`)
        self.delivery = Delivery(
            settings, self.stream, self.group, self.raw, self.meters, self._serves
        )
        # one delivery per meter stream (the classic one's is `delivery`), each with its group
        self.deliveries: dict[str, Delivery] = {settings.stream: self.delivery}
        self.connected_once = False
        self.connected_at = 0.0  # time.monotonic() of the last accepted connection
        self.last_failure: str | None = None

    # --- the whole life of the bridge -------------------------------------------------------

    async def run(self) -> None:
        real = Entitlements(self.redis, self.settings) if self.entitlements is None else None
        topics = await self._start_up(real)
        works: dict[str, Work] = {
            "backlog and consumer housekeeping": lambda: watch_backlog(
                self.redis,
                lambda: list(self.deliveries),
                self.settings.mqtt_group,
                self.forget_gone_replicas,
            ),
            "meter directory": self._watch_directory,
        }
        entitlements = self.entitlements
        if real is not None:
            works["entitlements"] = real.run
            entitlements = real
        assert entitlements is not None
        self.gate = entitlements
        log.info(
            "MQTT bridge %s: readings from %s (group %s) to %s on %s",
            self.settings.mqtt_consumer,
            self.settings.stream,
            self.settings.mqtt_group,
            redact_url(self.settings.mqtt_url or ""),
            topics.data,
        )
        gated = entitlements
        works["delivery"] = lambda: while_granted(
            gated, FEATURE, self._connected_forever, report=report
        )
        await run_supervised(works)  # a Fatal error ends them all, and the service

    async def _start_up(self, entitlements: Entitlements | None) -> Topics:
        """The serial, the topics, the consumer group and the installed license (so the gate
        decides on it, not on none yet); waits out any Redis error (an outage, or an error reply
        such as NOPERM while an ACL is being set up), one line per attempt."""
        backoff = Backoff()
        while True:
            try:
                serial = await self.delivery.redis_call(
                    wait_for_serial, self.settings.serial, self.settings.license_dir, self.redis
                )
                await self.delivery.redis_call(self.group.ensure_group)
                if entitlements is not None:
                    await self.delivery.redis_call(entitlements.refresh)
                break
            except RedisError as error:  # a Fatal one is not: it ends the service
                raise_if_cancelling(error)
                delay = backoff.next_delay()
                log.warning(
                    "cannot start: Redis answered %s: %s; retrying in %.1f s",
                    type(error).__name__,
                    error,
                    delay,
                )
                await asyncio.sleep(delay)
        topics = Topics.from_settings(self.settings, serial)
        self.meters.start(serial, topics)
        # which meter is the default before anything is published: the classic stream's
        latest = await self.delivery.redis_call(self.stream.latest)
        if latest is not None:
            self.meters.note(latest[1], self.settings.stream)
        self.meters.set_directory(
            await self.delivery.redis_call(MeterDirectory(self.redis).records)
        )
        return topics

    # --- several meters ------------------------------------------------------------------------

    def _serves(self, state: MeterState, reading: Reading) -> bool:
        """Whether the license for MQTT serves this reading's meter (it may name meters)."""
        if self.gate is None:
            return True
        return self.meter_filter.serves(self.gate.decide(FEATURE), state.name, reading.meter_id)

    async def _watch_directory(self) -> None:
        """Keep `meters` current with the directory of meters (which is the default one)."""
        directory = MeterDirectory(self.redis)
        while True:
            try:
                self.meters.set_directory(await directory.records())
            except (*REDIS_DOWN, ResponseError) as error:
                raise_if_cancelling(error)
                log.debug("cannot read the meter directory: %s", error)
            await asyncio.sleep(REFRESH_S)

    def _delivery(self, key: str) -> Delivery:
        """The delivery of the meter stream `key` (made at its first use; it lasts)."""
        delivery = self.deliveries.get(key)
        if delivery is None:
            stream = ReadingStream(self.redis, key)
            group = GroupReader(stream, self.settings.mqtt_group, self.settings.mqtt_consumer)
            delivery = Delivery(self.settings, stream, group, None, self.meters, self._serves)
            self.deliveries[key] = delivery
        return delivery

    async def _deliver_every_stream(self, out: Confirmations) -> None:
        """Deliver every meter's stream on this connection (`each_meter_stream`: one consumer
        group reader per stream, meters that appear later included); returns or raises as soon
        as one delivery ends (the connection is lost), and stops the others."""
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def deliver(key: str) -> None:
            delivery = self._delivery(key)
            try:
                await delivery.redis_call(delivery.group.ensure_group)
                await delivery.deliver(out)
            except Exception as error:  # the session ends: its caller decides what follows
                if not ended.done():
                    ended.set_exception(error)
                return
            if not ended.done():
                ended.set_result(None)

        streams = asyncio.create_task(
            each_meter_stream(self.redis, self.settings.stream, deliver), name="meter streams"
        )
        try:
            await asyncio.wait({streams, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await stop(streams)
        if ended.done():
            ended.result()
        elif not streams.cancelled() and streams.exception() is not None:
            raise streams.exception()  # type: ignore[misc]
        else:
            ended.cancel()

    async def forget_gone_replicas(self, min_idle_ms: int = FORGET_IDLE_MS) -> list[str]:
        """Remove from the readings (and raw) consumer groups every other consumer that holds no
        pending entry and has not tried to read for `min_idle_ms`; the names removed."""
        groups: list[ConsumerGroup[Any]] = [self.group]
        if self.raw is not None:
            groups.append(self.raw.reader)
        return await forget_gone_replicas(groups, min_idle_ms)

    # --- connections -------------------------------------------------------------------------

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
                for delivery in list(self.deliveries.values()):
                    await delivery.ack_confirmed()
                if connected:
                    log.warning(
                        "lost the broker connection (%s); reconnecting, unconfirmed readings "
                        "stay pending and are published again%s",
                        error,
                        lost_hint(
                            error,
                            time.monotonic() - self.connected_at,
                            self.settings.mqtt_client_id or "",
                        ),
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
        self.connected_at = time.monotonic()
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
        return self.delivery.current_topics()

    # --- one connection ----------------------------------------------------------------------

    async def _session(self, client: aiomqtt.Client) -> None:
        topics = self._topics()
        await client.publish(topics.availability, ONLINE, qos=1, retain=True)
        self.meters.reset_announcements()
        status_topic = f"{self.settings.mqtt_discovery_prefix}/status"
        if self.settings.mqtt_discovery:
            await self._subscribe(client, status_topic)
        out = Confirmations(client, self.settings.mqtt_inflight)
        tasks = [
            asyncio.create_task(self._watch_messages(client, out, status_topic)),
            asyncio.create_task(self._deliver_every_stream(out)),
        ]
        if self.raw is not None:
            tasks.append(asyncio.create_task(self._forward_raw(client)))
        tasks.append(  # energy accounting's state, when the accounting service runs
            asyncio.create_task(
                publish_accounting(
                    client,
                    self.redis,
                    self.settings,
                    topics,
                    self.meters.serial,
                    device_node=lambda meter: self.meters._device(meter, None).node,
                )
            )
        )
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # stopping (signal or license gone): say so, cleanly
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
        for delivery in list(self.deliveries.values()):
            await delivery.ack_last()
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
                self.meters.reset_announcements()
                for state in list(self.meters.states.values()):
                    if state.last_reading is None:
                        continue
                    sent = self.delivery.announce(out, state, state.last_reading)
                    if sent:
                        task = asyncio.ensure_future(self.delivery.confirm(sent))
                        resend.add(task)
                        task.add_done_callback(resend.discard)

    async def _forward_raw(self, client: aiomqtt.Client) -> None:
        assert self.raw is not None
        qos = self.settings.mqtt_qos

        async def publish(topic: str, payload: bytes) -> None:
            await self.delivery.publish(client, topic, payload, qos, False, "raw")

        await self.raw.run(self.delivery.redis_call, publish)


def _is_failure(code: Any) -> bool:
    if isinstance(code, int):
        return code >= 0x80
    return bool(getattr(code, "is_failure", False))
