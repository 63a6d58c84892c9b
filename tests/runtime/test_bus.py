"""The MQTT edge against the real Mosquitto: delivery, last will, and clear errors."""

from __future__ import annotations

import time
import uuid

import pytest

from rsu.runtime.bus import BrokerUnavailable, LastWill, MqttBus
from rsu.runtime.preflight import RedisUnavailable, check_broker, check_redis
from rsu_contracts.config.model import MqttConfig

pytestmark = pytest.mark.services


def _wait_for(bus: MqttBus, timeout_s: float = 3.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        item = bus.get(timeout_s=0.1)
        if item is not None:
            return item
    return None


def test_a_published_message_reaches_a_subscriber(mqtt_broker: tuple[str, int]) -> None:
    host, port = mqtt_broker
    topic = f"rsu-test/{uuid.uuid4().hex}/hello"
    subscriber = MqttBus(MqttConfig(host=host, port=port), f"sub-{uuid.uuid4().hex[:8]}")
    subscriber.subscribe(topic, qos=1)
    subscriber.connect()
    publisher = MqttBus(MqttConfig(host=host, port=port), f"pub-{uuid.uuid4().hex[:8]}")
    publisher.connect()
    try:
        time.sleep(0.2)
        publisher.publish(topic, b"payload", qos=1).wait_for_publish(2)
        item = _wait_for(subscriber)
        assert item is not None and item.payload == b"payload" and item.topic == topic
    finally:
        publisher.close()
        subscriber.close()


def test_the_last_will_says_offline_when_a_unit_vanishes(mqtt_broker: tuple[str, int]) -> None:
    host, port = mqtt_broker
    topic = f"rsu-test/{uuid.uuid4().hex}/status"
    config = MqttConfig(host=host, port=port, keepalive_s=2)
    unit = MqttBus(config, f"unit-{uuid.uuid4().hex[:8]}", last_will=LastWill(topic, b"offline"))
    unit.connect()
    unit.publish(topic, b"online", qos=1, retain=True).wait_for_publish(2)
    watcher = MqttBus(config, f"watch-{uuid.uuid4().hex[:8]}")
    watcher.subscribe(topic, qos=1)
    watcher.connect()
    try:
        first = _wait_for(watcher)
        assert first is not None and first.payload == b"online"
        # Vanish without a clean DISCONNECT, as a crashed process or a cut cable would.
        unit._client.loop_stop()
        unit._client.socket().close()  # type: ignore[union-attr]
        will = _wait_for(watcher, timeout_s=6.0)
        assert will is not None and will.payload == b"offline"
    finally:
        watcher.publish(topic, b"", retain=True)
        watcher.close()


def test_an_unreachable_broker_is_named_in_the_error() -> None:
    with pytest.raises(BrokerUnavailable, match=r"127\.0\.0\.1:1 is unreachable"):
        check_broker(MqttConfig(host="127.0.0.1", port=1))


def test_an_unreachable_redis_is_named_in_the_error() -> None:
    with pytest.raises(RedisUnavailable, match=r"Redis at redis://127\.0\.0\.1:1/0 is unreachable"):
        check_redis("redis://127.0.0.1:1/0")


def test_the_real_redis_answers(redis_url: str) -> None:
    check_redis(redis_url)
