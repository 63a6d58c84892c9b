"""The whole unit, end to end, through the real Mosquitto and Redis on the simulated junction.

Independent subscribers listen like a connected vehicle (SPaT, warnings) and like the traffic
centre (aggregates); every payload must parse against its schema, and nothing that goes upstream
may hold a track id, a position or an image.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from rsu.demo import DemoSummary, run_demo
from rsu.samples import SAMPLE_SITE
from rsu_contracts.messages import Aggregate, CollisionWarning, Spat, decode
from rsu_contracts.topics import Topics

pytestmark = [pytest.mark.services, pytest.mark.sumo, pytest.mark.slow]

SIMULATED_S = 240.0
FORBIDDEN_UPSTREAM_KEYS = {"track_id", "x_m", "y_m", "objects", "participants", "image", "plate", "latitude_deg"}


class Listener:
    """A plain paho subscriber, independent of the unit's own code."""

    def __init__(self, host: str, port: int, topics: list[str]) -> None:
        self.payloads: dict[str, list[bytes]] = {}
        self._lock = threading.Lock()
        self._client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        for topic in topics:
            self._client.subscribe(topic, qos=1)
        self._client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.payloads.setdefault(message.topic, []).append(bytes(message.payload))

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory, mqtt_broker: tuple[str, int]
) -> tuple[DemoSummary, Listener, Topics]:
    site_dir = tmp_path_factory.mktemp("site")
    raw = yaml.safe_load(SAMPLE_SITE.read_text())
    raw["unit_id"] = f"rsu-e2e-{uuid.uuid4().hex[:8]}"  # isolates this run's topics and outbox
    raw["web"] = {"port": free_port()}
    raw["simulation"]["network"] = str(SAMPLE_SITE.parent / raw["simulation"]["network"])
    raw["simulation"]["routes"] = str(SAMPLE_SITE.parent / raw["simulation"]["routes"])
    site_path = site_dir / "site.yaml"
    site_path.write_text(yaml.safe_dump(raw))
    topics = Topics(raw["unit_id"])
    host, port = mqtt_broker
    # One subscription per topic tree: overlapping filters would deliver every message twice.
    vehicle_and_centre = Listener(host, port, [f"{topics.base}/#", topics.aggregates])
    try:
        summary = run_demo(site_path, duration_s=SIMULATED_S, progress=None, wall_timeout_s=600)
    finally:
        vehicle_and_centre.close()
    return summary, vehicle_and_centre, topics


def test_the_demo_completes_and_every_interval_reaches_the_centre(
    demo_run: tuple[DemoSummary, Listener, Topics],
) -> None:
    summary, _, _ = demo_run
    assert summary.aggregates_expected == int(SIMULATED_S // 60)
    assert summary.aggregates_delivered == summary.aggregates_expected
    assert summary.vehicles_served > 50
    assert summary.mean_delay_s is not None and 0 < summary.mean_delay_s < 120
    assert summary.invalid_messages == []
    assert sum(summary.stage_restarts.values()) == 0


def test_spat_arrives_at_ten_hertz_and_parses(demo_run: tuple[DemoSummary, Listener, Topics]) -> None:
    _, listener, topics = demo_run
    spats = [decode(Spat, p) for p in listener.payloads.get(topics.spat, [])]
    assert len(spats) >= 0.9 * SIMULATED_S * 10
    span_s = spats[-1].capture_time_s - spats[0].capture_time_s
    assert len(spats) / span_s == pytest.approx(10, rel=0.1)
    assert [s.seq for s in spats] == sorted(s.seq for s in spats)
    for spat in spats[::50]:
        for movement in spat.movements:
            assert movement.min_end_time_s <= movement.likely_time_s <= movement.max_end_time_s


def test_collision_warnings_reach_the_vehicle_side(demo_run: tuple[DemoSummary, Listener, Topics]) -> None:
    _, listener, topics = demo_run
    warnings = [decode(CollisionWarning, p) for p in listener.payloads.get(topics.warnings, [])]
    assert warnings, "no collision warning in the run (the demand has red-light runners and jaywalkers)"
    assert all(w.participants for w in warnings)


def test_nothing_per_vehicle_goes_upstream(demo_run: tuple[DemoSummary, Listener, Topics]) -> None:
    _, listener, topics = demo_run
    upstream = listener.payloads.get(topics.aggregates, [])
    assert upstream
    for payload in upstream:
        decode(Aggregate, payload)
        assert not _keys(json.loads(payload)) & FORBIDDEN_UPSTREAM_KEYS
        assert len(payload) < 20_000, "an aggregate should be small"


def test_every_json_payload_of_the_run_validates_against_its_published_schema(
    demo_run: tuple[DemoSummary, Listener, Topics],
) -> None:
    # An independent validator (jsonschema) and the files in docs/schemas: what a subscriber in
    # another language would use, not the unit's own pydantic models.
    from jsonschema import Draft202012Validator

    from rsu.runtime.preflight import PROBE_SUBTOPIC_PREFIX
    from rsu_contracts.messages.schemas import schema_file_name
    from v2x.wire import JSON_SCHEMAS

    folder = Path(__file__).resolve().parents[2] / "docs" / "schemas"
    validators = {
        name: Draft202012Validator(json.loads((folder / schema_file_name(message_type)).read_text()))
        for name, message_type in JSON_SCHEMAS.items()
    }
    _, listener, topics = demo_run
    validated: dict[str, int] = {}
    for topic, payloads in listener.payloads.items():
        for payload in payloads:
            if topic == topics.status:
                assert payload in (b"online", b"offline")
                continue
            if topic.startswith(f"{topics.signal_state}/{PROBE_SUBTOPIC_PREFIX}"):
                continue  # the preflight's anonymous write probe: the tests allow an open bus
            document = json.loads(payload)
            errors = [e.message for e in validators[document["schema_name"]].iter_errors(document)]
            assert errors == [], f"{topic}: {errors[:3]}"
            validated[document["schema_name"]] = validated.get(document["schema_name"], 0) + 1
    assert {"rsu.v2x.spat", "rsu.v2x.warning", "rsu.v2x.map", "rsu.v2x.objects", "rsu.aggregate"} <= set(validated)
