"""Issue 15's attacks on the bus itself, through a real Mosquitto secured as `rsu broker-config` writes
it: per-stage logins on the local listener, vehicle logins on the vehicle listener.

The controller, V2X and uplink stages run on it with their own logins (as on a live unit; the
uplink sends 2 s aggregates to a centre broker), the supervisor's status connection with its will,
and vehicles listen on the vehicle listener. Each attack ends with
rsu_tools.testing.attack_checks.assert_withstood: nothing forged or stale signed, SPaT back at its
rate within 1 s, no stage restart, no lost aggregate interval, and the refusal counted and logged
(here by the broker, which logs every refused connection and, at debug level, every refused publish).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from rsu.doctor import Level, run_checks
from rsu.runtime.bus import BrokerUnavailable, MqttBus
from rsu.runtime.preflight import ALLOW_OPEN_BUS_VARIABLE, PreflightError, check_open_bus
from rsu.runtime.stage import RunOptions
from rsu.runtime.supervisor import Supervisor
from rsu.stages.unit_keys import unit_key_paths
from rsu.unit import CONTROLLER, UPLINK, V2X, supervisor_bus
from rsu_cli import main as rsu_main
from rsu_contracts.bus_roles import BusRole, login_name
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_contracts.config.model import MqttConfig
from rsu_contracts.messages import Spat, decode
from rsu_contracts.topics import Topics
from rsu_tools.secured_broker import SecuredMosquitto
from rsu_tools.testing.attack_checks import CountedElsewhere, Heard, UnitWatch, assert_withstood, stage_logs_to
from rsu_tools.testing.mosquitto import EphemeralMosquitto, free_loopback_port
from rsu_tools.testing.mqtt_packets import connect_packet, mqtt_packet, mqtt_string, split_packet
from rsu_tools.testing.redis_server import EphemeralRedis
from tests.conftest import REPO_ROOT
from tests.faults.test_forged_local_inputs import FORGED_LIKELY_OFFSET_S, forged_state, shows_conflict
from tests.v2x.test_stage_output import conflicting_tracks
from v2x.wire import MessageClass

pytestmark = pytest.mark.services

STARTUP_S = 90.0
VEHICLE = "car-17"
WATCHER = "car-18"
# The attack checks' own vehicle (one connection per login: the client id is the login).
OBSERVER = "car-19"
PUBLISH_QOS0 = 0x30
CONNACK = 2


def sample_raw(unit_id: str, state_dir: Path) -> dict[str, object]:
    raw: dict[str, object] = yaml.safe_load((REPO_ROOT / "datasets" / "sample_intersection" / "site.yaml").read_text())
    raw["unit_id"] = unit_id
    raw["v2x"] = {"state_dir": str(state_dir)}
    simulation = raw["simulation"]
    assert isinstance(simulation, dict)
    for key in ("network", "routes"):
        simulation[key] = str(REPO_ROOT / "datasets" / "sample_intersection" / simulation[key])
    return raw


@dataclass
class SecuredUnit:
    site: SiteConfig
    site_path: Path
    topics: Topics
    broker: SecuredMosquitto
    supervisor: Supervisor
    status_bus: MqttBus
    # A vehicle on the vehicle listener: SPaT and the unit's status.
    vehicle: MqttBus
    # The unit's read-only monitor on the local listener: everything under the unit's prefix.
    monitor: MqttBus
    # A vehicle's and the centre's view of the unit, for the checks after each attack.
    watch: UnitWatch
    stage_log: Path

    def vehicle_heard(self, seconds: float) -> tuple[list[tuple[Spat, bool]], list[bytes]]:
        """(SPaT with whether it was signed, status payloads) the vehicle heard over `seconds`."""
        spats: list[tuple[Spat, bool]] = []
        statuses: list[bytes] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self.supervisor.poll()
            item = self.vehicle.get(timeout_s=min(remaining, 0.1))
            if item is None:
                continue
            if item.topic == self.topics.spat:
                spats.append((decode(Spat, item.payload), bool(item.user_properties)))
            elif item.topic == self.topics.status:
                statuses.append(item.payload)
        return spats, statuses

    def monitor_heard(self, seconds: float) -> list[tuple[str, bytes]]:
        """(topic, payload) of what the unit's own subscription received (since it was last drained)
        and receives over the next `seconds`."""
        heard: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            item = self.monitor.get(timeout_s=remaining)
            if item is not None:
                heard.append((item.topic, item.payload))
        return heard

    def broker_log_size(self) -> int:
        return len(self.broker.log_tail(100_000_000))

    def broker_lines_since(self, size: int, marker: str) -> list[str]:
        return [line for line in self.broker.log_tail(100_000_000)[size:].splitlines() if marker in line]

    def withstood(
        self, attack_started_s: float, attack_end_s: float, forged: Callable[[Heard], bool], *refused: CountedElsewhere
    ) -> None:
        assert_withstood(
            self.watch,
            self.supervisor,
            attack_started_s=attack_started_s,
            attack_end_s=attack_end_s,
            forged=forged,
            counted_elsewhere=refused,
            log_path=self.stage_log,
        )

    def assert_no_restart(self) -> None:
        self.supervisor.poll()
        for stage in self.supervisor.health():
            assert stage.alive and stage.restarts == 0, f"stage {stage.name}: {stage.detail}"


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredUnit]:
    folder = tmp_path_factory.mktemp("secured-unit")
    unit_id = f"rsu-acl-{uuid.uuid4().hex[:10]}"
    base = folder / "base.yaml"
    raw = sample_raw(unit_id, folder / "state")
    with contextlib.ExitStack() as services:
        redis_server = services.enter_context(EphemeralRedis(name="acl-redis"))
        centre_broker = services.enter_context(EphemeralMosquitto(name="acl-centre"))
        centre = MqttConfig(host=centre_broker.host, port=centre_broker.port)
        raw["redis"] = {"url": redis_server.url}
        raw["uplink"] = {"interval_s": 2.0, "mqtt": centre.model_dump(mode="json", exclude_defaults=True)}
        base.write_text(yaml.safe_dump(raw))
        broker = services.enter_context(
            SecuredMosquitto(
                load_site_config(base), vehicles=[VEHICLE, WATCHER, OBSERVER], name="acl", log_denials=True
            )
        )
        yield from _run_unit(folder, broker, centre)


def _run_unit(folder: Path, broker: SecuredMosquitto, centre: MqttConfig) -> Iterator[SecuredUnit]:
    path = broker.site_file(folder)
    site = load_site_config(path)
    topics = Topics.for_site(site)
    supervisor = Supervisor(path, RunOptions(realtime=True), [CONTROLLER, V2X, UPLINK])
    status_bus = supervisor_bus(site, topics)
    vehicle = MqttBus(broker.vehicle_config(WATCHER), "vehicle")
    vehicle.subscribe(topics.spat)
    vehicle.subscribe(topics.status, qos=1)
    monitor_login = login_name(site.unit_id, BusRole.MONITOR)
    monitor = MqttBus(broker.local_config(monitor_login, broker.password(monitor_login)), f"{monitor_login}-test")
    monitor.subscribe(f"{topics.base}/#")
    status_bus.connect()
    vehicle.connect()
    monitor.connect()
    stage_log = folder / "stages.log"
    with stage_logs_to(stage_log):
        supervisor.start()
    watch: UnitWatch | None = None
    try:
        deadline = time.monotonic() + STARTUP_S
        while not any(item.topic == topics.spat for item in vehicle.drain()):
            supervisor.poll()
            assert time.monotonic() < deadline, f"no SPaT within {STARTUP_S:.0f} s:\n{broker.log_tail()}"
            time.sleep(0.1)
        # The V2X stage has written the unit's public key by now.
        watch = UnitWatch(site, unit_key_paths(site, path)[1], broker.vehicle_config(OBSERVER), centre).start()
        running = SecuredUnit(site, path, topics, broker, supervisor, status_bus, vehicle, monitor, watch, stage_log)
        while len(watch.seqs()) < 1:  # the uplink is in its stride
            running.vehicle_heard(0.5)
            assert time.monotonic() < deadline, f"no aggregate within {STARTUP_S:.0f} s:\n{stage_log.read_text()}"
        yield running
    finally:
        supervisor.stop()
        if watch is not None:
            watch.close()
        for bus in (status_bus, vehicle, monitor):
            bus.close()


def raw_connect_then_publish(host: str, port: int, topic: str, payload: bytes) -> int | None:
    """An anonymous client that does not wait: CONNECT and PUBLISH in one write. Returns the
    CONNACK reason code (None: no CONNACK before the broker closed)."""
    publish = mqtt_packet(PUBLISH_QOS0, mqtt_string(topic) + b"\x00" + payload)
    with socket.create_connection((host, port), timeout=3.0) as connection:
        connection.sendall(connect_packet(f"anonymous-{uuid.uuid4().hex[:8]}") + publish)
        buffer = bytearray()
        while True:
            try:
                chunk = connection.recv(4096)
            except (ConnectionResetError, TimeoutError):
                return None
            if not chunk:
                return None
            buffer += chunk
            packet = split_packet(buffer)
            if packet is not None and packet[0] >> 4 == CONNACK:
                return packet[1][1]  # acknowledge flags, then the reason code


def forged_content(site: SiteConfig) -> Callable[[Heard], bool]:
    """A SPaT built from a forged signal state, or anything built from tracks: no perception stage
    runs in this unit, so every warning and shared object would come from an attacker's tracks."""

    def forged(heard: Heard) -> bool:
        if heard.message_class is not MessageClass.SPAT:
            return True
        spat = heard.message
        return isinstance(spat, Spat) and (bool(forged_spats([(spat, True)])) or shows_conflict(site, spat))

    return forged


NOT_AUTHORISED = "disconnected, not authorised."


def forged_spats(spats: list[tuple[Spat, bool]]) -> list[Spat]:
    return [
        spat
        for spat, _ in spats
        if any(
            movement.likely_time_s - spat.capture_time_s > FORGED_LIKELY_OFFSET_S - 77 for movement in spat.movements
        )
    ]


def test_an_anonymous_publisher_is_refused_and_nothing_it_sends_is_signed(unit: SecuredUnit) -> None:
    broker, site = unit.broker, unit.site
    for port in (broker.port, broker.vehicle_port):
        with pytest.raises(BrokerUnavailable, match="refused the connection"):
            MqttBus(broker.local_config(None).model_copy(update={"port": port}), "anonymous").connect(timeout_s=3.0)
    forged = [forged_state(site, 20_000 + seq, {"2", "4", "6", "8"}).to_json() for seq in range(10)]
    log_size = unit.broker_log_size()
    attack_started_s = time.monotonic()
    for payload in forged:
        for port in (broker.port, broker.vehicle_port):
            code = raw_connect_then_publish(broker.host, port, unit.topics.signal_state, payload)
            assert code is None or code >= 0x80, f"port {port} accepted an anonymous CONNECT (reason {code:#x})"
    attack_end_s = time.monotonic()
    spats, _ = unit.vehicle_heard(2.0)
    assert spats, "the unit's SPaT stopped"
    assert all(signed for _, signed in spats)
    assert forged_spats(spats) == []
    assert not any(shows_conflict(site, spat) for spat, _ in spats)
    unit.withstood(
        attack_started_s,
        attack_end_s,
        forged_content(site),
        CountedElsewhere(
            "anonymous connections the broker refused",
            len(forged) * 2,
            unit.broker_lines_since(log_size, NOT_AUTHORISED),
        ),
    )


def test_a_vehicle_connecting_as_the_supervisor_cannot_kick_the_unit(unit: SecuredUnit) -> None:
    supervisor_id = f"{unit.site.unit_id}-supervisor"
    unit.vehicle_heard(0.5)  # the retained "online"
    takeovers_before = unit.status_bus.takeovers
    attack_started_s = time.monotonic()
    for _ in range(4):
        intruder = MqttBus(unit.broker.vehicle_config(VEHICLE), supervisor_id)
        intruder.connect(timeout_s=3.0)
        time.sleep(0.5)
        intruder.close()
    # The vehicle's login does not exist on the local listener, with any client id.
    log_size = unit.broker_log_size()
    with pytest.raises(BrokerUnavailable, match="refused the connection"):
        MqttBus(unit.broker.local_config(VEHICLE, unit.broker.password(VEHICLE)), supervisor_id).connect(timeout_s=3.0)
    attack_end_s = time.monotonic()
    _, statuses = unit.vehicle_heard(3.0)
    assert b"offline" not in statuses
    assert unit.status_bus.connected and unit.status_bus.takeovers == takeovers_before
    # Mosquitto logs every takeover ("Client <id> already connected, closing old connection").
    assert f"Client {supervisor_id} already connected" not in unit.broker.log_tail(1_000_000)
    # On the vehicle listener each intruder connection got its login as client id; on the local one
    # the login was refused.
    assert len(unit.broker_lines_since(0, f"as {VEHICLE} (")) >= 4
    unit.withstood(
        attack_started_s,
        attack_end_s,
        forged_content(unit.site),
        CountedElsewhere(
            "a vehicle login on the local listener, refused by the broker",
            1,
            unit.broker_lines_since(log_size, NOT_AUTHORISED),
        ),
    )


def test_a_vehicle_login_cannot_publish_signal_state_or_tracks(unit: SecuredUnit) -> None:
    site, topics = unit.site, unit.topics
    vehicle = MqttBus(unit.broker.vehicle_config(VEHICLE), "vehicle")
    vehicle.connect()
    forged = [forged_state(site, 30_000 + seq, {"2", "4"}).to_json() for seq in range(10)]
    request = f'{{"forged_by": "{VEHICLE}"}}'.encode()
    try:
        unit.monitor.drain()
        log_size = unit.broker_log_size()
        attack_started_s = time.monotonic()
        for payload in forged:
            # Two cars that do not exist, on a crossing course: a critical warning if acted on.
            tracks = conflicting_tracks(site, time.time())
            vehicle.publish(topics.signal_state, payload, qos=1)
            vehicle.publish(topics.tracks, tracks.to_json(), qos=1)
            time.sleep(0.1)
        attack_end_s = time.monotonic()
        # What the ACL grants it still works: a priority request reaches the unit's side.
        vehicle.publish(topics.priority_request, request, qos=1).wait_for_publish(3.0)
        heard = unit.monitor_heard(2.0)
    finally:
        vehicle.close()
    topics_heard = {topic for topic, _ in heard}
    assert topics.signal_state in topics_heard, "the controller's own signal state reaches the monitor"
    assert (topics.priority_request, request) in heard
    assert not any(payload in forged for _, payload in heard), "a vehicle's forged signal state was delivered"
    assert topics.tracks not in topics_heard, "a vehicle's forged tracks were delivered"
    spats, _ = unit.vehicle_heard(1.5)
    assert spats and forged_spats(spats) == []
    denied = unit.broker_lines_since(log_size, f"Denied PUBLISH from {VEHICLE} ")
    assert {line.split("'")[1] for line in denied} == {topics.signal_state, topics.tracks}
    unit.withstood(
        attack_started_s,
        attack_end_s,
        forged_content(site),
        CountedElsewhere("a vehicle's publishes on the unit's topics, refused by the broker", len(forged) * 2, denied),
    )


def test_one_stage_login_cannot_publish_another_stages_topic(unit: SecuredUnit) -> None:
    topics = unit.topics
    perception = login_name(unit.site.unit_id, BusRole.PERCEPTION)
    stage = MqttBus(unit.broker.local_config(perception, unit.broker.password(perception)), f"{perception}-test")
    marker = f"forged by {perception}".encode()
    stage.connect()
    try:
        unit.monitor.drain()
        for topic in (topics.signal_state, topics.spat, topics.status):
            stage.publish(topic, marker, qos=1).wait_for_publish(3.0)
        # Its own topic (the camera preview, which nothing in this unit reads) is delivered.
        stage.publish(topics.camera_preview, marker, qos=1).wait_for_publish(3.0)
        heard = unit.monitor_heard(1.5)
    finally:
        stage.close()
    assert [topic for topic, payload in heard if payload == marker] == [topics.camera_preview]


def test_the_preflight_accepts_the_secured_broker_without_the_flag(
    unit: SecuredUnit, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(ALLOW_OPEN_BUS_VARIABLE, raising=False)
    with caplog.at_level(logging.INFO):
        verdict = check_open_bus(unit.site)
    assert not verdict.anonymous_connects and not verdict.open
    # The refused anonymous probe is the hoped-for answer: said at INFO, never as a WARNING.
    assert any("refused the connection" in r.getMessage() for r in caplog.records)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def open_site(folder: Path, broker: EphemeralMosquitto, **mqtt: object) -> Path:
    raw = sample_raw(f"rsu-open-{uuid.uuid4().hex[:10]}", folder / "state")
    raw["mqtt"] = {"host": broker.host, "port": broker.port, **mqtt}
    raw["web"] = {"port": free_loopback_port()}
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_preflight_refuses_an_open_broker_unless_the_dev_flag_is_given(
    tmp_path: Path, local_broker: EphemeralMosquitto, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(ALLOW_OPEN_BUS_VARIABLE, raising=False)
    site = load_site_config(open_site(tmp_path, local_broker))
    with pytest.raises(PreflightError, match=r"anonymous client.*--allow-open-bus") as refused:
        check_open_bus(site)
    assert "\n" not in str(refused.value)
    monkeypatch.setenv(ALLOW_OPEN_BUS_VARIABLE, "1")
    with caplog.at_level(logging.WARNING, logger="rsu.runtime.preflight"):
        assert check_open_bus(site).open
    assert any(record.levelno == logging.WARNING and "development only" in record.message for record in caplog.records)
    monkeypatch.delenv(ALLOW_OPEN_BUS_VARIABLE)
    allowed = load_site_config(open_site(tmp_path, local_broker, allow_open_bus=True))
    assert check_open_bus(allowed).open


def test_rsu_run_exits_2_with_one_line_on_an_open_broker(
    tmp_path: Path,
    local_broker: EphemeralMosquitto,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv(ALLOW_OPEN_BUS_VARIABLE, raising=False)
    path = open_site(tmp_path, local_broker)
    assert rsu_main(["run", "--config", str(path)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "anonymous client" in error and "--allow-open-bus" in error


def test_rsu_doctor_reports_the_local_bus_check(
    unit: SecuredUnit, tmp_path: Path, local_broker: EphemeralMosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOW_OPEN_BUS_VARIABLE, raising=False)
    secured = {f.check: f for f in run_checks(unit.site_path)}["local bus"]
    assert secured.level is Level.OK and "refuses anonymous clients" in secured.message
    opened = {f.check: f for f in run_checks(open_site(tmp_path, local_broker))}["local bus"]
    assert opened.level is Level.FAIL and "anonymous client" in opened.message
    assert opened.fix is not None and "rsu broker-config" in opened.fix
    monkeypatch.setenv(ALLOW_OPEN_BUS_VARIABLE, "1")
    allowed = {f.check: f for f in run_checks(open_site(tmp_path, local_broker))}["local bus"]
    assert allowed.level is Level.WARN
