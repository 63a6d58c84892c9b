"""The collector against the real Mosquitto: stores each interval once, survives bad payloads,
and picks up what was queued for it while it was down."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from rsu.centre.collector import CentreCollector
from rsu.centre.store import AggregateStore
from rsu_contracts.config.model import MqttConfig
from rsu_contracts.messages import DetectorStates
from tests.centre.conftest import Database, Publisher, make_aggregate, running_collector, unique_unit, wait_until

pytestmark = pytest.mark.services


def test_aggregates_from_the_broker_are_stored_once_each(mqtt_broker: tuple[str, int], database: Database) -> None:
    host, port = mqtt_broker
    unit = unique_unit()
    topic = f"centre/{unit}/aggregates"
    publisher = Publisher(host, port)
    with AggregateStore(database.target) as store, running_collector(host, port, store) as collector:
        try:
            for seq in range(3):
                publisher.send(topic, make_aggregate(unit, seq).to_json())
            # At-least-once upstream: the unit resends seq 1 after a lost PUBACK.
            publisher.send(topic, make_aggregate(unit, 1).to_json())
            assert wait_until(lambda: collector.stored == 3 and collector.duplicates == 1, 5.0), collector.stats()
        finally:
            publisher.close()
        assert [row.seq for row in store.intervals(unit)] == [0, 1, 2]
        assert all(row.received_time_s <= row.stored_time_s for row in store.intervals(unit))
        assert collector.stats().invalid == 0


def test_bad_payloads_are_counted_and_skipped_without_stopping_the_collector(
    mqtt_broker: tuple[str, int], database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = mqtt_broker
    unit = unique_unit()
    topic = f"centre/{unit}/aggregates"
    wrong_schema = DetectorStates.model_json_schema()  # any JSON that is not an aggregate
    extra_field = json.loads(make_aggregate(unit, 1).to_json())
    extra_field["vehicle_positions"] = [[1.0, 2.0]]  # privacy: extra fields are forbidden
    lane_twice = make_aggregate(unit, 2)
    lane_twice = lane_twice.model_copy(update={"lanes": [lane_twice.lanes[0], lane_twice.lanes[0]]})
    bad_payloads = [
        b"\xff\xfe not json",
        json.dumps(wrong_schema).encode(),
        json.dumps(extra_field).encode(),
        make_aggregate("someone-else", 2).to_json(),  # unit id does not match the topic
        lane_twice.to_json(),  # decodes, but the store refuses two rows for one lane
    ]
    publisher = Publisher(host, port)
    with AggregateStore(database.target) as store, running_collector(host, port, store) as collector:
        try:
            publisher.send(topic, make_aggregate(unit, 0).to_json())
            for payload in bad_payloads:
                publisher.send(topic, payload)
            publisher.send(topic, make_aggregate(unit, 3).to_json())
            assert wait_until(lambda: collector.stored == 2 and collector.invalid == 5, 5.0), collector.stats()
        finally:
            publisher.close()
        assert [row.seq for row in store.intervals(unit)] == [0, 3]
        assert store.units() == [unit]
    reasons = " ".join(record.getMessage() for record in caplog.records if "invalid aggregate" in record.getMessage())
    assert "vehicle_positions" in reasons and "does not match the topic" in reasons
    assert "seq 2 cannot be stored" in reasons


def test_aggregates_sent_while_the_collector_is_down_arrive_when_it_returns(
    mqtt_broker: tuple[str, int], tmp_path: Path
) -> None:
    host, port = mqtt_broker
    unit = unique_unit()
    topic = f"centre/{unit}/aggregates"
    client_id = f"test-centre-{uuid.uuid4().hex[:8]}"  # the same id names the same broker session
    publisher = Publisher(host, port)
    try:
        with AggregateStore(tmp_path / "centre.sqlite") as store:
            with running_collector(host, port, store, client_id=client_id) as collector:
                publisher.send(topic, make_aggregate(unit, 0).to_json())
                assert wait_until(lambda: collector.stored == 1, 5.0)
            # Collector down: the broker queues for its persistent session.
            for seq in (1, 2, 3):
                publisher.send(topic, make_aggregate(unit, seq).to_json())
            with running_collector(host, port, store, client_id=client_id) as collector:
                assert wait_until(lambda: collector.stored == 3, 5.0), collector.stats()
            assert [row.seq for row in store.intervals(unit)] == [0, 1, 2, 3]
            assert store.gaps(unit) == []
    finally:
        publisher.close()


def test_a_message_received_but_not_yet_stored_is_delivered_again_after_a_crash(
    mqtt_broker: tuple[str, int], tmp_path: Path
) -> None:
    host, port = mqtt_broker
    unit = unique_unit()
    topic = f"centre/{unit}/aggregates"
    client_id = f"test-centre-{uuid.uuid4().hex[:8]}"
    publisher = Publisher(host, port)
    try:
        with AggregateStore(tmp_path / "centre.sqlite") as store:
            # Connected and receiving, but "crashes" before its write loop stores anything.
            doomed = CentreCollector(MqttConfig(host=host, port=port), store, client_id=client_id, session_expiry_s=120)
            doomed.start()
            publisher.send(topic, make_aggregate(unit, 0).to_json())
            assert wait_until(lambda: doomed.received == 1, 5.0)
            doomed.close()
            assert store.intervals(unit) == []

            with running_collector(host, port, store, client_id=client_id) as collector:
                assert wait_until(lambda: collector.stored == 1, 5.0), collector.stats()
            assert [row.seq for row in store.intervals(unit)] == [0]
    finally:
        publisher.close()
