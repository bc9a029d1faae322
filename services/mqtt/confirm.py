"""Many publishes in flight at once, each with a future the broker's confirmation completes.

Consumes a connected `aiomqtt.Client`; produces `Confirmations.publish(topic, payload, qos,
retain)`: the message goes to the client's paho client at once, and the returned future
completes when paho reports it published: PUBACK for QoS 1, PUBCOMP for QoS 2, written to the
socket for QoS 0 (None when that already happened). aiomqtt's own `publish` does the same one
message at a time with a task, a `wait_for` and a scan of its pending calls per message, which
cost the bridge more CPU than paho itself; the caller here waits for a whole batch under one
timeout instead.

The in-flight window (HANPORT_MQTT_INFLIGHT) is kept here, not by paho: paho's own window walks
every message it holds on each PUBACK (`_update_inflight`), which cost the bridge about 6 % of
its CPU with 100 to 1,000 messages in flight. The client is made with paho's window off
(`connection.make_client`), and the caller awaits `until_room()` before publishing more.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt


class Confirmations:
    """The futures of one connection's unconfirmed messages, by paho message id, oldest first."""

    def __init__(self, client: aiomqtt.Client, window: int) -> None:
        self.paho: mqtt.Client = client._client  # aiomqtt has no public way to publish in bulk
        self.loop = asyncio.get_running_loop()
        self.window = window
        self.waiting: dict[int, asyncio.Future[None]] = {}
        self.room = asyncio.Event()  # set whenever fewer than `window` are waiting
        self.room.set()
        self.aiomqtt_on_publish = self.paho.on_publish  # aiomqtt's own publish() still works
        self.paho.on_publish = self._on_publish

    def publish(
        self, topic: str, payload: bytes, qos: int, retain: bool
    ) -> asyncio.Future[None] | None:
        """Hand the message to paho; its confirmation (None: already confirmed). Raises
        `aiomqtt.MqttCodeError` when paho refuses it (not connected)."""
        info = self.paho.publish(topic, payload, qos, retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        if info.is_published():  # QoS 0, written already
            return None
        future: asyncio.Future[None] = self.loop.create_future()
        self.waiting[info.mid] = future
        return future

    def full(self) -> bool:
        return len(self.waiting) >= self.window

    async def until_room(self) -> None:
        """Wait until fewer than `window` messages await confirmation (the caller bounds the
        wait: a connection that confirms nothing never makes room)."""
        while self.full():
            self.room.clear()
            await self.room.wait()

    def cancel(self) -> None:
        """The connection is gone: no confirmation will come for what is still waiting."""
        for future in self.waiting.values():
            future.cancel()
        self.waiting.clear()
        self.room.set()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, *args: Any) -> None:
        future = self.waiting.pop(mid, None)
        if future is None:
            if self.aiomqtt_on_publish is not None:
                self.aiomqtt_on_publish(client, userdata, mid, *args)
        else:
            if not future.done():
                future.set_result(None)
            if len(self.waiting) < self.window:
                self.room.set()
