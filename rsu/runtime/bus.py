"""The MQTT edge: the unit's stages talk to its broker through an MqttBus (rsu.runtime.mqtt).

Stages never touch paho directly. Incoming messages land in a bounded queue that the stage's own
loop drains, so a slow stage drops its oldest input instead of blocking the network thread.
The client reconnects by itself with backoff; subscriptions are renewed on every (re)connect.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections import Counter
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from rsu.runtime.mqtt import BirthMessage, BrokerUnavailable, Inbound, LastWill, MqttClient
from rsu_contracts.config.model import MqttConfig
from rsu_contracts.topics import Route

__all__ = ["BirthMessage", "BrokerUnavailable", "LastWill", "MqttBus", "Received"]


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    received_monotonic_s: float
    # MQTT v5 user properties (e.g. the unit's signature), in order.
    user_properties: tuple[tuple[str, str], ...] = ()


class MqttBus(MqttClient):
    """An MqttClient with a bounded inbox and per-topic publish counts, for the unit's stages."""

    def __init__(
        self,
        config: MqttConfig,
        client_id: str,
        last_will: LastWill | None = None,
        inbox_size: int = 10_000,
        birth: BirthMessage | None = None,
        refusal_expected: bool = False,
    ) -> None:
        self.inbox: queue.Queue[Received] = queue.Queue(maxsize=inbox_size)
        self.dropped_inbound = 0
        self.published = Counter[str]()
        super().__init__(
            config,
            client_id,
            self._enqueue,
            last_will=last_will,
            birth=birth,
            # Keep publishing (QoS 0) while a reconnect is under way instead of raising.
            max_queued_messages=10_000,
            tcp_nodelay=True,
            unreachable_hint="is Mosquitto running? (scripts/setup.sh starts it)",
            refusal_expected=refusal_expected,
        )

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        user_properties: list[tuple[str, str]] | None = None,
    ) -> mqtt.MQTTMessageInfo:
        info = super().publish(topic, payload, qos=qos, retain=retain, user_properties=user_properties)
        self.published[topic] += 1
        return info

    def publish_and_wait(
        self, topic: str, payload: bytes, timeout_s: float, qos: int = 0, retain: bool = False
    ) -> bool:
        """Publish and wait (at most timeout_s) until the network thread has written it: a caller at
        raised priority keeps it until its message is out, instead of the network thread waiting for
        the GIL behind whatever normal-priority work comes next (priority inversion)."""
        info = self.publish(topic, payload, qos=qos, retain=retain)
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError):
            return False  # not connected or queue full: paho sends it when it can
        return info.is_published()

    def publish_to_and_wait(self, route: Route, payload: bytes, timeout_s: float) -> bool:
        """publish_and_wait on a registered topic, with the registry's QoS and retain flag."""
        return self.publish_and_wait(route.topic, payload, timeout_s, qos=route.qos, retain=route.retain)

    def get(self, timeout_s: float | None = None) -> Received | None:
        try:
            return self.inbox.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def drain(self) -> list[Received]:
        items: list[Received] = []
        while True:
            try:
                items.append(self.inbox.get_nowait())
            except queue.Empty:
                return items

    def _enqueue(self, message: Inbound) -> None:
        # Network thread.
        item = Received(message.topic, message.payload, time.monotonic(), message.user_properties)
        try:
            self.inbox.put_nowait(item)
        except queue.Full:
            # Newest data matters most at the edge: drop the oldest, count it.
            with contextlib.suppress(queue.Empty):
                self.inbox.get_nowait()
            self.dropped_inbound += 1
            self.inbox.put_nowait(item)
