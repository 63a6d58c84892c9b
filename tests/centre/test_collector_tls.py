"""The centre collector through a broker that requires TLS client certificates (a private CA from
rsu_tools.testing.tls): `rsu centre`'s TLS options reach the connection, aggregates are stored,
and a wrong CA or a missing client certificate stops it with the cause named."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from rsu.centre import collector as collector_module
from rsu.centre.collector import CentreCollector, add_centre_parser
from rsu.centre.store import AggregateStore
from rsu.runtime.mqtt import MqttClient
from rsu.runtime.mqtt_options import mqtt_config_from_options
from rsu_contracts.config.model import MqttConfig
from rsu_tools.testing.mosquitto import EphemeralMosquitto
from rsu_tools.testing.tls import TestPki, make_test_pki
from tests.centre.conftest import make_aggregate, unique_unit, wait_until

pytestmark = pytest.mark.services


@pytest.fixture
def pki(tmp_path: Path) -> TestPki:
    return make_test_pki(tmp_path / "pki")


@pytest.fixture
def broker(pki: TestPki) -> Iterator[EphemeralMosquitto]:
    with EphemeralMosquitto(pki.mosquitto_config(require_certificate=True), name="centre-tls") as server:
        yield server


def _centre_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rsu")
    add_centre_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["centre", "--db", "unused.sqlite", *argv])


def test_the_collector_stores_aggregates_over_mutual_tls_set_up_by_its_options(
    tmp_path: Path, pki: TestPki, broker: EphemeralMosquitto
) -> None:
    args = _centre_args(
        "--host", "localhost", "--port", str(broker.port), "--ca-file", str(pki.ca_file),
        "--cert-file", str(pki.client_cert_file), "--key-file", str(pki.client_key_file),
    )  # fmt: skip
    config = mqtt_config_from_options(args, host=args.host, port=args.port)
    assert config.tls and config.check_hostname and config.cert_file == str(pki.client_cert_file)

    unit = unique_unit()
    unit_uplink = MqttClient(
        MqttConfig(
            host="127.0.0.1",
            port=broker.port,
            tls=True,
            ca_file=str(pki.ca_file),
            cert_file=str(pki.client_cert_file),
            key_file=str(pki.client_key_file),
        ),
        f"{unit}-uplink",
        lambda message: None,
    )
    with AggregateStore(tmp_path / "centre.sqlite") as store:
        collector = CentreCollector(
            config, store, "centre/+/aggregates", client_id=f"centre-{unit}", session_expiry_s=60
        )
        collector.start(timeout_s=3.0)
        unit_uplink.connect(timeout_s=3.0)
        try:
            for seq in range(2):
                info = unit_uplink.publish(f"centre/{unit}/aggregates", make_aggregate(unit, seq).to_json(), qos=1)
                info.wait_for_publish(3.0)
            assert wait_until(lambda: collector.process_pending(wait_s=0.1) >= 0 and collector.stored == 2, 5.0)
        finally:
            unit_uplink.close()
            collector.close()
        assert [row.seq for row in store.intervals(unit)] == [0, 1]


@pytest.fixture
def no_signal_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    # `rsu centre` installs SIGINT / SIGTERM handlers; the test runner keeps its own.
    monkeypatch.setattr(collector_module.signal, "signal", lambda signum, handler: signal.SIG_DFL)


@pytest.mark.usefixtures("no_signal_handlers")
def test_rsu_centre_names_a_wrong_ca(
    tmp_path: Path, broker: EphemeralMosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    other = make_test_pki(tmp_path / "other", ca_name="other-ca")
    argv = ["--db", str(tmp_path / "c.sqlite"), "--port", str(broker.port), "--ca-file", str(other.ca_file)]
    assert collector_module.main(argv) == 2
    error = capsys.readouterr().err
    assert f"rsu centre: error: TLS handshake with centre MQTT broker at 127.0.0.1:{broker.port} failed" in error
    assert "not signed by a trusted CA" in error


@pytest.mark.usefixtures("no_signal_handlers")
def test_rsu_centre_names_a_missing_client_certificate(
    tmp_path: Path, pki: TestPki, broker: EphemeralMosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--db", str(tmp_path / "c.sqlite"), "--port", str(broker.port), "--ca-file", str(pki.ca_file)]
    assert collector_module.main(argv) == 2
    error = capsys.readouterr().err
    assert "centre MQTT broker" in error and "the broker requires a client certificate" in error


def test_the_centre_tls_options_imply_tls_and_read_the_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CENTRE_SECRET", "s3cret")
    args = _centre_args("--username", "centre", "--password-env", "CENTRE_SECRET", "--no-check-hostname")
    config = mqtt_config_from_options(args, host=args.host, port=args.port)
    assert (config.username, config.password, config.tls, config.check_hostname) == ("centre", "s3cret", True, False)
    plain = mqtt_config_from_options(_centre_args(), host="127.0.0.1", port=1883)
    assert not plain.tls and plain.check_hostname
