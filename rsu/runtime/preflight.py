"""Checks run before the unit starts, each failing with a message that says what to fix."""

from __future__ import annotations

import redis

from rsu.runtime.bus import BrokerUnavailable, MqttBus
from rsu_contracts.config.model import MqttConfig


class RedisUnavailable(ConnectionError):
    """Redis could not be reached; the message names the URL."""


def check_broker(config: MqttConfig, client_id: str = "rsu-preflight") -> None:
    bus = MqttBus(config, client_id)
    try:
        bus.connect(timeout_s=3.0)
    except BrokerUnavailable:
        raise
    finally:
        bus.close()


def check_redis(url: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise RedisUnavailable(
            f"Redis at {url} is unreachable ({exc}); is redis-server running? (scripts/setup.sh starts it)"
        ) from None
    finally:
        client.close()


def redis_is_up(url: str) -> bool:
    try:
        check_redis(url)
    except RedisUnavailable:
        return False
    return True
