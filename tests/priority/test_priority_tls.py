"""`rsu priority request` from outside the unit, through a TLS listener with a private CA
(rsu_tools.testing.tls), as deploy/mosquitto sets it up: the unit's controller stage uses the
plain loopback listener of the same broker, the requester the TLS one with its own options."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rsu.runtime.bus import MqttBus
from rsu_contracts.topics import Topics
from rsu_tools.testing.mosquitto import EphemeralMosquitto
from rsu_tools.testing.servers import free_loopback_port
from rsu_tools.testing.tls import TestPki, make_test_pki

# The controller stage, its site file and an observer, from the plain-broker tests; here they run
# against the loopback listener of the broker below (mqtt_broker is overridden for this module).
from tests.priority.test_priority_broker import _wait_for, observer, running_controller, site_path  # noqa: F401

pytestmark = pytest.mark.services


@pytest.fixture
def pki(tmp_path: Path) -> TestPki:
    return make_test_pki(tmp_path / "pki")


@pytest.fixture
def two_listener_broker(pki: TestPki) -> Iterator[tuple[EphemeralMosquitto, int]]:
    """TLS with client certificates on the broker's port (for requesters), plain on a second
    loopback port (for the unit's stages)."""
    unit_port = free_loopback_port()
    config = pki.mosquitto_config(require_certificate=True) + f"listener {unit_port} 127.0.0.1\n"
    with EphemeralMosquitto(config, name="priority-tls") as server:
        yield server, unit_port


@pytest.fixture
def mqtt_broker(two_listener_broker: tuple[EphemeralMosquitto, int]) -> tuple[str, int]:
    return "127.0.0.1", two_listener_broker[1]


def test_a_request_through_the_tls_listener_is_answered(
    site_path: Path,  # noqa: F811
    running_controller: Topics,  # noqa: F811
    observer: MqttBus,  # noqa: F811
    pki: TestPki,
    two_listener_broker: tuple[EphemeralMosquitto, int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from rsu_cli import main

    tls_port = two_listener_broker[0].port
    _wait_for(observer, "signal state", lambda item: item.topic == running_controller.signal_state)
    request = ["priority", "request", "--site", str(site_path), "--requester-id", "ambulance-7"]
    request += ["--key", str(tmp_path / "ambulance.pem"), "--kind", "emergency", "--approach", "north"]
    through_tls = ["--host", "localhost", "--port", str(tls_port), "--ca-file", str(pki.ca_file)]
    client_certificate = ["--cert-file", str(pki.client_cert_file), "--key-file", str(pki.client_key_file)]

    code = main([*request, *through_tls, *client_certificate, "--arrival-in-s", "20"])
    captured = capsys.readouterr()
    assert code == 0, captured
    assert "accepted (ok, unverified): preemption for signal group 2 checked in" in captured.out

    # Without its client certificate the requester is stopped with the cause named.
    code = main([*request, *through_tls])
    assert code != 0
    assert "the broker requires a client certificate" in capsys.readouterr().err


def test_the_command_line_replaces_the_site_files_broker(tmp_path: Path, pki: TestPki) -> None:
    import argparse

    from rsu_clients.priority_requester import add_priority_parser, requester_broker
    from rsu_contracts.config import load_site_config
    from rsu_contracts.config.model import SiteConfig

    parser = argparse.ArgumentParser()
    add_priority_parser(parser.add_subparsers(dest="command"))
    base = ["priority", "request", "--site", "s.yaml", "--key", "k.pem", "--requester-id", "a", "--kind", "emergency"]
    site: SiteConfig = load_site_config(Path(__file__).resolve().parents[2] / "datasets/sample_intersection/site.yaml")
    site = site.model_copy(
        update={"mqtt": site.mqtt.model_copy(update={"username": "unit", "password": "unit-secret"})}
    )

    unchanged = requester_broker(site, parser.parse_args(base))
    assert unchanged == site.mqtt
    args = parser.parse_args([*base, "--host", "unit.example", "--port", "8883", "--ca-file", str(pki.ca_file)])
    args.username, args.password = "ambulance-7", None
    broker = requester_broker(site, args)
    assert (broker.host, broker.port, broker.tls, broker.ca_file) == ("unit.example", 8883, True, str(pki.ca_file))
    # Another user never inherits the unit's password.
    assert (broker.username, broker.password) == ("ambulance-7", None)
