"""Each fault test gets its own throwaway local broker, centre broker and Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rsu_tools.testing.mosquitto import EphemeralMosquitto
from rsu_tools.testing.redis_server import EphemeralRedis


@pytest.fixture
def local_broker() -> Iterator[EphemeralMosquitto]:
    """The unit's own broker (stages, vehicles, operator)."""
    with EphemeralMosquitto(name="local", max_queued_messages=10_000) as broker:
        yield broker


@pytest.fixture
def centre_broker() -> Iterator[EphemeralMosquitto]:
    """The traffic centre's broker. Persistence on, as a centre needs it: the collector's session
    (its subscription and the messages queued for it) must survive a restart of the broker."""
    with EphemeralMosquitto(name="centre", persistence=True, max_queued_messages=10_000) as broker:
        yield broker


@pytest.fixture
def unit_redis() -> Iterator[EphemeralRedis]:
    """The unit's Redis, with AOF persistence as deployed."""
    with EphemeralRedis(name="unit-redis") as server:
        yield server
