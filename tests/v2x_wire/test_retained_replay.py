"""Replay through the retain flag, through a real Mosquitto: a genuine SPaT or warning that someone
re-publishes as retained is rejected by a fresh vehicle; the unit's retained MAP is accepted
within the age its signature vouches for (two MAP periods and the window) and rejected past it.

The unit publishes through the WirePublisher it runs; its signing clock is set back to make a
message as old as in the field report (a SPaT 33 s old, a warning 49 s old).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rsu.key_files import signer_from_key_file
from rsu.runtime.bus import MqttBus
from rsu_clients.vehicle import VehicleClient
from rsu_contracts.config import SiteConfig
from rsu_contracts.config.model import MqttConfig
from rsu_tools.testing.mosquitto import EphemeralMosquitto
from tests.v2x_wire.builders import SITE_FRAME, key_pair, spat, warning
from v2x.mapdata import build_map
from v2x.wire import MessageClass, TopicLayout, WirePublisher, retained_bound_s

pytestmark = pytest.mark.services

MAP_PERIOD_S = 10.0
RECEIVE_TIMEOUT_S = 3.0


class SettableClock:
    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s


class RecordingBus:
    """Publishes through a real MqttBus and keeps what went out, for the attacker to re-publish."""

    def __init__(self, bus: MqttBus) -> None:
        self.bus = bus
        self.sent: list[dict[str, Any]] = []

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        user_properties: list[tuple[str, str]] | None = None,
    ) -> Any:
        self.sent.append({"topic": topic, "payload": payload, "properties": list(user_properties or [])})
        info = self.bus.publish(topic, payload, qos=qos, retain=retain, user_properties=user_properties)
        info.wait_for_publish(2.0)
        return info


@pytest.fixture(scope="module")
def broker() -> Iterator[EphemeralMosquitto]:
    with EphemeralMosquitto(name="retained-replay") as server:
        yield server


@pytest.fixture
def unit_id() -> str:
    return f"rsu-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def bus(broker: EphemeralMosquitto, unit_id: str) -> Iterator[MqttBus]:
    unit_bus = MqttBus(MqttConfig(host=broker.host, port=broker.port), client_id=f"{unit_id}-v2x")
    unit_bus.connect()
    yield unit_bus
    unit_bus.close()


def fresh_vehicle(broker: EphemeralMosquitto, unit_id: str, public_path: Path) -> VehicleClient:
    client = VehicleClient(
        broker.host,
        broker.port,
        unit_id,
        public_path,
        position=SITE_FRAME.to_geodetic(0.0, -80.0),
        heading_deg=0.0,
    )
    client.connect()
    assert client.wait_subscribed(5.0)
    return client


def collect(client: VehicleClient, timeout_s: float = RECEIVE_TIMEOUT_S) -> list[MessageClass]:
    return [message.message_class for message in client.messages(timeout_s=timeout_s)]


def test_a_genuine_old_spat_and_warning_republished_as_retained_are_rejected(
    broker: EphemeralMosquitto, bus: MqttBus, unit_id: str, tmp_path: Path
) -> None:
    private_path, public_path = key_pair(tmp_path)
    clock = SettableClock()
    recorder = RecordingBus(bus)
    publisher = WirePublisher(recorder, signer_from_key_file(private_path, unit_id, clock))
    clock.offset_s = -33.0
    publisher.publish(spat(unit_id, now_s=clock()))
    clock.offset_s = -49.0
    publisher.publish(warning(unit_id, now_s=clock(), warning_id="old-crossing"))
    # The attacker re-publishes both exactly as they went out, payload and signature, retained.
    attacker = MqttBus(MqttConfig(host=broker.host, port=broker.port), client_id=f"attacker-{uuid.uuid4().hex[:8]}")
    attacker.connect()
    try:
        for sent in recorder.sent:
            info = attacker.publish(
                sent["topic"], sent["payload"], qos=1, retain=True, user_properties=sent["properties"]
            )
            info.wait_for_publish(2.0)
        client = fresh_vehicle(broker, unit_id, public_path)
        try:
            delivered = collect(client)
        finally:
            client.close()
    finally:
        for sent in recorder.sent:  # clear what the attacker left retained
            attacker.publish(sent["topic"], b"", qos=1, retain=True).wait_for_publish(2.0)
        attacker.close()
    assert delivered == []
    assert client.rejections == {"StaleMessage": 2}
    reasons = [reason for _, reason in client.recent_rejections]
    assert all("flagged retained by the broker but not signed as retained" in reason for reason in reasons), reasons


def test_a_retained_map_is_accepted_within_its_bound_and_rejected_past_it(
    broker: EphemeralMosquitto, bus: MqttBus, unit_id: str, tmp_path: Path, sample_site: SiteConfig
) -> None:
    private_path, public_path = key_pair(tmp_path)
    clock = SettableClock()
    publisher = WirePublisher(
        bus, signer_from_key_file(private_path, unit_id, clock), retained_periods_s={MessageClass.MAP: MAP_PERIOD_S}
    )
    bound_s = retained_bound_s(MAP_PERIOD_S)
    map_topic = TopicLayout().topic(unit_id, MessageClass.MAP)

    def publish_map(age_s: float) -> None:
        clock.offset_s = -age_s
        now_s = clock()
        header = {"unit_id": unit_id, "seq": 1, "capture_time_s": now_s, "publish_time_s": now_s}
        publisher.publish(build_map(sample_site, header))
        time.sleep(0.2)  # stored as the retained MAP before the vehicle subscribes

    try:
        publish_map(bound_s - 4.0)  # one missed re-send: still vouched for
        within = fresh_vehicle(broker, unit_id, public_path)
        try:
            accepted = collect(within)
        finally:
            within.close()
        publish_map(bound_s + 4.0)  # the unit stopped re-sending it long ago
        past = fresh_vehicle(broker, unit_id, public_path)
        try:
            rejected = collect(past)
        finally:
            past.close()
    finally:
        bus.publish(map_topic, b"", qos=1, retain=True).wait_for_publish(2.0)
    assert accepted == [MessageClass.MAP], list(within.recent_rejections)
    assert rejected == []
    assert past.rejections == {"StaleMessage": 1}
    assert f"accepted -2 s .. +{bound_s:g} s" in past.recent_rejections[0][1]
