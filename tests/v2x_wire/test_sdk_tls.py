"""`rsu vehicle listen` through a TLS-only broker with a private CA (rsu_tools.testing.tls), the
way deploy/mosquitto serves vehicles: it connects with the CA (and a client certificate where the
broker requires one) and prints verified messages; each TLS mistake ends it with the cause named."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rsu.key_files import signer_from_key_file
from rsu.runtime.bus import MqttBus
from rsu_clients.vehicle import main
from rsu_contracts.config.model import MqttConfig
from rsu_tools.testing.mosquitto import EphemeralMosquitto
from rsu_tools.testing.tls import TestPki, make_test_pki
from tests.conftest import REPO_ROOT
from tests.v2x_wire.builders import SITE_FRAME, key_pair
from tests.v2x_wire.test_sdk_broker import publish_warning

pytestmark = pytest.mark.services


@pytest.fixture
def pki(tmp_path: Path) -> TestPki:
    return make_test_pki(tmp_path / "pki")


@pytest.fixture
def broker(pki: TestPki) -> Iterator[EphemeralMosquitto]:
    """TLS only, and every client needs a certificate signed by the test CA."""
    with EphemeralMosquitto(pki.mosquitto_config(require_certificate=True), name="vehicle-tls") as server:
        yield server


def _listen_argv(unit_id: str, public_key: Path, broker: EphemeralMosquitto, *options: str) -> list[str]:
    argv = ["vehicle", "listen", "--unit", unit_id, "--key", str(public_key), "--host", "localhost"]
    return [*argv, "--port", str(broker.port), *options]


def test_vehicle_listen_prints_verified_messages_over_mutual_tls(
    tmp_path: Path, pki: TestPki, broker: EphemeralMosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    unit_id = f"rsu-test-{uuid.uuid4().hex[:10]}"
    private_key, public_key = key_pair(tmp_path)
    signer = signer_from_key_file(private_key, unit_id)
    unit_config = MqttConfig(
        host="localhost",
        port=broker.port,
        tls=True,
        ca_file=str(pki.ca_file),
        cert_file=str(pki.client_cert_file),
        key_file=str(pki.client_key_file),
    )
    bus = MqttBus(unit_config, client_id=f"{unit_id}-v2x")
    bus.connect(timeout_s=3.0)
    latitude, longitude = SITE_FRAME.to_geodetic(0.0, -80.0)
    argv = _listen_argv(unit_id, public_key, broker, "--ca-file", str(pki.ca_file))
    argv += ["--cert-file", str(pki.client_cert_file), "--key-file", str(pki.client_key_file)]
    argv += ["--lat", str(latitude), "--lon", str(longitude), "--count", "2", "--timeout-s", "8"]
    result: list[int] = []
    listener = threading.Thread(target=lambda: result.append(main(argv)))
    listener.start()
    try:
        deadline = time.monotonic() + 8.0
        while listener.is_alive() and time.monotonic() < deadline:
            publish_warning(bus, unit_id, signer)
            time.sleep(0.1)
        listener.join(timeout=10.0)
    finally:
        bus.close()
    captured = capsys.readouterr()
    assert result == [0], captured.err
    lines = captured.out.strip().splitlines()
    assert len(lines) == 2 and all(f"{unit_id} warnings" in line for line in lines)


def test_vehicle_listen_names_a_wrong_ca(
    tmp_path: Path, broker: EphemeralMosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    other = make_test_pki(tmp_path / "other", ca_name="other-ca")
    _, public_key = key_pair(tmp_path)
    argv = _listen_argv("rsu-test-x", public_key, broker, "--ca-file", str(other.ca_file), "--timeout-s", "1")
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "rsu vehicle listen: error: TLS handshake with MQTT broker" in error
    assert f"not signed by a trusted CA: it must be signed by a CA in {other.ca_file}" in error


def test_vehicle_listen_names_a_wrong_hostname(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = make_test_pki(tmp_path / "pki", server_names=("broker.example",))
    _, public_key = key_pair(tmp_path)
    with EphemeralMosquitto(pki.mosquitto_config(), name="vehicle-wrong-name") as server:
        argv = _listen_argv("rsu-test-x", public_key, server, "--ca-file", str(pki.ca_file), "--timeout-s", "1")
        assert main(argv) == 2
        assert "the broker's certificate does not name localhost" in capsys.readouterr().err
        # --no-check-hostname: connects (and ends at --timeout-s with nothing to print).
        assert main([*argv, "--no-check-hostname"]) == 0


def test_vehicle_listen_names_a_missing_client_certificate(
    tmp_path: Path, pki: TestPki, broker: EphemeralMosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    _, public_key = key_pair(tmp_path)
    argv = _listen_argv("rsu-test-x", public_key, broker, "--ca-file", str(pki.ca_file), "--timeout-s", "1")
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "the broker requires a client certificate" in error and "--cert-file, --key-file" in error


def test_vehicle_listen_wants_a_client_key_with_its_certificate(
    tmp_path: Path, pki: TestPki, capsys: pytest.CaptureFixture[str]
) -> None:
    _, public_key = key_pair(tmp_path)
    argv = ["vehicle", "listen", "--unit", "rsu-test-x", "--key", str(public_key), "--port", "8883"]
    assert main([*argv, "--cert-file", str(pki.client_cert_file)]) == 2
    assert "--cert-file is set but --key-file is not" in capsys.readouterr().err


def _shipped_tls_listener(pki: TestPki) -> str:
    """The TLS lines of deploy/mosquitto/rsu-v2x.conf's vehicle listener (client certificates
    switched on as its comments say), with the test CA's files in place of /etc/mosquitto/certs."""
    shipped = (REPO_ROOT / "deploy" / "mosquitto" / "rsu-v2x.conf").read_text().splitlines()
    listener = shipped[shipped.index("listener 8883") + 1 :]
    replacements = {"certfile": pki.server_cert_file, "keyfile": pki.server_key_file, "cafile": pki.ca_file}
    lines = []
    for line in listener:
        option = line.removeprefix("#").split()
        if not option or option[0] not in {*replacements, "require_certificate"}:
            continue
        name = option[0]
        lines.append(f"{name} {replacements[name]}" if name in replacements else " ".join(option))
    assert [line.split()[0] for line in lines] == ["certfile", "keyfile", "cafile", "require_certificate"]
    return "\n".join(lines) + "\n"


def test_the_shipped_vehicle_listener_takes_the_clients_tls_options(
    tmp_path: Path, pki: TestPki, capsys: pytest.CaptureFixture[str]
) -> None:
    _, public_key = key_pair(tmp_path)
    with EphemeralMosquitto(_shipped_tls_listener(pki), name="shipped-tls") as server:
        argv = _listen_argv("rsu-test-x", public_key, server, "--ca-file", str(pki.ca_file), "--timeout-s", "0.5")
        assert main(argv) == 2  # client certificates required
        assert "the broker requires a client certificate" in capsys.readouterr().err
        certificate = ["--cert-file", str(pki.client_cert_file), "--key-file", str(pki.client_key_file)]
        assert main([*argv, *certificate]) == 0, capsys.readouterr().err
