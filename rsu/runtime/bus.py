"""The MQTT edge: one small wrapper around paho-mqtt 2.x (MQTT v5).

Stages never touch paho directly. Incoming messages land in a bounded queue that the stage's own
loop drains, so a slow stage drops its oldest input instead of blocking the network thread.
paho reconnects by itself with backoff; subscriptions are renewed on every (re)connect.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from rsu.config.model import MqttConfig
from rsu.topics import Route

log = logging.getLogger(__name__)


class BrokerUnavailable(ConnectionError):
    """The MQTT broker could not be reached; the message names host and port."""


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    received_monotonic_s: float
    # MQTT v5 user properties (e.g. the unit's signature), in order.
    user_properties: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class LastWill:
    topic: str
    payload: bytes
    retain: bool = True
    qos: int = 1


class MqttBus:
    def __init__(
        self,
        config: MqttConfig,
        client_id: str,
        last_will: LastWill | None = None,
        inbox_size: int = 10_000,
    ) -> None:
        self.config = config
        self.client_id = client_id
        self.inbox: queue.Queue[Received] = queue.Queue(maxsize=inbox_size)
        self.dropped_inbound = 0
        self.published = Counter[str]()
        self._subscriptions: dict[str, int] = {}
        self._connected = threading.Event()
        self._lock = threading.Lock()
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        if config.username:
            client.username_pw_set(config.username, config.password)
        if config.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        if last_will is not None:
            client.will_set(last_will.topic, last_will.payload, qos=last_will.qos, retain=last_will.retain)
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        # Keep publishing (QoS 0) while a reconnect is under way instead of raising.
        client.max_queued_messages_set(10_000)
        self._client = client

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def connect(self, timeout_s: float = 5.0) -> None:
        """Connect and start the network thread; raise BrokerUnavailable if not connected in time."""
        try:
            self._client.connect(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        except OSError as exc:
            raise BrokerUnavailable(
                f"MQTT broker at {self.address} is unreachable ({exc.strerror or exc}); "
                "is Mosquitto running? (scripts/setup.sh starts it)"
            ) from None
        self._disable_nagle()
        self._client.loop_start()
        if not self._connected.wait(timeout_s):
            self._client.loop_stop()
            raise BrokerUnavailable(f"MQTT broker at {self.address} did not accept the connection in {timeout_s} s")

    def connect_in_background(self) -> None:
        """Start the network thread and return at once; it keeps trying (1-5 s apart) until the broker
        answers, and reconnects after every loss. For links that may be down when a stage starts."""
        self._client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self._client.loop_start()

    def _disable_nagle(self) -> None:
        # Small messages in request-response chains otherwise wait ~40 ms for delayed ACKs.
        sock = self._client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def subscribe(self, topic: str, qos: int = 0) -> None:
        with self._lock:
            self._subscriptions[topic] = qos
        if self.connected:
            self._client.subscribe(topic, qos)

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        user_properties: list[tuple[str, str]] | None = None,
    ) -> mqtt.MQTTMessageInfo:
        properties = None
        if user_properties:
            properties = Properties(PacketTypes.PUBLISH)
            properties.UserProperty = user_properties
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
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

    def publish_to(
        self, route: Route, payload: bytes, user_properties: list[tuple[str, str]] | None = None
    ) -> mqtt.MQTTMessageInfo:
        """Publish on a registered topic (rsu.topics) with the registry's QoS and retain flag."""
        return self.publish(route.topic, payload, qos=route.qos, retain=route.retain, user_properties=user_properties)

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

    # paho callbacks (network thread)
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("%s: broker %s refused the connection: %s", self.client_id, self.address, reason_code)
            return
        self._disable_nagle()  # a reconnect opens a new socket
        with self._lock:
            subscriptions = list(self._subscriptions.items())
        for topic, qos in subscriptions:
            client.subscribe(topic, qos)
        self._connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()
        if reason_code.is_failure:
            log.warning("%s: lost broker %s (%s); reconnecting", self.client_id, self.address, reason_code)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        user_properties = tuple(getattr(message.properties, "UserProperty", None) or ())
        item = Received(message.topic, bytes(message.payload), time.monotonic(), user_properties)
        try:
            self.inbox.put_nowait(item)
        except queue.Full:
            # Newest data matters most at the edge: drop the oldest, count it.
            with contextlib.suppress(queue.Empty):
                self.inbox.get_nowait()
            self.dropped_inbound += 1
            self.inbox.put_nowait(item)
