"""VehicleClient and the `vehicle listen` CLI against the real Mosquitto."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rsu.key_files import signer_from_key_file
from rsu.runtime.bus import MqttBus
from rsu_clients.vehicle import VehicleClient, main
from rsu_contracts.config import SiteConfig
from rsu_contracts.config.model import MqttConfig
from tests.v2x_wire.builders import SITE_FRAME, key_pair, warning
from v2x.mapdata import build_map
from v2x.signing import UnitSigner
from v2x.uper import ItsIdentity
from v2x.wire import Encoding, MessageClass, TopicLayout, WirePublisher, encode_for_topic

pytestmark = pytest.mark.services

RECEIVE_TIMEOUT_S = 5.0


@pytest.fixture
def unit_id() -> str:
    return f"rsu-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return key_pair(tmp_path)


@pytest.fixture
def bus(mqtt_broker: tuple[str, int], unit_id: str) -> Iterator[MqttBus]:
    host, port = mqtt_broker
    unit_bus = MqttBus(MqttConfig(host=host, port=port), client_id=f"{unit_id}-v2x")
    unit_bus.connect()
    yield unit_bus
    unit_bus.close()


def vehicle(mqtt_broker: tuple[str, int], unit_id: str, public_path: Path, **options: Any) -> VehicleClient:
    host, port = mqtt_broker
    client = VehicleClient(
        host,
        port,
        unit_id,
        public_path,
        position=SITE_FRAME.to_geodetic(0.0, -80.0),
        heading_deg=0.0,
        radius_m=300.0,
        **options,
    )
    client.connect()
    assert client.wait_subscribed(5.0), "broker did not acknowledge the subscriptions"
    return client


def publish_warning(bus: MqttBus, unit_id: str, signer: UnitSigner | None, **fields: Any) -> None:
    """A JSON warning on the unit's warnings topic, signed unless signer is None."""
    message = warning(unit_id, now_s=time.time(), **fields)
    wire = encode_for_topic(message, Encoding.JSON)
    properties = signer.sign(wire.topic, wire.payload, wire.properties) if signer else []
    bus.publish(wire.topic, wire.payload, qos=wire.qos, retain=wire.retain, user_properties=properties)


def test_signed_warning_is_received_and_verified(
    mqtt_broker: tuple[str, int], bus: MqttBus, unit_id: str, keys: tuple[Path, Path]
) -> None:
    signer = signer_from_key_file(keys[0], unit_id)
    client = vehicle(mqtt_broker, unit_id, keys[1])
    try:
        publish_warning(bus, unit_id, signer, warning_id="near-1")
        received = client.get(timeout_s=RECEIVE_TIMEOUT_S)
    finally:
        client.close()
    assert received is not None, f"nothing delivered; rejections: {list(client.recent_rejections)}"
    assert received.message_class is MessageClass.WARNINGS
    assert received.verified.key_id == signer.key_id
    assert received.decoded.fields["warning_id"] == "near-1"
    assert 0 <= received.latency_s < 1.0


def test_tampered_and_unsigned_warnings_are_rejected(
    mqtt_broker: tuple[str, int], bus: MqttBus, unit_id: str, keys: tuple[Path, Path]
) -> None:
    signer = signer_from_key_file(keys[0], unit_id)
    client = vehicle(mqtt_broker, unit_id, keys[1])
    try:
        wire = encode_for_topic(warning(unit_id, now_s=time.time(), warning_id="forged"), Encoding.JSON)
        properties = signer.sign(wire.topic, wire.payload, wire.properties)
        bus.publish(wire.topic, wire.payload.replace(b"critical", b"advisory"), qos=1, user_properties=properties)
        publish_warning(bus, unit_id, None, warning_id="unsigned")
        publish_warning(bus, unit_id, signer, warning_id="genuine")  # same topic, QoS 1: arrives after the other two
        received = client.get(timeout_s=RECEIVE_TIMEOUT_S)
    finally:
        client.close()
    assert received is not None and received.decoded.fields["warning_id"] == "genuine"
    assert client.rejections == {"TamperedPayload": 1, "UnsignedMessage": 1}


def test_a_warning_two_km_away_is_not_delivered(
    mqtt_broker: tuple[str, int], bus: MqttBus, unit_id: str, keys: tuple[Path, Path]
) -> None:
    signer = signer_from_key_file(keys[0], unit_id)
    client = vehicle(mqtt_broker, unit_id, keys[1])
    try:
        publish_warning(bus, unit_id, signer, x_m=0.0, y_m=1920.0, warning_id="far", participants=[(0.0, 1950.0)])
        publish_warning(bus, unit_id, signer, warning_id="near")
        received = client.get(timeout_s=RECEIVE_TIMEOUT_S)
        assert client.get(timeout_s=0.2) is None
    finally:
        client.close()
    assert received is not None and received.decoded.fields["warning_id"] == "near"
    assert client.filtered == 1


def test_uper_and_retained_map_through_the_wire_publisher(
    mqtt_broker: tuple[str, int],
    bus: MqttBus,
    unit_id: str,
    keys: tuple[Path, Path],
    sample_site: SiteConfig,
) -> None:
    signer = signer_from_key_file(keys[0], unit_id)
    layout = TopicLayout.china()
    publisher = WirePublisher(bus, signer, layout, Encoding.UPER, ItsIdentity.for_site(sample_site))
    now = time.time()
    map_data = build_map(sample_site, {"unit_id": unit_id, "seq": 0, "capture_time_s": now, "publish_time_s": now})
    publisher.publish(map_data)
    time.sleep(0.2)  # the retained MAP is stored before the vehicle subscribes
    client = vehicle(mqtt_broker, unit_id, keys[1], layout=layout)
    try:
        retained_map = client.get(timeout_s=RECEIVE_TIMEOUT_S)
        publisher.publish(warning(unit_id, now_s=time.time()))
        denm = client.get(timeout_s=RECEIVE_TIMEOUT_S)
    finally:
        client.close()
        bus.publish(layout.topic(unit_id, MessageClass.MAP), b"", qos=1, retain=True)  # clear the retained MAP
    assert retained_map is not None and retained_map.decoded.content_type == "etsi.mapem"
    assert retained_map.topic == f"V2X/RSU/{unit_id}/MAP/UP"
    assert denm is not None and denm.decoded.fields["cause_code"] == 97
    assert denm.topic == f"V2X/RSU/{unit_id}/RSI/UP"


def test_vehicle_listen_cli_prints_one_line_per_verified_message(
    mqtt_broker: tuple[str, int],
    bus: MqttBus,
    unit_id: str,
    keys: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    host, port = mqtt_broker
    signer = signer_from_key_file(keys[0], unit_id)
    latitude, longitude = SITE_FRAME.to_geodetic(0.0, -80.0)
    argv = ["vehicle", "listen", "--unit", unit_id, "--key", str(keys[1]), "--host", host, "--port", str(port)]
    argv += ["--lat", str(latitude), "--lon", str(longitude), "--heading", "0", "--count", "2", "--timeout-s", "8"]
    result: list[int] = []
    listener = threading.Thread(target=lambda: result.append(main(argv)))
    listener.start()
    # The CLI subscribes on its own schedule: keep publishing until it has printed two messages.
    deadline = time.monotonic() + 8.0
    while listener.is_alive() and time.monotonic() < deadline:
        publish_warning(bus, unit_id, signer)
        time.sleep(0.1)
    listener.join(timeout=10.0)
    assert result == [0]
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert all(f"{unit_id} warnings" in line and "critical crossing" in line for line in lines)
