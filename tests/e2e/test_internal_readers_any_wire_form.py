"""The unit's own readers read the internal messages, whatever goes to vehicles.

`v2x.encodings` may put SPaT, MAP and warnings on the wire as ETSI UPER, and `v2x.topic_layout:
china` moves the vehicle-facing topics to `V2X/RSU/{unit}/.../UP`. Neither may change what the
unit itself sees: the uplink's warnings per kind, the demo's counters, the web page's SPaT and
warnings. Each combination runs the whole demo through the real Mosquitto and Redis, with an
independent subscriber on the vehicle-facing topics of the layout.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from rsu.demo import DemoSummary, run_demo
from rsu.samples import SAMPLE_SITE
from rsu.stages.v2x import topic_layout
from rsu.web.state import Arrival, LiveState
from rsu_contracts.config import load_site_config
from rsu_contracts.messages import Aggregate, CollisionWarning, WarningStatus, decode
from rsu_contracts.topics import Topics
from tests.runtime.unit_processes import free_port
from v2x.wire import Encoding, MessageClass, decode_payload

pytestmark = [pytest.mark.services, pytest.mark.sumo, pytest.mark.slow]

# Long enough for warnings (the demand has red-light runners and jaywalkers) inside three full 60 s
# intervals (the first ones come 110-150 s in, a little earlier or later by how the stages
# interleave); short enough to run four times.
SIMULATED_S = 190.0


class Listener:
    """A plain paho subscriber: payloads and user properties per topic."""

    def __init__(self, host: str, port: int, topics: list[str]) -> None:
        self.received: dict[str, list[tuple[bytes, dict[str, str]]]] = {}
        self._lock = threading.Lock()
        self._client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        for topic in topics:
            self._client.subscribe(topic, qos=1)
        self._client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        properties = dict(getattr(message.properties, "UserProperty", None) or [])
        with self._lock:
            self.received.setdefault(message.topic, []).append((bytes(message.payload), properties))

    def payloads(self, topic: str) -> list[bytes]:
        return [payload for payload, _ in self.received.get(topic, [])]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@pytest.mark.parametrize("layout", ["default", "china"])
@pytest.mark.parametrize("encoding", [Encoding.JSON, Encoding.UPER], ids=["json", "uper"])
def test_uplink_demo_and_web_read_the_internal_messages_whatever_the_wire_form(
    tmp_path: Path, redis_url: str, mqtt_broker: tuple[str, int], layout: str, encoding: Encoding
) -> None:
    raw = yaml.safe_load(SAMPLE_SITE.read_text())
    raw["unit_id"] = f"rsu-wire-{uuid.uuid4().hex[:8]}"
    raw["web"] = {"port": free_port()}
    raw["redis"] = {"url": redis_url}
    raw["simulation"]["network"] = str(SAMPLE_SITE.parent / raw["simulation"]["network"])
    raw["simulation"]["routes"] = str(SAMPLE_SITE.parent / raw["simulation"]["routes"])
    raw.setdefault("v2x", {})["topic_layout"] = layout
    raw["v2x"]["encodings"] = {"spat": encoding.value, "map": encoding.value, "warnings": encoding.value}
    site_path = tmp_path / "site.yaml"
    site_path.write_text(yaml.safe_dump(raw))
    site = load_site_config(site_path)
    topics = Topics.for_site(site)
    wire = topic_layout(site)
    wire_topics = {wire.topic(site.unit_id, c): c for c in (MessageClass.SPAT, MessageClass.WARNINGS)}
    host, port = mqtt_broker
    # One subscription per topic tree: overlapping filters would deliver a message twice.
    outside = [topic for topic in wire_topics if not topic.startswith(f"{topics.base}/")]
    listener = Listener(host, port, [f"{topics.base}/#", topics.aggregates, *outside])
    try:
        summary: DemoSummary = run_demo(site_path, duration_s=SIMULATED_S, progress=None, wall_timeout_s=600)
        time.sleep(0.5)
    finally:
        listener.close()

    # What went to vehicles is in the chosen form, on the chosen layout's topics.
    spat_topic = wire.topic(site.unit_id, MessageClass.SPAT)
    warnings_topic = wire.topic(site.unit_id, MessageClass.WARNINGS)
    assert spat_topic.startswith("V2X/RSU/") is (layout == "china")
    on_the_wire = {
        message_class: [decode_payload(message_class, payload, props) for payload, props in listener.received[topic]]
        for topic, message_class in wire_topics.items()
    }
    assert on_the_wire[MessageClass.SPAT]
    assert {decoded.encoding for decoded in on_the_wire[MessageClass.SPAT]} == {encoding}
    assert {decoded.encoding for decoded in on_the_wire[MessageClass.WARNINGS]} == {encoding}

    # The internal copies: one per message sent to vehicles.
    internal_warnings = [decode(CollisionWarning, p) for p in listener.payloads(topics.warnings_sent)]
    assert len(internal_warnings) == len(listener.received[warnings_topic]) > 0
    assert len(listener.payloads(topics.spat_sent)) == len(listener.received[spat_topic])
    new_by_kind: dict[str, int] = {}
    for warning in internal_warnings:
        if warning.status is WarningStatus.NEW:
            new_by_kind[warning.kind.value] = new_by_kind.get(warning.kind.value, 0) + 1

    # The demo's counters: nothing invalid, every warning counted by kind.
    assert summary.invalid_messages == []
    assert summary.warnings_sent == new_by_kind
    assert summary.aggregates_delivered == summary.aggregates_expected == int(SIMULATED_S // 60)

    # The uplink: the warnings per kind reach the centre.
    aggregates = [decode(Aggregate, p) for p in listener.payloads(topics.aggregates)]
    minute_warnings: dict[str, int] = {}
    for aggregate in aggregates:
        if aggregate.interval_s == site.uplink.interval_s:
            for kind, count in aggregate.warnings_by_kind.items():
                minute_warnings[kind] = minute_warnings.get(kind, 0) + count
    assert minute_warnings, "no warnings_by_kind upstream"
    assert all(count <= new_by_kind.get(kind, 0) for kind, count in minute_warnings.items())

    # The web page's state, fed what the web stage's feed gets (everything under the unit's prefix).
    state = LiveState(site, realtime=False)
    now = time.time()
    for topic, received in listener.received.items():
        if topic.startswith(f"{topics.base}/"):
            for payload, _ in received:
                state.absorb(topic, payload, Arrival(now, time.monotonic()))
    assert state.spat is not None
    assert dict(state.warnings_by_kind) == new_by_kind
