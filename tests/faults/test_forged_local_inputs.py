"""Issue 15's attacks on the unit's own broker, replayed: a second client writes the unit's local
topics while the controller and V2X stages run on the wall clock (as on a live unit).

The controller, V2X and uplink stages run (the uplink sends 2 s aggregates to a centre broker),
and every test ends with rsu_tools.testing.attack_checks.assert_withstood: no forged or stale
message signed, SPaT at its rate again within 1 s of the attack's end, no stage restart, no lost
aggregate interval, and the rejection counted per topic and reason (supervisor, health message,
/metrics) and logged by the stage without flooding.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from rsu.runtime.bus import MqttBus
from rsu.runtime.stage import RunOptions
from rsu.runtime.supervisor import Supervisor
from rsu.stages.unit_keys import unit_key_paths
from rsu.unit import CONTROLLER, UPLINK, V2X, Unit
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_contracts.config.model import MqttConfig, SignalGroupKind
from rsu_contracts.messages import (
    DetectorStates,
    Indication,
    LaneObservation,
    SignalGroupState,
    SignalState,
    Spat,
    TrackList,
    decode,
)
from rsu_contracts.messages.signal import ControllerMode
from rsu_contracts.topics import Topics
from rsu_tools.testing.attack_checks import (
    CountedElsewhere,
    Heard,
    StageRejection,
    UnitWatch,
    assert_withstood,
    stage_logs_to,
)
from rsu_tools.testing.mosquitto import EphemeralMosquitto
from rsu_tools.testing.redis_server import EphemeralRedis
from tests.conftest import REPO_ROOT
from tests.v2x.test_stage_output import conflicting_tracks
from v2x.signing import SEQ
from v2x.spat import PERMISSIVE_CLEARANCE, PERMISSIVE_MOVEMENT_ALLOWED, STOP_AND_REMAIN
from v2x.wire import MessageClass

pytestmark = pytest.mark.services

STARTUP_S = 90.0
# Marks the forged signal states' times, so a SPaT built from one would be recognised.
FORGED_LIKELY_OFFSET_S = 777.25
STOP_STATES = {STOP_AND_REMAIN, "stop-Then-Proceed"}


@dataclass
class RunningUnit:
    site: SiteConfig
    topics: Topics
    unit: Unit
    listener: MqttBus
    attacker: MqttBus
    # A vehicle's and the centre's view of the unit, for the checks after each attack.
    watch: UnitWatch
    stage_log: Path
    public_key: Path
    # Every sensor-sharing payload vehicles received (the unit re-broadcasts tracks there).
    shared_objects: list[bytes] = field(default_factory=list)

    @property
    def supervisor(self) -> Supervisor:
        return self.unit.supervisor

    def spats_for(self, seconds: float) -> list[tuple[float, Spat]]:
        """SPaTs received over the next `seconds` (arrival monotonic time, message), supervising meanwhile."""
        received: list[tuple[float, Spat]] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self.unit.tick()
            item = self.listener.get(timeout_s=min(remaining, 0.1))
            if item is not None and item.topic == self.topics.objects:
                self.shared_objects.append(item.payload)
            if item is not None and item.topic == self.topics.spat:
                assert item.user_properties, "every SPaT the unit sends is signed"
                received.append((item.received_monotonic_s, decode(Spat, item.payload)))
        return received

    def rejections(self, stage: str, topic: str, reason: str) -> int:
        # Reports reach the supervisor about once a second.
        deadline = time.monotonic() + 5.0
        count = 0
        while time.monotonic() < deadline:
            self.unit.tick()
            count = sum(
                entry.count
                for entry in self.supervisor.rejections()
                if (entry.stage, entry.topic, entry.reason) == (stage, topic, reason)
            )
            if count:
                return count
            time.sleep(0.2)
        return count

    def withstood(
        self,
        attack_started_s: float,
        attack_end_s: float,
        forged: Callable[[Heard], bool],
        *rejected: StageRejection,
        elsewhere: Sequence[CountedElsewhere] = (),
        replayed_payloads: Collection[bytes] = (),
    ) -> None:
        assert_withstood(
            self.watch,
            self.supervisor,
            tick=self.unit.tick,
            attack_started_s=attack_started_s,
            attack_end_s=attack_end_s,
            forged=forged,
            rejected=rejected,
            counted_elsewhere=elsewhere,
            log_path=self.stage_log,
            replayed_payloads=replayed_payloads,
        )


@pytest.fixture
def unit(
    tmp_path: Path, local_broker: EphemeralMosquitto, centre_broker: EphemeralMosquitto, unit_redis: EphemeralRedis
) -> Iterator[RunningUnit]:
    raw = yaml.safe_load((REPO_ROOT / "datasets" / "sample_intersection" / "site.yaml").read_text())
    raw["unit_id"] = f"rsu-forge-{uuid.uuid4().hex[:10]}"
    raw["mqtt"] = {"host": local_broker.host, "port": local_broker.port}
    raw["v2x"] = {"state_dir": str(tmp_path / "state")}
    raw["redis"] = {"url": unit_redis.url}
    centre = MqttConfig(host=centre_broker.host, port=centre_broker.port)
    raw["uplink"] = {"interval_s": 2.0, "mqtt": centre.model_dump(mode="json", exclude_defaults=True)}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw))
    site = load_site_config(path)
    topics = Topics.for_site(site)
    unit = Unit(path, RunOptions(realtime=True), [CONTROLLER, V2X, UPLINK])
    listener = MqttBus(site.mqtt, f"{site.unit_id}-vehicle")
    listener.subscribe(topics.spat)
    listener.subscribe(topics.objects)
    listener.connect()
    attacker = MqttBus(site.mqtt, f"intruder-{uuid.uuid4().hex[:6]}")
    attacker.connect()
    stage_log = tmp_path / "stages.log"
    with stage_logs_to(stage_log):
        unit.start()
    watch: UnitWatch | None = None
    try:
        deadline = time.monotonic() + STARTUP_S
        while not listener.drain():
            unit.tick()
            assert time.monotonic() < deadline, f"no SPaT within {STARTUP_S:.0f} s:\n{stage_log.read_text()[-2000:]}"
            time.sleep(0.1)
        public_key = unit_key_paths(site, path)[1]
        watch = UnitWatch(site, public_key, site.mqtt, centre, health_bus=site.mqtt).start()
        running = RunningUnit(site, topics, unit, listener, attacker, watch, stage_log, public_key)
        # The first aggregate interval reached the centre: the uplink is in its stride.
        wait_for(lambda: bool(running.spats_for(0.2)) and len(watch.seqs()) >= 1, STARTUP_S, "the first aggregate")
        yield running
    finally:
        unit.stop()
        if watch is not None:
            watch.close()
        listener.close()
        attacker.close()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
    pytest.fail(f"no {what} within {timeout_s:.0f} s")


def forged_state(site: SiteConfig, seq: int, greens: set[str]) -> SignalState:
    now = time.time()
    groups = [
        SignalGroupState(
            signal_group=group.id,
            indication=Indication.GREEN if group.id in greens else Indication.RED,
            since_s=now - 1.0,
            min_end_time_s=now + 5.0,
            max_end_time_s=now + 30.0,
            likely_time_s=now + FORGED_LIKELY_OFFSET_S,
        )
        for group in site.signal_groups
    ]
    return SignalState(
        unit_id=site.unit_id, seq=seq, capture_time_s=now, publish_time_s=now,
        mode=ControllerMode.NORMAL, strategy="actuated", groups=groups,
    )  # fmt: skip


def shows_conflict(site: SiteConfig, spat: Spat) -> bool:
    """Two conflicting groups both allowed to move, except a permissive left (flashing yellow arrow,
    or its permissive clearance) giving way to its permissive partner or to pedestrians."""
    shown = {movement.signal_group: movement.event_state for movement in spat.movements}
    partners = {group.id: group.permissive_with for group in site.signal_groups if group.permissive_with}
    pedestrians = {group.id for group in site.signal_groups if group.kind is SignalGroupKind.PEDESTRIAN}

    def gives_way(group: str, other: str) -> bool:
        permissive = shown.get(group) in (PERMISSIVE_MOVEMENT_ALLOWED, PERMISSIVE_CLEARANCE)
        return permissive and group in partners and (other == partners[group] or other in pedestrians)

    return any(
        shown.get(a) not in STOP_STATES and shown.get(b) not in STOP_STATES and not (gives_way(a, b) or gives_way(b, a))
        for a, b in site.conflicts
    )


def forged_spat(site: SiteConfig) -> Callable[[Heard], bool]:
    """A SPaT built from a forged signal state: its marked likely time, or greens in conflict."""

    def forged(heard: Heard) -> bool:
        spat = heard.message
        return isinstance(spat, Spat) and (
            any(movement.likely_time_s - spat.capture_time_s > 700 for movement in spat.movements)
            or shows_conflict(site, spat)
        )

    return forged


def from_tracks(heard: Heard) -> bool:
    # No perception stage runs here: every warning and shared object comes from the attacker's tracks.
    return heard.message_class is not MessageClass.SPAT


def nothing_forged(heard: Heard) -> bool:
    del heard
    return False


def assert_spat_at_rate_after(spats: list[tuple[float, Spat]], attack_end_s: float, rate_hz: float) -> None:
    after = [arrived for arrived, _ in spats if arrived > attack_end_s]
    assert after, "no SPaT after the attack"
    assert after[0] - attack_end_s < 1.0, f"first SPaT {after[0] - attack_end_s:.2f} s after the attack's end"
    window = [arrived for arrived in after if arrived < attack_end_s + 2.0]
    assert len(window) >= 0.6 * 2.0 * rate_hz, f"{len(window)} SPaTs in the 2 s after the attack"


def test_forged_conflicting_signal_states_produce_no_signed_spat(unit: RunningUnit) -> None:
    site = unit.site
    spats: list[tuple[float, Spat]] = []
    attack_started_s = time.monotonic()
    for seq in range(30):  # 30 forged states at 10 Hz, interleaved with the controller's genuine ones
        unit.attacker.publish(
            unit.topics.signal_state, forged_state(site, 10_000 + seq, {"2", "4", "6", "8"}).to_json()
        )
        spats += unit.spats_for(0.1)
    attack_end_s = time.monotonic()
    spats += unit.spats_for(2.5)
    forged = [
        spat
        for _, spat in spats
        if any(movement.likely_time_s - spat.capture_time_s > 700 for movement in spat.movements)
    ]
    assert forged == [], "a SPaT was signed from a forged signal state"
    assert not any(shows_conflict(site, spat) for _, spat in spats)
    # The genuine controller's SPaT kept going during the attack and goes on after it.
    assert len([arrived for arrived, _ in spats if arrived <= attack_end_s]) >= 10
    assert_spat_at_rate_after(spats, attack_end_s, site.v2x.spat_rate_hz)
    assert unit.rejections("v2x", unit.topics.signal_state, "conflicting_greens") >= 1
    assert any("conflicting" in problem for problem in unit.supervisor.input_problems())
    unit.withstood(
        attack_started_s,
        attack_end_s,
        forged_spat(site),
        StageRejection("v2x", unit.topics.signal_state, "conflicting_greens"),
    )


def test_a_40000_object_track_list_is_rejected_without_a_stage_restart(unit: RunningUnit) -> None:
    site = unit.site
    now = time.time()
    car = {"track_id": 1, "road_user": "car", "x_m": 1.0, "y_m": 2.0, "speed_mps": 10.0, "heading_deg": 0.0,
           "age_s": 1.0}  # fmt: skip
    huge = {
        "schema_name": TrackList.SCHEMA, "unit_id": site.unit_id, "seq": 1, "capture_time_s": now,
        "publish_time_s": now, "camera_id": site.cameras[0].id,
        "objects": [car | {"track_id": k, "x_m": (k % 200) * 0.5} for k in range(40_000)],
    }  # fmt: skip
    payload = json.dumps(huge).encode()
    assert len(payload) > 4_000_000
    attack_started_s = time.monotonic()
    unit.attacker.publish(unit.topics.tracks, payload)
    attack_end_s = time.monotonic()
    unit.spats_for(1.0)
    assert unit.rejections("v2x", unit.topics.tracks, "invalid") == 1
    unit.withstood(attack_started_s, attack_end_s, from_tracks, StageRejection("v2x", unit.topics.tracks, "invalid"))


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_tracks_at_non_finite_speed_are_not_rebroadcast(unit: RunningUnit, value: str) -> None:
    site = unit.site
    now = time.time()
    forged = {
        "schema_name": TrackList.SCHEMA, "unit_id": site.unit_id, "seq": 1, "capture_time_s": now,
        "publish_time_s": now, "camera_id": site.cameras[0].id,
        "objects": [{"track_id": 4242, "road_user": "car", "x_m": 1.0, "y_m": 2.0, "speed_mps": 0.0,
                     "heading_deg": 0.0, "age_s": 1.0}],
    }  # fmt: skip
    payload = json.dumps(forged).replace('"speed_mps": 0.0', f'"speed_mps": {value}')
    assert value in payload
    attack_started_s = time.monotonic()
    unit.attacker.publish(unit.topics.tracks, payload.encode())
    attack_end_s = time.monotonic()
    unit.spats_for(2.0)
    assert not [shared for shared in unit.shared_objects if b"4242" in shared], "a forged track was re-broadcast"
    assert unit.rejections("v2x", unit.topics.tracks, "invalid") == 1
    unit.withstood(attack_started_s, attack_end_s, from_tracks, StageRejection("v2x", unit.topics.tracks, "invalid"))


def test_a_future_stamped_detector_state_does_not_freeze_the_controller(unit: RunningUnit) -> None:
    site = unit.site
    states = MqttBus(site.mqtt, f"{site.unit_id}-state-watch")
    states.subscribe(unit.topics.signal_state)
    states.connect()
    try:

        def detectors(capture_s: float, seq: int) -> bytes:
            lanes = [
                LaneObservation(
                    lane_id=lane.id,
                    stop_bar_occupied=False,
                    queue_length_m=0.0,
                    queued_vehicles=0,
                    approaching_vehicles=0,
                    stop_bar_gap_s=5.0,
                )
                for lane in site.lanes
            ]
            return DetectorStates(
                unit_id=site.unit_id, seq=seq, capture_time_s=capture_s, publish_time_s=capture_s,
                camera_id=site.cameras[0].id, valid=True, lanes=lanes,
            ).to_json()  # fmt: skip

        # A state 10 s old (replayed from a capture) is dropped as stale.
        attack_started_s = time.monotonic()
        unit.attacker.publish(unit.topics.detectors, detectors(time.time() - 10.0, 0))
        unit.spats_for(0.3)
        assert unit.rejections("controller", unit.topics.detectors, "stale") == 1
        unit.attacker.publish(unit.topics.detectors, detectors(time.time() + 1e6, 1))
        attack_end_s = time.monotonic()
        # Alone in the controller's next drain (in a backlog with a newer genuine state it would only
        # be superseded, never acted on either).
        unit.spats_for(0.3)
        # Genuine detector states at 10 Hz afterwards: the controller must decide on them.
        genuine: list[float] = []
        for seq in range(2, 32):
            capture_s = time.time()
            genuine.append(capture_s)
            unit.attacker.publish(unit.topics.detectors, detectors(capture_s, seq))
            unit.spats_for(0.1)
        captures = [decode(SignalState, item.payload).capture_time_s for item in states.drain()]
        assert captures, "the controller published no signal state"
        assert max(captures) < time.time() + 1.0, "the controller adopted the future-stamped picture"
        # Its later decisions were made on the genuine states (their capture times), not on recall.
        assert set(captures[-10:]) <= set(genuine), "the controller stopped using the genuine detector states"
        assert unit.rejections("controller", unit.topics.detectors, "future") == 1
        # The uplink ignores the two forged states as well: their intervals still reach the centre.
        unit.withstood(
            attack_started_s,
            attack_end_s,
            nothing_forged,
            StageRejection("controller", unit.topics.detectors, "stale"),
            StageRejection("controller", unit.topics.detectors, "future"),
        )
    finally:
        states.close()


def test_a_burst_of_track_lists_leaves_spat_fresh_and_at_its_rate(unit: RunningUnit) -> None:
    site = unit.site
    objects = [
        {
            "track_id": k,
            "road_user": "car",
            "x_m": -60.0 + k,
            "y_m": 40.0,
            "speed_mps": 8.0,
            "heading_deg": 90.0,
            "age_s": 2.0,
        }
        for k in range(80)
    ]
    header = {"schema_name": TrackList.SCHEMA, "unit_id": site.unit_id, "camera_id": site.cameras[0].id}
    start_s = attack_started_s = time.monotonic()
    for seq in range(2_000):
        now = time.time()
        payload = header | {"seq": seq, "capture_time_s": now, "publish_time_s": now, "objects": objects}
        unit.attacker.publish(unit.topics.tracks, json.dumps(payload).encode())
    attack_end_s = time.monotonic()
    spats = unit.spats_for(3.0)
    assert_spat_at_rate_after(spats, attack_end_s, site.v2x.spat_rate_hz)
    # Nothing queued was signed late: each SPaT was signed just before it arrived.
    lags = [time.time() - (time.monotonic() - arrived) - spat.publish_time_s for arrived, spat in spats]
    assert max(lags) < 0.5, f"a SPaT arrived {max(lags):.2f} s after it was signed"
    assert unit.rejections("v2x", unit.topics.tracks, "superseded") > 0, (
        f"the burst took {attack_end_s - start_s:.2f} s and never backed up"
    )
    # The burst's tracks are well-formed and fresh (not forged content): what matters is that
    # nothing was signed late, which the checks measure on every message heard.
    unit.withstood(
        attack_started_s, attack_end_s, nothing_forged, StageRejection("v2x", unit.topics.tracks, "superseded")
    )


def test_absurd_queue_values_are_refused_and_lose_no_aggregate_interval(unit: RunningUnit) -> None:
    # The field report: an infinite queue and queued_vehicles = 1e20 made an aggregate the centre
    # rejected, losing that whole interval.
    site = unit.site
    lane = site.lanes[0].id
    attack_started_s = time.monotonic()
    for seq, (field_name, value) in enumerate((("queue_length_m", "Infinity"), ("queued_vehicles", "1e20"))):
        now = time.time()
        lanes = [
            {"lane_id": lane, "stop_bar_occupied": True, "queue_length_m": 12.0, "queued_vehicles": 2,
             "approaching_vehicles": 1, "stop_bar_gap_s": 1.0},
        ]  # fmt: skip
        document = {
            "schema_name": DetectorStates.SCHEMA, "unit_id": site.unit_id, "seq": seq, "capture_time_s": now,
            "publish_time_s": now, "camera_id": site.cameras[0].id, "valid": True, "lanes": lanes,
        }  # fmt: skip
        genuine_value = json.dumps(lanes[0][field_name])
        payload = json.dumps(document).replace(f'"{field_name}": {genuine_value}', f'"{field_name}": {value}')
        assert value in payload
        unit.attacker.publish(unit.topics.detectors, payload.encode())
        unit.spats_for(0.3)
    attack_end_s = time.monotonic()
    unit.withstood(
        attack_started_s,
        attack_end_s,
        nothing_forged,
        StageRejection("controller", unit.topics.detectors, "invalid"),
        StageRejection("uplink", unit.topics.detectors, "invalid"),
    )


def test_a_genuine_old_spat_and_warning_replayed_as_retained_are_not_shown_as_verified(unit: RunningUnit) -> None:
    # The field report: a genuine SPaT 33 s old and a warning 49 s old, re-published as retained,
    # were printed as verified by a fresh `rsu vehicle listen`. Here they are a few seconds old,
    # already past the SDK's freshness window; the retained flag must not widen it.
    site, topics = unit.site, unit.topics
    recorder = MqttBus(site.mqtt, f"{site.unit_id}-recorder")
    recorder.subscribe(topics.spat)
    recorder.subscribe(topics.warnings)
    recorder.connect()
    try:
        # A genuine critical warning: on this open bus the unit cannot tell these tracks from its
        # perception's (the secured bus is what keeps others from writing them).
        for _ in range(5):
            unit.attacker.publish(topics.tracks, conflicting_tracks(site, time.time()).to_json())
            unit.spats_for(0.1)
        unit.spats_for(0.5)
        recorded = {item.topic: item for item in reversed(recorder.drain()) if item.user_properties}
    finally:
        recorder.close()
    assert set(recorded) == {topics.spat, topics.warnings}, "the unit sent no signed SPaT or warning to replay"
    unit.spats_for(4.0)  # now a few seconds old
    seqs = {topic: dict(item.user_properties)[SEQ] for topic, item in recorded.items()}
    attack_started_s = time.monotonic()
    for item in recorded.values():
        unit.attacker.publish(
            item.topic, item.payload, qos=1, retain=True, user_properties=list(item.user_properties)
        ).wait_for_publish(2.0)
    attack_end_s = time.monotonic()
    try:
        listen = subprocess.run(
            [sys.executable, "-m", "rsu_cli", "vehicle", "listen", "--unit", site.unit_id,
             "--key", str(unit.public_key), "--host", site.mqtt.host, "--port", str(site.mqtt.port),
             "--timeout-s", "3"],
            capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )  # fmt: skip
    finally:
        for item in recorded.values():  # clear what the attacker left retained
            unit.attacker.publish(item.topic, b"", qos=1, retain=True).wait_for_publish(2.0)
    printed = listen.stdout.splitlines()
    assert any(" spat seq=" in line for line in printed), f"the live SPaT was not shown:\n{listen.stderr}"
    replayed_lines = [
        line
        for line in printed
        if f" spat seq={seqs[topics.spat]} " in line or f" warnings seq={seqs[topics.warnings]} " in line
    ]
    assert replayed_lines == [], "a replayed retained message was printed as verified"
    refused = [
        line
        for line in listen.stderr.splitlines()
        if line.startswith("rejected ") and "flagged retained by the broker but not signed as retained" in line
    ]
    assert {line.split()[1].rstrip(":") for line in refused} == {topics.spat, topics.warnings}, listen.stderr
    unit.withstood(
        attack_started_s,
        attack_end_s,
        nothing_forged,
        elsewhere=[CountedElsewhere("replayed retained messages `rsu vehicle listen` refused", 2, refused)],
        replayed_payloads={item.payload for item in recorded.values()},
    )
