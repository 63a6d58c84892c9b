"""Builders for aggregates and a collector running in a thread, and the two databases, shared by the
centre tests."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from rsu.centre.collector import CentreCollector
from rsu.centre.store import AggregateStore
from rsu_contracts.config.model import MqttConfig
from rsu_contracts.messages import Aggregate, LaneAggregate, MovementCount, PhaseAggregate

T0 = 1_700_000_040.0  # a whole minute


def make_aggregate(
    unit_id: str,
    seq: int,
    interval_start_s: float | None = None,
    interval_s: float = 60.0,
    cars: int = 10,
) -> Aggregate:
    start_s = T0 + seq * interval_s if interval_start_s is None else interval_start_s
    return Aggregate(
        unit_id=unit_id,
        seq=seq,
        capture_time_s=start_s + interval_s,
        publish_time_s=start_s + interval_s + 0.1,
        interval_start_s=start_s,
        interval_s=interval_s,
        lanes=[
            LaneAggregate(
                lane_id="north_left",
                counts_by_class={"car": cars, "truck": 2, "scooter": 1},
                mean_speed_mps=9.5,
                speed_p85_mps=12.0,
                occupancy_ratio=0.25,
                mean_queue_m=14.0,
                max_queue_m=30.0,
                mean_queue_vehicles=2.0,
            ),
            LaneAggregate(
                lane_id="north_through_right",
                counts_by_class={"car": cars * 3, "bus": 1},
                occupancy_ratio=0.4,
                mean_queue_m=0.0,
                max_queue_m=0.0,
                mean_queue_vehicles=0.0,
            ),
        ],
        lines=[MovementCount(line_id="north_in", counts_by_class={"car": cars * 4, "pedestrian": 3})],
        phases=[PhaseAggregate(signal_group="2", green_time_s=25.0, green_starts=1, gap_outs=1, max_outs=0)],
        warnings_by_kind={"rear_end": 2},
    )


def unique_unit() -> str:
    return f"rsu-test-{uuid.uuid4().hex[:10]}"


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class Publisher:
    """A plain MQTT client acting as a unit (or a unit's local uplink stage)."""

    def __init__(self, host: str, port: int) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"test-pub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.connect(host, port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(5.0)
        assert info.is_published(), f"broker did not acknowledge {topic}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def running_collector(
    host: str,
    port: int,
    store: AggregateStore,
    topic_filter: str = "centre/+/aggregates",
    client_id: str | None = None,
) -> Iterator[CentreCollector]:
    collector = CentreCollector(
        MqttConfig(host=host, port=port, keepalive_s=5),
        store,
        topic_filter,
        client_id=client_id or f"test-centre-{uuid.uuid4().hex[:8]}",
        session_expiry_s=120,  # short: tests must not leave sessions behind on the shared broker
    )
    collector.start()
    stop = threading.Event()
    thread = threading.Thread(target=collector.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield collector
    finally:
        stop.set()
        thread.join(10.0)


# PostgreSQL for the store tests: RSU_TEST_POSTGRES_URL, else the server scripts/setup.sh starts.
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_url() -> str:
    return os.environ.get("RSU_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL URL, checked once. Without a server: a skip on a workstation, a failure in CI."""
    url = postgres_url()
    try:
        with psycopg.connect(url, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = f"PostgreSQL not reachable at {url} ({exc}); run scripts/setup.sh or set RSU_TEST_POSTGRES_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return url


def with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-c search_path={schema}')}"


@contextmanager
def fresh_postgres_schema(url: str) -> Iterator[str]:
    """A URL whose connections see only a new, empty schema; the schema is dropped afterwards."""
    schema = f"rsu_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(url, schema)
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@dataclass(frozen=True)
class Database:
    """One test's empty database: target for AggregateStore, and a separate connection's SQL."""

    backend: str  # "sqlite" or "postgresql"
    target: str

    def engineer(self, sql: str) -> list[tuple[Any, ...]]:
        """Run sql on a new connection of the database's own driver, as an engineer's tool would."""
        if self.backend == "sqlite":
            with sqlite3.connect(self.target) as connection:
                return list(connection.execute(sql).fetchall())
        with psycopg.connect(self.target) as connection:
            return [tuple(row) for row in connection.execute(sql).fetchall()]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        yield Database("sqlite", str(tmp_path / "centre.sqlite"))
        return
    server = request.getfixturevalue("postgres_server")
    with fresh_postgres_schema(server) as url:
        yield Database("postgresql", url)
