"""The example ACL in deploy/mosquitto, enforced by a private Mosquitto started for the test."""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from rsu_tools.testing.mosquitto import EphemeralMosquitto
from tests.conftest import REPO_ROOT

ACL = REPO_ROOT / "deploy" / "mosquitto" / "rsu-v2x.acl"
UNIT, VEHICLE, REQUESTER = "rsu-demo-001", "vehicle", "ambulance-7"
PASSWORD = "test-password"

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None or shutil.which("mosquitto_passwd") is None,
    reason="the mosquitto and mosquitto_passwd binaries are not installed",
)


@pytest.fixture(scope="module")
def broker_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    folder = tmp_path_factory.mktemp("mosquitto")
    passwords = folder / "passwords"
    for index, user in enumerate((UNIT, VEHICLE, REQUESTER)):
        create = ["-c"] if index == 0 else []
        subprocess.run(["mosquitto_passwd", *create, "-b", str(passwords), user, PASSWORD], check=True)
    # The later allow_anonymous overrides the throwaway broker's default.
    access = f"allow_anonymous false\npassword_file {passwords}\nacl_file {ACL}\n"
    with EphemeralMosquitto(access, name="acl") as broker:
        yield broker.port


class Client:
    """A paho MQTT v5 client that records SUBACK reason codes and received topics."""

    def __init__(self, port: int, user: str) -> None:
        self.received: queue.Queue[str] = queue.Queue()
        self.suback: queue.Queue[list[ReasonCode]] = queue.Queue()
        self._connected = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{user}-{time.monotonic_ns()}", protocol=mqtt.MQTTv5
        )
        client.username_pw_set(user, PASSWORD)
        client.on_connect = lambda c, u, f, reason, p: self._connected.set() if not reason.is_failure else None
        client.on_subscribe = self._on_subscribe
        client.on_message = lambda c, u, message: self.received.put(message.topic)
        client.connect("127.0.0.1", port)
        client.loop_start()
        assert self._connected.wait(5.0), f"{user} could not log in"
        self.client = client

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, codes: list[ReasonCode], properties: Properties | None
    ) -> None:
        self.suback.put(codes)

    def subscribe(self, topic: str) -> bool:
        """True if the broker granted the subscription."""
        self.client.subscribe(topic, qos=1)
        (code,) = self.suback.get(timeout=5.0)
        return not code.is_failure

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5.0)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients(broker_port: int) -> Iterator[tuple[Client, Client]]:
    unit, vehicle = Client(broker_port, UNIT), Client(broker_port, VEHICLE)
    yield unit, vehicle
    unit.close()
    vehicle.close()


def test_vehicle_may_subscribe_to_v2x_and_status(clients: tuple[Client, Client]) -> None:
    _, vehicle = clients
    assert vehicle.subscribe("rsu/+/v2x/#")
    assert vehicle.subscribe("V2X/RSU/+/+/UP")
    assert vehicle.subscribe(f"rsu/{UNIT}/status")


def test_only_the_unit_may_publish_its_topics(clients: tuple[Client, Client]) -> None:
    unit, vehicle = clients
    assert vehicle.subscribe("rsu/+/v2x/#")
    assert vehicle.subscribe("V2X/RSU/+/+/UP")
    vehicle.publish(f"rsu/{UNIT}/v2x/warnings", b"forged by a vehicle")
    vehicle.publish(f"V2X/RSU/{UNIT}/RSI/UP", b"forged by a vehicle")
    unit.publish("rsu/other-unit/v2x/warnings", b"one unit posing as another")
    unit.publish(f"rsu/{UNIT}/v2x/warnings", b"genuine")
    unit.publish(f"V2X/RSU/{UNIT}/RSI/UP", b"genuine")
    received = [vehicle.received.get(timeout=5.0) for _ in range(2)]
    assert received == [f"rsu/{UNIT}/v2x/warnings", f"V2X/RSU/{UNIT}/RSI/UP"]
    time.sleep(0.2)
    assert vehicle.received.empty()


def test_internal_topics_never_reach_a_vehicle(clients: tuple[Client, Client]) -> None:
    unit, vehicle = clients
    # Mosquitto 2.0 acknowledges a subscription the ACL does not cover and filters on delivery.
    vehicle.subscribe("#")
    vehicle.subscribe(f"rsu/{UNIT}/perception/#")
    unit.publish(f"rsu/{UNIT}/perception/tracks", b"internal")
    unit.publish(f"rsu/{UNIT}/status", b"online")
    assert vehicle.received.get(timeout=5.0) == f"rsu/{UNIT}/status"
    time.sleep(0.2)
    assert vehicle.received.empty()


def test_only_listed_requesters_may_ask_for_priority(broker_port: int) -> None:
    unit, vehicle, requester = Client(broker_port, UNIT), Client(broker_port, VEHICLE), Client(broker_port, REQUESTER)
    try:
        assert unit.subscribe(f"rsu/{UNIT}/priority/request")
        assert requester.subscribe(f"rsu/{UNIT}/priority/status")
        vehicle.publish(f"rsu/{UNIT}/priority/request", b"a vehicle asking for green")
        requester.publish(f"rsu/{UNIT}/priority/request", b"signed request")
        assert unit.received.get(timeout=5.0) == f"rsu/{UNIT}/priority/request"
        unit.publish(f"rsu/{UNIT}/priority/status", b"accepted")
        assert requester.received.get(timeout=5.0) == f"rsu/{UNIT}/priority/status"
        time.sleep(0.2)
        assert unit.received.empty(), "the vehicle's request got through"
    finally:
        for client in (unit, vehicle, requester):
            client.close()
