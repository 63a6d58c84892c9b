"""Builders for aggregates and a collector running in a thread, shared by the centre tests."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import paho.mqtt.client as mqtt
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
