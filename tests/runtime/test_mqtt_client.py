"""The MQTT client wrapper (rsu.runtime.mqtt) against real Mosquitto brokers: ready only after
SUBACK, reconnect after a broker restart, redelivery of what was not acknowledged, clear TLS errors.

Each test starts its own throwaway broker on a free port; the shared one is never restarted.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from rsu.runtime.bus import MqttBus
from rsu.runtime.mqtt import BrokerUnavailable, Inbound, MqttClient, PersistentSession
from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import load_site_config
from rsu_contracts.config.model import MqttConfig
from rsu_tools.testing.mosquitto import EphemeralMosquitto
from rsu_tools.testing.servers import free_loopback_port
from rsu_tools.testing.tls import TestPki, make_test_pki

pytestmark = pytest.mark.services

SUBACK = 9  # MQTT control packet type


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class Inbox:
    """Collects what a client receives (the handler runs on paho's network thread)."""

    def __init__(self) -> None:
        self.messages: queue.Queue[Inbound] = queue.Queue()

    def __call__(self, message: Inbound) -> None:
        self.messages.put(message)

    def next(self, timeout_s: float = 5.0) -> Inbound | None:
        try:
            return self.messages.get(timeout=timeout_s)
        except queue.Empty:
            return None


class Publisher:
    """A plain paho client, independent of the code under test."""

    def __init__(self, broker: EphemeralMosquitto) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"test-pub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(5.0)
        assert info.is_published(), f"broker did not acknowledge {topic}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class SubackHoldingProxy:
    """Forwards a loopback port to the broker, MQTT packet by packet; while `hold` is set it keeps
    every SUBACK back (and what follows it), so a test sees the client before the broker's answer."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_loopback_port()
        self.hold = threading.Event()
        self.held = threading.Event()  # a SUBACK is waiting
        self._release = threading.Event()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def release(self) -> None:
        self.hold.clear()
        self.held.clear()
        self._release.set()

    def close(self) -> None:
        self.release()
        for sock in [*self._sockets, self._listener]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            threading.Thread(target=self._forward, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._forward, args=(upstream, client, True), daemon=True).start()

    def _forward(self, source: socket.socket, sink: socket.socket, from_broker: bool) -> None:
        with contextlib.suppress(OSError):
            while packet := _read_packet(source):
                if from_broker and packet[0] >> 4 == SUBACK and self.hold.is_set():
                    self._release.clear()
                    self.held.set()
                    self._release.wait(10.0)
                sink.sendall(packet)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


def _read_packet(sock: socket.socket) -> bytes:
    """One MQTT control packet (fixed header, variable length, body), or b'' at the end."""
    header = _read_exactly(sock, 1)
    if not header:
        return b""
    length, multiplier, length_bytes = 0, 1, b""
    while True:
        byte = _read_exactly(sock, 1)
        if not byte:
            return b""
        length_bytes += byte
        length += (byte[0] & 0x7F) * multiplier
        multiplier *= 128
        if not byte[0] & 0x80:
            break
    body = _read_exactly(sock, length) if length else b""
    if length and not body:
        return b""
    return header + length_bytes + body


@pytest.fixture
def broker() -> Iterator[EphemeralMosquitto]:
    with EphemeralMosquitto(name="mqtt-client") as server:
        yield server


def test_ready_only_once_the_broker_has_answered_every_subscription(broker: EphemeralMosquitto) -> None:
    proxy = SubackHoldingProxy((broker.host, broker.port))
    client = MqttClient(MqttConfig(host="127.0.0.1", port=proxy.port), f"ready-{uuid.uuid4().hex[:8]}", Inbox())
    client.subscribe("rsu-test/first", qos=1)
    client.subscribe("rsu-test/second", qos=0)
    proxy.hold.set()
    try:
        client.connect_in_background()
        assert proxy.held.wait(5.0), "the client never subscribed"
        assert client.connected
        assert not client.wait_ready(0.3), "ready before the SUBACK arrived"
        proxy.release()
        assert client.wait_ready(5.0)
        assert client.refused_subscriptions == {}

        # A subscription added while connected makes the client not ready until it is answered.
        proxy.hold.set()
        client.subscribe("rsu-test/third")
        assert not client.ready
        assert proxy.held.wait(5.0)
        assert not client.wait_ready(0.3)
        proxy.release()
        assert client.wait_ready(5.0)
    finally:
        client.close()
        proxy.close()


def test_connect_returns_ready_and_messages_published_at_once_arrive(broker: EphemeralMosquitto) -> None:
    inbox = Inbox()
    topic = f"rsu-test/{uuid.uuid4().hex}/ready"
    client = MqttClient(MqttConfig(host=broker.host, port=broker.port), f"sub-{uuid.uuid4().hex[:8]}", inbox)
    client.subscribe(topic, qos=1)
    publisher = Publisher(broker)
    try:
        client.connect()
        assert client.ready
        publisher.send(topic, b"right after connect")  # no sleep: the subscription is in place
        received = inbox.next()
        assert received is not None and received.payload == b"right after connect"
    finally:
        publisher.close()
        client.close()
    assert not client.connected and not client.ready


def test_reconnects_and_renews_its_subscriptions_after_a_broker_restart(broker: EphemeralMosquitto) -> None:
    inbox = Inbox()
    topic = f"rsu-test/{uuid.uuid4().hex}/after-restart"
    client = MqttClient(MqttConfig(host=broker.host, port=broker.port), f"restart-{uuid.uuid4().hex[:8]}", inbox)
    client.subscribe(topic, qos=1)
    client.connect()
    try:
        broker.stop()  # without persistence the broker forgets every subscription
        assert wait_until(lambda: not client.connected, 5.0), "the loss of the broker was not noticed"
        broker.start()
        # The backoff runs 1 s, 2 s, 4 s, 5 s...: well within 15 s of the broker's return.
        assert client.wait_ready(15.0), "did not reconnect after the broker restarted"
        publisher = Publisher(broker)
        try:
            publisher.send(topic, b"after the restart")
        finally:
            publisher.close()
        received = inbox.next()
        assert received is not None and received.payload == b"after the restart"
    finally:
        client.close()


def test_an_unacknowledged_message_is_delivered_again_to_the_persistent_session(broker: EphemeralMosquitto) -> None:
    topic = f"rsu-test/{uuid.uuid4().hex}/manual-ack"
    client_id = f"manual-ack-{uuid.uuid4().hex[:8]}"  # the same id names the same session
    config = MqttConfig(host=broker.host, port=broker.port)
    session = PersistentSession(expiry_s=60)

    def persistent_client(inbox: Inbox) -> MqttClient:
        client = MqttClient(config, client_id, inbox, session=session, manual_ack=True)
        client.subscribe(topic, qos=1)
        client.connect()
        return client

    publisher = Publisher(broker)
    try:
        first_inbox = Inbox()
        first = persistent_client(first_inbox)
        publisher.send(topic, b"aggregate 1")
        received = first_inbox.next()
        assert received is not None and received.payload == b"aggregate 1"
        first.close()  # "crashed" before storing it: never acknowledged

        second_inbox = Inbox()
        second = persistent_client(second_inbox)
        again = second_inbox.next()
        assert again is not None and again.payload == b"aggregate 1", "the unacknowledged message was lost"
        assert not first.ack(received), "a message from a closed connection must not be acknowledged"
        assert second.ack(again)
        # The PUBACK goes out before the DISCONNECT that close() queues after it.
        second.close()

        third_inbox = Inbox()
        third = persistent_client(third_inbox)
        try:
            assert third_inbox.next(timeout_s=1.0) is None, "an acknowledged message was delivered again"
        finally:
            third.close()
    finally:
        publisher.close()


def _self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A broker certificate for 127.0.0.1, signed by itself (so it is its own CA file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsu-test-broker")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = folder / "broker.pem", folder / "broker.key"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return certificate_path, key_path


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[EphemeralMosquitto, Path]]:
    certificate, key = _self_signed_certificate(tmp_path)
    with EphemeralMosquitto(f"certfile {certificate}\nkeyfile {key}\n", name="tls") as server:
        yield server, certificate


def test_a_certificate_from_an_unknown_ca_gives_a_clear_tls_error(tls_broker: tuple[EphemeralMosquitto, Path]) -> None:
    server, _ = tls_broker
    client = MqttClient(MqttConfig(host=server.host, port=server.port, tls=True), "tls-untrusted", Inbox())
    with pytest.raises(
        BrokerUnavailable, match=rf"TLS handshake with MQTT broker at 127\.0\.0\.1:{server.port} failed"
    ) as error:
        client.connect(timeout_s=3.0)
    assert "self-signed certificate" in str(error.value) and "ca_file" in str(error.value)


def test_the_ca_file_makes_the_broker_certificate_trusted(tls_broker: tuple[EphemeralMosquitto, Path]) -> None:
    server, certificate = tls_broker
    inbox = Inbox()
    topic = f"rsu-test/{uuid.uuid4().hex}/tls"
    config = MqttConfig(host=server.host, port=server.port, tls=True, ca_file=str(certificate))
    client = MqttClient(config, "tls-trusted", inbox)
    client.subscribe(topic, qos=1)
    client.connect(timeout_s=3.0)
    try:
        client.publish(topic, b"over TLS", qos=1).wait_for_publish(3.0)
        received = inbox.next()
        assert received is not None and received.payload == b"over TLS"
    finally:
        client.close()


def test_tls_to_a_broker_without_tls_gives_a_clear_tls_error(broker: EphemeralMosquitto) -> None:
    client = MqttClient(MqttConfig(host=broker.host, port=broker.port, tls=True), "tls-to-plain", Inbox())
    with pytest.raises(BrokerUnavailable, match=r"TLS handshake .* failed .*speaks TLS on this port"):
        client.connect(timeout_s=3.0)


def test_an_unreachable_broker_is_named_without_a_tls_hint() -> None:
    port = free_loopback_port()  # nothing listens there
    client = MqttClient(MqttConfig(host="127.0.0.1", port=port, tls=True), "nobody-home", Inbox())
    with pytest.raises(BrokerUnavailable, match=rf"MQTT broker at 127\.0\.0\.1:{port} is unreachable"):
        client.connect(timeout_s=1.0)


def test_a_missing_ca_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    config = MqttConfig(host="127.0.0.1", port=8883, tls=True, ca_file=str(missing))
    with pytest.raises(BrokerUnavailable, match=rf"cannot use the CA file {missing} .*127\.0\.0\.1:8883"):
        MqttClient(config, "no-ca", Inbox())


# TLS with a private CA (rsu_tools.testing.tls): a CA, a broker certificate for localhost and
# 127.0.0.1, and a client certificate, made afresh for each test.


@pytest.fixture
def pki(tmp_path: Path) -> TestPki:
    return make_test_pki(tmp_path / "pki")


@pytest.fixture
def mutual_tls_broker(pki: TestPki) -> Iterator[EphemeralMosquitto]:
    """Clients must present a certificate signed by the test CA (require_certificate true)."""
    with EphemeralMosquitto(pki.mosquitto_config(require_certificate=True), name="mtls") as server:
        yield server


def _tls_config(
    server: EphemeralMosquitto, pki: TestPki, *, client_certificate: bool = True, **fields: object
) -> MqttConfig:
    values: dict[str, object] = {"host": server.host, "port": server.port, "tls": True, "ca_file": str(pki.ca_file)}
    if client_certificate:
        values |= {"cert_file": str(pki.client_cert_file), "key_file": str(pki.client_key_file)}
    return MqttConfig.model_validate(values | fields)


def _connect_error(config: MqttConfig, timeout_s: float = 3.0) -> str:
    client = MqttClient(config, f"tls-fail-{uuid.uuid4().hex[:8]}", Inbox())
    with pytest.raises(BrokerUnavailable) as error:
        client.connect(timeout_s=timeout_s)
    return str(error.value)


def test_the_units_bus_connects_with_the_site_files_ca_and_client_certificate(
    tmp_path: Path, pki: TestPki, mutual_tls_broker: EphemeralMosquitto
) -> None:
    # The site file names the files relative to itself (the site path rule).
    site_dir = tmp_path / "site"
    (site_dir / "certs").mkdir(parents=True)
    for source, name in (
        (pki.ca_file, "ca.pem"),
        (pki.client_cert_file, "unit.pem"),
        (pki.client_key_file, "unit.key"),
    ):
        (site_dir / "certs" / name).write_bytes(source.read_bytes())
    raw = yaml.safe_load(SAMPLE_SITE.read_text())
    raw["mqtt"] = {
        **raw.get("mqtt", {}),
        "host": "localhost",  # the certificate names localhost: checked against it
        "port": mutual_tls_broker.port,
        "tls": True,
        "ca_file": "certs/ca.pem",
        "cert_file": "certs/unit.pem",
        "key_file": "certs/unit.key",
    }
    site_path = site_dir / "junction.yaml"
    site_path.write_text(yaml.safe_dump(raw))
    site = load_site_config(site_path)

    topic = f"rsu-test/{uuid.uuid4().hex}/mtls"
    bus = MqttBus(site.mqtt, f"unit-{uuid.uuid4().hex[:8]}")
    bus.subscribe(topic, qos=1)
    bus.connect(timeout_s=3.0)
    try:
        assert bus.publish_and_wait(topic, b"over mutual TLS", timeout_s=3.0, qos=1)
        received = bus.get(timeout_s=3.0)
        assert received is not None and received.payload == b"over mutual TLS"
    finally:
        bus.close()


def test_a_broker_certificate_from_another_ca_is_named(tmp_path: Path, pki: TestPki) -> None:
    other = make_test_pki(tmp_path / "other", ca_name="other-ca")
    with EphemeralMosquitto(other.mosquitto_config(), name="other-ca") as server:
        message = _connect_error(_tls_config(server, pki, client_certificate=False))
    assert f"TLS handshake with MQTT broker at 127.0.0.1:{server.port} failed" in message
    assert "unable to get local issuer certificate" in message
    assert f"not signed by a trusted CA: it must be signed by a CA in {pki.ca_file}" in message


def test_a_broker_certificate_for_another_host_is_named_and_check_hostname_false_accepts_it(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "pki", server_names=("broker.example",))
    with EphemeralMosquitto(pki.mosquitto_config(), name="wrong-name") as server:
        message = _connect_error(_tls_config(server, pki, client_certificate=False))
        assert "IP address mismatch" in message
        assert "the broker's certificate does not name 127.0.0.1" in message and "unsafe" in message

        # Switched off on purpose: the chain is still checked, only the name is not.
        client = MqttClient(
            _tls_config(server, pki, client_certificate=False, check_hostname=False), "tls-no-name-check", Inbox()
        )
        client.connect(timeout_s=3.0)
        client.close()
        other = make_test_pki(tmp_path / "other", ca_name="other-ca")
        message = _connect_error(
            _tls_config(server, other, client_certificate=False, check_hostname=False), timeout_s=3.0
        )
        assert "not signed by a trusted CA" in message


def test_an_expired_broker_certificate_is_named(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "pki", server_expired=True)
    with EphemeralMosquitto(pki.mosquitto_config(), name="expired") as server:
        message = _connect_error(_tls_config(server, pki, client_certificate=False))
    assert "certificate has expired" in message and "the broker's certificate has expired" in message


def test_a_missing_client_certificate_is_named_without_waiting_for_the_timeout(
    pki: TestPki, mutual_tls_broker: EphemeralMosquitto
) -> None:
    started = time.monotonic()
    message = _connect_error(_tls_config(mutual_tls_broker, pki, client_certificate=False), timeout_s=10.0)
    assert time.monotonic() - started < 5.0, "a refused client certificate must not wait out the timeout"
    assert f"MQTT broker at 127.0.0.1:{mutual_tls_broker.port}" in message
    assert "the broker requires a client certificate" in message and "set cert_file and key_file" in message


def test_a_client_certificate_from_a_ca_the_broker_does_not_trust_is_named(
    tmp_path: Path, pki: TestPki, mutual_tls_broker: EphemeralMosquitto
) -> None:
    stranger = make_test_pki(tmp_path / "stranger", ca_name="stranger-ca")
    config = _tls_config(
        mutual_tls_broker,
        pki,
        cert_file=str(stranger.client_cert_file),
        key_file=str(stranger.client_key_file),
    )
    message = _connect_error(config)
    assert f"the broker did not accept the client certificate {stranger.client_cert_file}" in message


def test_a_client_key_that_does_not_belong_to_the_certificate_names_both_files(tmp_path: Path, pki: TestPki) -> None:
    stranger = make_test_pki(tmp_path / "stranger", ca_name="stranger-ca")
    config = MqttConfig(
        port=8883, tls=True, cert_file=str(pki.client_cert_file), key_file=str(stranger.client_key_file)
    )
    with pytest.raises(BrokerUnavailable) as error:
        MqttClient(config, "tls-key-mismatch", Inbox())
    message = str(error.value)
    assert f"client certificate {pki.client_cert_file} with the key {stranger.client_key_file}" in message
    assert "key values mismatch" in message


def test_a_missing_client_certificate_file_is_named(tmp_path: Path, pki: TestPki) -> None:
    missing = tmp_path / "no-such-cert.pem"
    config = MqttConfig(port=8883, tls=True, cert_file=str(missing), key_file=str(pki.client_key_file))
    with pytest.raises(BrokerUnavailable, match=rf"cannot use the client certificate {missing} .*No such file"):
        MqttClient(config, "tls-no-cert-file", Inbox())


def test_a_link_connecting_in_the_background_logs_its_tls_failure_once_and_keeps_it(
    tmp_path: Path, pki: TestPki, caplog: pytest.LogCaptureFixture
) -> None:
    # The uplink's centre link connects in the background: no exception reaches its caller, so
    # the cause must be logged (once, not on every retry) and readable for health.
    other = make_test_pki(tmp_path / "other", ca_name="other-ca")
    with EphemeralMosquitto(other.mosquitto_config(), name="background-tls") as server:
        client = MqttClient(_tls_config(server, pki, client_certificate=False), "tls-background", Inbox())
        with caplog.at_level("WARNING", logger="rsu.runtime.mqtt"):
            client.connect_in_background()
            try:
                assert wait_until(lambda: client.tls_failure is not None, 5.0), "the TLS failure was not noticed"
                time.sleep(1.5)  # at least one retry (1 s backoff)
            finally:
                client.close()
    assert not client.connected
    assert client.tls_failure is not None and "not signed by a trusted CA" in client.tls_failure
    logged = [record.getMessage() for record in caplog.records if "not signed by a trusted CA" in record.getMessage()]
    assert len(logged) == 1, logged
