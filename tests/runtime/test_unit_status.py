"""The unit's retained status through a real Mosquitto: "online" again after every reconnect (a
broker restart, a client-id takeover), and the "offline" will only when the unit is really gone.

Each test starts its own throwaway broker on a free port; the shared one is never restarted.
"""

from __future__ import annotations

import logging
import queue
import time
import uuid
from collections.abc import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from rsu.runtime.bus import LastWill, MqttBus
from rsu.runtime.mqtt import Inbound, MqttClient
from rsu.unit import supervisor_bus
from rsu_contracts.config import SiteConfig
from rsu_contracts.config.model import MqttConfig
from rsu_contracts.topics import Topics
from rsu_tools.testing.mosquitto import EphemeralMosquitto

pytestmark = pytest.mark.services


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class StatusWatcher:
    """Subscribes to one status topic and records every payload, retained or live, in order."""

    def __init__(self, broker: EphemeralMosquitto, topic: str) -> None:
        self.payloads: queue.Queue[bytes] = queue.Queue()
        self.seen: list[bytes] = []
        self._client = MqttClient(
            MqttConfig(host=broker.host, port=broker.port), f"watch-{uuid.uuid4().hex[:8]}", self._record
        )
        self._client.subscribe(topic, qos=1)

    def _record(self, message: Inbound) -> None:
        self.payloads.put(message.payload)

    def start(self) -> StatusWatcher:
        self._client.connect_in_background()
        return self

    def collect(self) -> list[bytes]:
        while True:
            try:
                self.seen.append(self.payloads.get_nowait())
            except queue.Empty:
                return self.seen

    def latest(self) -> bytes | None:
        seen = self.collect()
        return seen[-1] if seen else None

    def close(self) -> None:
        self._client.close()


def retained_status(broker: EphemeralMosquitto, topic: str, timeout_s: float = 3.0) -> bytes | None:
    """What a client subscribing now gets as the retained status (None: nothing retained)."""
    watcher = StatusWatcher(broker, topic).start()
    try:
        wait_until(lambda: bool(watcher.collect()), timeout_s)
        return watcher.latest()
    finally:
        watcher.close()


def site_on(broker: EphemeralMosquitto, sample_site: SiteConfig) -> SiteConfig:
    mqtt_config = sample_site.mqtt.model_copy(update={"host": broker.host, "port": broker.port})
    return sample_site.model_copy(update={"unit_id": f"rsu-test-{uuid.uuid4().hex[:8]}", "mqtt": mqtt_config})


@pytest.fixture
def broker() -> Iterator[EphemeralMosquitto]:
    # Persistence on: the retained status (or a will) survives the restart, as on a real unit.
    with EphemeralMosquitto(persistence=True, name="unit-status") as server:
        yield server


@pytest.mark.parametrize("persistence", [True, False])
def test_status_is_online_again_after_a_broker_restart(sample_site: SiteConfig, persistence: bool) -> None:
    with EphemeralMosquitto(persistence=persistence, name="unit-status-restart") as broker:
        site = site_on(broker, sample_site)
        topic = Topics.for_site(site).status
        bus = supervisor_bus(site, Topics.for_site(site))
        bus.connect()
        try:
            assert wait_until(lambda: retained_status(broker, topic, 0.5) == b"online", 3.0)
            # Left retained by whatever happened while the unit was cut off (its will, an intruder):
            # with persistence it survives the restart, without it the broker forgets everything.
            left_behind = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            left_behind.connect(broker.host, broker.port)
            left_behind.loop_start()
            left_behind.publish(topic, b"offline", qos=1, retain=True).wait_for_publish(2.0)
            left_behind.disconnect()
            left_behind.loop_stop()

            broker.restart()

            assert wait_until(lambda: bus.ready, 10.0), "the supervisor did not reconnect"
            assert wait_until(lambda: retained_status(broker, topic, 0.5) == b"online", 5.0), (
                f"status after the restart: {retained_status(broker, topic)!r}"
            )
        finally:
            bus.close()


def test_status_returns_to_online_after_a_client_id_takeover(
    broker: EphemeralMosquitto, sample_site: SiteConfig, caplog: pytest.LogCaptureFixture
) -> None:
    site = site_on(broker, sample_site)
    topic = Topics.for_site(site).status
    bus = supervisor_bus(site, Topics.for_site(site))
    bus.connect()
    watcher = StatusWatcher(broker, topic).start()
    caplog.set_level(logging.WARNING, logger="rsu.runtime.mqtt")
    # The intruder is driven by hand (no network thread), so it does not reconnect when the unit
    # takes its client id back: one takeover, as a vehicle connecting under the unit's id does.
    intruder = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=bus.client_id, protocol=mqtt.MQTTv5
    )
    try:
        assert wait_until(lambda: watcher.latest() == b"online", 3.0)
        intruder.connect(broker.host, broker.port)
        intruder.publish(topic, b"offline", qos=1, retain=True)
        for _ in range(20):
            intruder.loop(timeout=0.05)
        assert wait_until(lambda: bus.takeovers >= 1, 5.0), "the unit's client was not kicked"
        assert any("was probably taken over" in record.getMessage() for record in caplog.records)

        assert wait_until(lambda: bus.ready, 10.0), "the unit did not reconnect after the takeover"
        assert wait_until(lambda: watcher.latest() == b"online", 5.0), f"status seen: {watcher.collect()}"
        assert retained_status(broker, topic) == b"online"
    finally:
        intruder.disconnect()
        watcher.close()
        bus.close()


def test_a_takeover_the_unit_survives_does_not_publish_its_will(
    broker: EphemeralMosquitto, sample_site: SiteConfig
) -> None:
    """The will is delayed (rsu.unit.STATUS_WILL_DELAY_S) beyond the reconnect: vehicles never see "offline"."""
    site = site_on(broker, sample_site)
    topic = Topics.for_site(site).status
    bus = supervisor_bus(site, Topics.for_site(site))
    bus.connect()
    watcher = StatusWatcher(broker, topic).start()
    intruder = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=bus.client_id, protocol=mqtt.MQTTv5
    )
    try:
        assert wait_until(lambda: watcher.latest() == b"online", 3.0)
        intruder.connect(broker.host, broker.port)
        for _ in range(10):
            intruder.loop(timeout=0.05)
        assert wait_until(lambda: bus.takeovers >= 1, 5.0)
        assert wait_until(lambda: bus.ready, 10.0)
        time.sleep(1.0)  # anything the broker sends on the unit's behalf has arrived by now
        assert b"offline" not in watcher.collect(), watcher.collect()
        assert watcher.latest() == b"online"
    finally:
        intruder.disconnect()
        watcher.close()
        bus.close()


def test_a_delayed_will_still_fires_when_the_client_is_really_gone(broker: EphemeralMosquitto) -> None:
    topic = f"rsu-test/{uuid.uuid4().hex}/status"
    config = MqttConfig(host=broker.host, port=broker.port, keepalive_s=2)
    unit = MqttBus(config, f"unit-{uuid.uuid4().hex[:8]}", last_will=LastWill(topic, b"offline", delay_s=1))
    unit.connect()
    unit.publish(topic, b"online", qos=1, retain=True).wait_for_publish(2)
    watcher = StatusWatcher(broker, topic).start()
    try:
        assert wait_until(lambda: watcher.latest() == b"online", 3.0)
        # Vanish without a clean DISCONNECT, as a crashed process or a cut cable would.
        unit._client.loop_stop()
        unit._client.socket().close()  # type: ignore[union-attr]
        assert wait_until(lambda: watcher.latest() == b"offline", 8.0), watcher.collect()
        assert retained_status(broker, topic) == b"offline"
    finally:
        watcher.close()


def test_a_broker_that_says_session_taken_over_gets_the_takeover_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Brokers that follow MQTT v5 to the letter send DISCONNECT 0x8E to the client that was taken
    over (Mosquitto 2.0 just closes the socket, which the broker tests above cover)."""
    client = MqttClient(MqttConfig(host="127.0.0.1", port=1), "rsu-test-supervisor", lambda message: None)
    caplog.set_level(logging.WARNING, logger="rsu.runtime.mqtt")
    taken_over = ReasonCode(PacketTypes.DISCONNECT, identifier=0x8E)
    client._on_disconnect(client._client, None, mqtt.DisconnectFlags(True), taken_over, None)
    assert client.takeovers == 1
    messages = [record.getMessage() for record in caplog.records]
    assert any("client id 'rsu-test-supervisor' was taken over" in message for message in messages), messages
