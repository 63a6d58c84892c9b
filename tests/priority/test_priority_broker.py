"""Through the real Mosquitto: the running controller stage accepts a signed request, serves it,
rejects a forged one, and answers both on the status topic (signed by the unit)."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from rsu.key_files import generate_key_files, signer_from_key_file, verifier_from_key_files
from rsu.runtime.bus import MqttBus, Received
from rsu.runtime.stage import RunOptions, StageContext
from rsu.stages import controller as controller_stage
from rsu.stages.unit_keys import unit_key_paths
from rsu_clients.priority_requester import signed_request
from rsu_contracts.config import load_site_config
from rsu_contracts.enums import PriorityKind
from rsu_contracts.messages import (
    PriorityAction,
    PriorityReason,
    PriorityStatus,
    PriorityStatusKind,
    SignalState,
    decode,
)
from rsu_contracts.topics import Topics
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.services

WAIT_S = 10.0


@pytest.fixture
def site_path(tmp_path: Path, mqtt_broker: tuple[str, int]) -> Path:
    host, port = mqtt_broker
    generate_key_files(tmp_path / "ambulance.pem", tmp_path / "ambulance.pub.pem")
    generate_key_files(tmp_path / "thief.pem", tmp_path / "thief.pub.pem")
    raw = yaml.safe_load((REPO_ROOT / "datasets" / "sample_intersection" / "site.yaml").read_text())
    raw["unit_id"] = f"rsu-test-{uuid.uuid4().hex[:10]}"
    raw["mqtt"] = {"host": host, "port": port}
    raw["simulation"] = {}
    raw["v2x"] = {"state_dir": str(tmp_path / "state")}
    raw["priority"] = {
        "requesters": [{"id": "ambulance-7", "public_key": "ambulance.pub.pem", "kinds": ["emergency"]}],
        "preemption": {"max_dwell_s": 60},
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def running_controller(site_path: Path) -> Iterator[Topics]:
    """The controller stage on the wall clock (as on a live unit), in a thread of this process."""
    heartbeat = multiprocessing.Value("d", 0.0)
    stop = threading.Event()
    context = StageContext("controller", site_path, RunOptions(realtime=True), heartbeat, stop)  # type: ignore[arg-type]
    failures: list[BaseException] = []

    def run() -> None:
        try:
            controller_stage.run(context)
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)

    thread = threading.Thread(target=run, name="controller-stage", daemon=True)
    thread.start()
    site = context.site
    try:
        yield Topics.for_site(site)
    finally:
        stop.set()
        thread.join(timeout=10.0)
    assert not failures, f"the controller stage failed: {failures[0]!r}"
    assert not thread.is_alive(), "the controller stage did not stop"


@pytest.fixture
def observer(site_path: Path, running_controller: Topics) -> Iterator[MqttBus]:
    site = load_site_config(site_path)
    bus = MqttBus(site.mqtt, f"{site.unit_id}-priority-test")
    bus.subscribe(running_controller.priority_status, qos=1)
    bus.subscribe(running_controller.signal_state)
    bus.connect()
    yield bus
    bus.close()


def _wait_for(bus: MqttBus, what: str, matches: Callable[[Received], bool]) -> Received:
    deadline = time.monotonic() + WAIT_S
    while (remaining := deadline - time.monotonic()) > 0:
        item = bus.get(timeout_s=remaining)
        if item is not None and matches(item):
            return item
    pytest.fail(f"no {what} within {WAIT_S:.0f} s")


def _status(topics: Topics, request_id: str | None, status: PriorityStatusKind) -> Callable[[Received], bool]:
    def matches(item: Received) -> bool:
        if item.topic != topics.priority_status:
            return False
        answer = decode(PriorityStatus, item.payload)
        return answer.request_id == request_id and answer.status is status

    return matches


def test_a_signed_request_is_served_and_a_forged_one_rejected(
    site_path: Path, running_controller: Topics, observer: MqttBus, tmp_path: Path
) -> None:
    topics = running_controller
    site = load_site_config(site_path)
    # The controller publishes its state, so it is subscribed and running.
    _wait_for(observer, "signal state", lambda item: item.topic == topics.signal_state)
    unit_public_key = unit_key_paths(site, site_path)[1]
    unit_verifier = verifier_from_key_files([unit_public_key], window_s=10.0)

    # A forgery: the ambulance's id, signed with a key that is not on the allow-list.
    thief = signer_from_key_file(tmp_path / "thief.pem", "ambulance-7")
    forged = signed_request(
        thief, site.unit_id, topics.priority_request, PriorityKind.EMERGENCY, "forged-1", time.time(), approach="east"
    )
    observer.publish(forged.topic, forged.payload, qos=1, user_properties=forged.user_properties)
    rejected = _wait_for(observer, "rejection", _status(topics, None, PriorityStatusKind.REJECTED))
    answer = decode(PriorityStatus, rejected.payload)
    assert answer.reason_code is PriorityReason.UNKNOWN_REQUESTER
    assert "not among the trusted keys" in answer.reason
    unit_verifier.verify(rejected.topic, rejected.payload, rejected.user_properties, time.time())

    # The genuine ambulance: accepted, then the east approach (group 4) is green in preemption dwell.
    ambulance = signer_from_key_file(tmp_path / "ambulance.pem", "ambulance-7")
    sent = signed_request(
        ambulance,
        site.unit_id,
        topics.priority_request,
        PriorityKind.EMERGENCY,
        "run-1",
        time.time(),
        approach="east",
        arrival_in_s=30.0,
    )
    observer.publish(sent.topic, sent.payload, qos=1, user_properties=sent.user_properties)
    accepted = _wait_for(observer, "acceptance", _status(topics, "run-1", PriorityStatusKind.ACCEPTED))
    assert decode(PriorityStatus, accepted.payload).signal_group == "4"
    unit_verifier.verify(accepted.topic, accepted.payload, accepted.user_properties, time.time())

    def east_green_in_dwell(item: Received) -> bool:
        if item.topic != topics.signal_state:
            return False
        state = decode(SignalState, item.payload)
        east = next(group for group in state.groups if group.signal_group == "4")
        return east.indication == "green" and any(service.phase == "preempt_dwell" for service in state.priority)

    # Start-up all-red (about 2 s), then the entry straight to the east stage.
    _wait_for(observer, "east green in preemption dwell", east_green_in_dwell)
    active = _wait_for(observer, "active status", _status(topics, "run-1", PriorityStatusKind.ACTIVE))
    assert decode(PriorityStatus, active.payload).reason_code is PriorityReason.PREEMPTION_DWELL

    # Check-out ends it.
    done = signed_request(
        ambulance,
        site.unit_id,
        topics.priority_request,
        PriorityKind.EMERGENCY,
        "run-1",
        time.time(),
        action=PriorityAction.CHECK_OUT,
    )
    observer.publish(done.topic, done.payload, qos=1, user_properties=done.user_properties)
    ended = _wait_for(observer, "end", _status(topics, "run-1", PriorityStatusKind.ENDED))
    assert decode(PriorityStatus, ended.payload).reason_code is PriorityReason.CHECKED_OUT


def test_the_cli_sends_a_signed_request_and_prints_the_answer(
    site_path: Path, running_controller: Topics, observer: MqttBus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rsu_cli import main

    _wait_for(observer, "signal state", lambda item: item.topic == running_controller.signal_state)
    site = load_site_config(site_path)
    unit_public_key = unit_key_paths(site, site_path)[1]
    common = ["priority", "request", "--site", str(site_path), "--requester-id", "ambulance-7"]
    ambulance = ["--key", str(tmp_path / "ambulance.pem"), "--kind", "emergency", "--approach", "north"]
    code = main([*common, *ambulance, "--arrival-in-s", "20", "--unit-key", str(unit_public_key)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "accepted (ok, verified): preemption for signal group 2 checked in" in out
    # Not allowed to ask for transit priority.
    code = main([*common, "--key", str(tmp_path / "ambulance.pem"), "--kind", "transit", "--signal-group", "4"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "rejected (wrong_kind, unverified): requester 'ambulance-7' may ask for emergency, not transit" in out
    # Signed with a key that is not on the allow-list.
    code = main([*common, "--key", str(tmp_path / "thief.pem"), "--kind", "emergency", "--approach", "east"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "rejected (unknown_requester" in out
