"""Warning quality on synthetic trajectories: what must warn and, as important, what must not.

Sample junction (see test_conflicts.py): north approach southbound along x = -4.8 (through/right,
group 2) and x = -1.6 (left, group 5), stop line y = 12.14; south approach northbound along x = 4.8
(group 6) and x = 1.6 (left, group 1), stop line y = -12.14; west approach eastbound along
y = -4.8 (group 8), stop line x = -12.14; east approach westbound along y = 4.8 (group 4) and
y = 1.6 (left, group 7), stop line x = 12.14. Crosswalk cw_north spans y 8.14..12.14 (group
p_north), cw_west spans x -12.14..-8.14 (group p_west).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rsu_contracts.config.model import SiteConfig, WarningConfig
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages.perception import TrackedObject
from rsu_contracts.messages.signal import Indication, SignalState
from rsu_contracts.messages.warnings import Severity, WarningKind, WarningStatus
from tests.v2x.builders import EAST, NORTH, NOW_S, SOUTH, signal_state, track
from v2x.conflicts import Conflict, ConflictDetector, MotionHint, find_conflicts
from v2x.warnings import WarningTracker

CONFIG = WarningConfig()
PED, BIKE, TRUCK = RoadUserType.PEDESTRIAN, RoadUserType.BICYCLE, RoadUserType.TRUCK
N_THROUGH, N_LEFT = "north_through_right", "north_left"
S_THROUGH, S_LEFT = "south_through_right", "south_left"
W_THROUGH, E_LEFT = "west_through_right", "east_left"
STEP_S = 0.1


def conflicts(
    site: SiteConfig,
    *tracks: TrackedObject,
    signal: SignalState | None = None,
    hints: dict[int, MotionHint] | None = None,
) -> list[Conflict]:
    return find_conflicts(list(tracks), signal, site, CONFIG, NOW_S, hints=hints)


def kinds(found: list[Conflict]) -> list[WarningKind]:
    return [c.kind for c in found]


# --- rear-end ------------------------------------------------------------------------------------


def test_approaching_a_stopped_queue_warns_only_when_comfortable_braking_no_longer_suffices(
    sample_site: SiteConfig,
) -> None:
    queue = [track(10 + n, -4.8, 16.0 + 7.0 * n, 0.0, SOUTH, lane_id=N_THROUGH) for n in range(3)]
    last = queue[-1].y_m
    # 13.9 m/s, 40 m bumper gap to the end of the queue: TTC 2.9 s but 2.4 m/s² stops it.
    far = track(1, -4.8, last + 44.5, 13.9, SOUTH, lane_id=N_THROUGH)
    assert conflicts(sample_site, far, *queue) == []
    # 25 m gap: 3.9 m/s² needed, TTC 1.8 s.
    near = track(1, -4.8, last + 29.5, 13.9, SOUTH, lane_id=N_THROUGH)
    [conflict] = conflicts(sample_site, near, *queue)
    assert conflict.kind is WarningKind.REAR_END
    assert conflict.required_deceleration_mps2 == pytest.approx(13.9**2 / 50.0)
    assert conflict.ttc_s == pytest.approx(25.0 / 13.9)


def test_no_warning_for_queue_discharge_at_a_green(sample_site: SiteConfig) -> None:
    green = signal_state(NOW_S, g2=(Indication.GREEN, 20.0))
    leader = track(1, -4.8, 13.0, 2.5, SOUTH, acceleration_mps2=2.0, lane_id=N_THROUGH)
    follower = track(2, -4.8, 20.0, 3.5, SOUTH, acceleration_mps2=2.0, lane_id=N_THROUGH)
    third = track(3, -4.8, 27.5, 2.0, SOUTH, acceleration_mps2=2.5, lane_id=N_THROUGH)
    assert conflicts(sample_site, leader, follower, third, signal=green) == []


def test_no_warning_for_a_vehicle_following_a_slow_turner_it_can_brake_for(sample_site: SiteConfig) -> None:
    # A right turner creeping in the junction (waiting for pedestrians) with the next car closing
    # in from its lane: judged as rear-end along the follower's path, 2 m/s² suffices.
    turner = track(1, -6.4, 7.9, 1.1, 218.0, acceleration_mps2=-2.9)
    follower = track(2, -4.8, 15.9, 3.9, 177.0, lane_id=N_THROUGH)
    hints = {1: MotionHint(origin_lane_id=N_THROUGH)}
    assert conflicts(sample_site, turner, follower, hints=hints) == []


# --- crossing ------------------------------------------------------------------------------------


def test_red_light_runner_warns_traffic_starting_on_green(sample_site: SiteConfig) -> None:
    # The runner crossed the west stop line on red and is in the junction at 14 m/s; a car pulling
    # away from the south stop line on green would reach the runner's path just after it passes
    # (PET 0.25 s). It could easily stop, but it does not expect anyone there.
    signal = signal_state(NOW_S, g8=(Indication.RED, 10.0), g6=(Indication.GREEN, 10.0))
    runner = track(1, -11.0, -4.8, 14.0, EAST)
    starter = track(2, 4.8, -13.0, 2.0, NORTH, acceleration_mps2=1.0, lane_id=S_THROUGH)
    ran_red = {1: MotionHint(entered_on_red=True, origin_lane_id=W_THROUGH)}
    [conflict] = conflicts(sample_site, runner, starter, signal=signal, hints=ran_red)
    assert conflict.kind is WarningKind.CROSSING
    assert conflict.signal_violation
    assert conflict.pet_s is not None and 0.0 < conflict.pet_s < CONFIG.pet_threshold_s
    assert (conflict.conflict_x_m, conflict.conflict_y_m) == pytest.approx((4.8, -4.8), abs=0.2)
    # The same pair when the runner had a green: a near miss nobody has to brake for.
    legal = {1: MotionHint(origin_lane_id=W_THROUGH)}
    assert conflicts(sample_site, runner, starter, signal=signal, hints=legal) == []


def test_no_warning_between_movements_the_signal_releases_together(sample_site: SiteConfig) -> None:
    # Opposing protected left turners (groups 1 and 5) pulling into the junction head to head:
    # their straight-line predictions meet, their movements do not.
    north_left = track(1, -0.8, 6.6, 5.4, 176.0, acceleration_mps2=2.3)
    south_left = track(2, 0.8, -7.2, 4.7, 350.0, acceleration_mps2=1.5)
    hints = {1: MotionHint(origin_lane_id=N_LEFT), 2: MotionHint(origin_lane_id=S_LEFT)}
    assert conflicts(sample_site, north_left, south_left, hints=hints) == []


def test_no_warning_for_opposing_traffic_in_adjacent_lanes_with_noisy_headings(sample_site: SiteConfig) -> None:
    # Exiting southbound at x = -1.6, approaching northbound at x = 1.6, 47 m apart: 2° of heading
    # noise each way would make their straight paths meet; the road's two sides keep them apart.
    exiting = track(1, -1.6, -24.4, 12.2, 178.0)
    approaching = track(2, 1.6, -71.8, 12.7, 1.0, lane_id=S_LEFT)
    assert conflicts(sample_site, exiting, approaching) == []


def test_no_warning_for_a_right_turner_swinging_past_the_queue_on_the_cross_street(
    sample_site: SiteConfig,
) -> None:
    # Turning right from the south approach into the east leg at 7 m/s while a truck waits at the
    # east stop line on the far side of that leg: straight ahead of the turner, not on its arc.
    turner = track(1, 8.2, -5.4, 7.2, 34.0, acceleration_mps2=-2.6)
    truck = track(2, 18.1, 1.6, 0.1, 280.0, road_user=TRUCK, lane_id=E_LEFT)
    hints = {1: MotionHint(origin_lane_id=S_THROUGH)}
    assert conflicts(sample_site, turner, truck, hints=hints) == []


# --- vulnerable road users -----------------------------------------------------------------------


def test_no_warning_for_a_right_turner_yielding_at_walking_pace(sample_site: SiteConfig) -> None:
    # Pedestrians cross the west leg on walk right in front of a right turner rolling at 2 m/s.
    walk = signal_state(NOW_S, g2=(Indication.GREEN, 20.0), gp_west=(Indication.GREEN, 10.0))
    turner = track(1, -6.0, 9.5, 2.0, 215.0)  # front bumper 0.8 m short of the crosswalk
    pedestrians = [track(10 + n, -10.0, 6.5 - 1.2 * n, 1.3, NORTH, road_user=PED) for n in range(3)]
    hints = {1: MotionHint(origin_lane_id=N_THROUGH)}
    assert conflicts(sample_site, turner, *pedestrians, signal=walk, hints=hints) == []


def test_fast_vehicle_onto_a_pedestrian_on_walk_warns(sample_site: SiteConfig) -> None:
    # A pedestrian on walk in the middle of the north crosswalk (y = 10) stepping into the through
    # lane; a car on green 12 m away at 10 m/s needs 5.6 m/s² to stop short of them.
    walk = signal_state(NOW_S, g2=(Indication.GREEN, 20.0), gp_north=(Indication.GREEN, 10.0))
    car = track(1, -4.8, 22.0, 10.0, SOUTH, lane_id=N_THROUGH)
    pedestrian = track(9, -5.8, 10.0, 1.2, EAST, road_user=PED)
    [conflict] = conflicts(sample_site, car, pedestrian, signal=walk)
    assert conflict.kind is WarningKind.VULNERABLE_ROAD_USER
    assert not conflict.signal_violation
    assert conflict.required_deceleration_mps2 is not None
    assert conflict.required_deceleration_mps2 > CONFIG.drac_threshold_mps2
    assert conflict.severity is Severity.CRITICAL


def test_no_warning_for_pedestrians_waiting_at_the_corner(sample_site: SiteConfig) -> None:
    # The corner at the end of the north crosswalk, on the edge of its polygon but on the kerb;
    # tracked pedestrians there shuffle and point anywhere.
    red_walk = signal_state(NOW_S, g2=(Indication.GREEN, 20.0), gp_north=(Indication.RED, 20.0))
    car = track(1, -4.9, 27.1, 12.5, SOUTH, lane_id=N_THROUGH)
    waiting = [
        track(9, -6.3, 9.2, 0.4, EAST, road_user=PED),
        track(8, -6.5, 10.1, 0.3, 332.0, road_user=PED),
    ]
    assert conflicts(sample_site, car, *waiting, signal=red_walk) == []


def test_no_warning_for_a_pedestrian_on_the_crosswalk_in_front_of_a_car_stopping_at_red(
    sample_site: SiteConfig,
) -> None:
    # The car will stop at its red stop line (2.6 m/s² suffices) next to the crosswalk; a tracked
    # heading pointing 11° off the crosswalk would walk the pedestrian into its bumper.
    signal = signal_state(NOW_S, g5=(Indication.RED, 20.0), gp_north=(Indication.GREEN, 10.0))
    car = track(1, -1.5, 34.4, 13.8, SOUTH, lane_id=N_LEFT)
    pedestrian = track(9, 1.6, 11.9, 1.2, 281.0, road_user=PED)
    assert conflicts(sample_site, car, pedestrian, signal=signal) == []


def test_pedestrian_standing_in_the_lane_against_the_red_warns(sample_site: SiteConfig) -> None:
    # A jaywalker stopped in the through lane on the crosswalk; a car with green 2.5 s away could
    # still stop comfortably, but a green does not tell its driver to expect anyone there.
    signal = signal_state(NOW_S, g2=(Indication.GREEN, 20.0), gp_north=(Indication.RED, 20.0))
    car = track(1, -4.8, 37.0, 10.0, SOUTH, lane_id=N_THROUGH)
    jaywalker = track(9, -4.8, 10.0, 0.0, EAST, road_user=PED)
    [conflict] = conflicts(sample_site, car, jaywalker, signal=signal)
    assert conflict.kind is WarningKind.VULNERABLE_ROAD_USER
    assert conflict.signal_violation
    walk = signal_state(NOW_S, g2=(Indication.GREEN, 20.0), gp_north=(Indication.GREEN, 20.0))
    assert conflicts(sample_site, car, jaywalker, signal=walk) == []


# --- over time: red-light runners, blocked junction, one warning per conflict ---------------------


def drive(
    detector: ConflictDetector, frames: Iterator[tuple[list[TrackedObject], SignalState]]
) -> list[tuple[float, list[Conflict]]]:
    found = []
    for n, (tracks, signal) in enumerate(frames):
        now = NOW_S + n * STEP_S
        found.append((now, detector.update(tracks, signal, now)))
    return found


def test_vehicle_crossing_its_stop_line_on_red_is_a_violation(sample_site: SiteConfig) -> None:
    detector = ConflictDetector(sample_site, CONFIG)
    red = signal_state(NOW_S, g2=(Indication.RED, 30.0))

    def frames() -> Iterator[tuple[list[TrackedObject], SignalState]]:
        for n in range(30):
            y = 40.0 - 1.4 * n  # 14 m/s southbound, never braking
            lane = N_THROUGH if y > 12.14 else None
            yield [track(7, -4.8, y, 14.0, SOUTH, lane_id=lane)], red

    history = drive(detector, frames())
    violations = [(t, c) for t, found in history for c in found if c.kind is WarningKind.RED_LIGHT_VIOLATION]
    assert violations, "the runner was not reported"
    first_time, first = violations[0]
    assert first.severity is Severity.CRITICAL and first.ttc_s == 0.0
    assert first.signal_violation
    # Reported from the frame it crossed (y 40 - 1.4 n <= 12.14 from n = 20) while in the junction.
    assert first_time == pytest.approx(NOW_S + 20 * STEP_S)


def test_a_stopped_car_jittering_over_its_stop_line_is_no_violation(sample_site: SiteConfig) -> None:
    detector = ConflictDetector(sample_site, CONFIG)
    red = signal_state(NOW_S, g2=(Indication.RED, 30.0))

    def frames() -> Iterator[tuple[list[TrackedObject], SignalState]]:
        for n in range(40):
            lane = None if n % 3 == 0 else N_THROUGH  # the tracked centre hops across the line
            yield [track(7, -4.8, 14.3, 0.3, SOUTH, lane_id=lane)], red

    assert all(found == [] for _, found in drive(detector, frames()))


def test_vehicle_stopped_in_the_junction_box(sample_site: SiteConfig) -> None:
    detector = ConflictDetector(sample_site, CONFIG)
    signal = signal_state(NOW_S, g2=(Indication.GREEN, 30.0))
    waiting_s = CONFIG.stopped_in_junction_s

    def frames() -> Iterator[tuple[list[TrackedObject], SignalState]]:
        for _ in range(int((waiting_s + 3.0) / STEP_S)):
            blocker = track(3, -2.0, 0.5, 0.2, SOUTH)  # in the box, standing
            queued = track(4, -4.8, 16.0, 0.0, SOUTH, lane_id=N_THROUGH)  # waiting before its line
            yield [blocker, queued], signal
        for _ in range(5):
            yield [track(3, -2.0, -3.0, 6.0, SOUTH), track(4, -4.8, 16.0, 0.0, SOUTH, lane_id=N_THROUGH)], signal

    history = drive(detector, frames())
    stopped = [(t, c) for t, found in history for c in found if c.kind is WarningKind.STOPPED_IN_JUNCTION]
    assert stopped
    assert {c.participants[0].track_id for _, c in stopped} == {3}
    assert stopped[0][0] - NOW_S == pytest.approx(waiting_s, abs=STEP_S + 1e-6)
    assert stopped[0][1].ttc_s is None
    assert all(c.kind is not WarningKind.STOPPED_IN_JUNCTION for c in history[-1][1])  # moved on


def test_a_left_waiting_in_the_box_for_a_gap_under_its_arrow_is_no_blocked_junction(sample_site: SiteConfig) -> None:
    # A south-approach left (group 1, permissive with 2) pulls into the box and waits for a gap
    # while its arrow flashes: no warning. Still standing there once its signal is red, it is one.
    detector = ConflictDetector(sample_site, CONFIG)
    arrow = signal_state(NOW_S, g1=(Indication.FLASHING_YELLOW, 60.0), g2=(Indication.GREEN, 60.0))
    red = signal_state(NOW_S, g1=(Indication.RED, 60.0), g2=(Indication.RED, 60.0), g4=(Indication.GREEN, 30.0))
    waiting_s = CONFIG.stopped_in_junction_s

    def frames() -> Iterator[tuple[list[TrackedObject], SignalState]]:
        for n in range(10):
            yield [track(5, 1.6, -16.0 + n * 0.4, 4.0, NORTH, lane_id=S_LEFT)], arrow
        for _ in range(int((waiting_s + 3.0) / STEP_S)):
            yield [track(5, 1.4, -3.0, 0.1, NORTH)], arrow
        for _ in range(int((waiting_s + 1.0) / STEP_S)):
            yield [track(5, 1.4, -3.0, 0.1, NORTH)], red

    history = drive(detector, frames())
    stopped = [t for t, found in history for c in found if c.kind is WarningKind.STOPPED_IN_JUNCTION]
    red_from_s = NOW_S + (10 + int((waiting_s + 3.0) / STEP_S)) * STEP_S
    assert stopped, "a left still standing in the box at red is a blocked junction"
    assert min(stopped) >= red_from_s + waiting_s - STEP_S - 1e-6


def test_a_jaywalker_crossing_in_front_of_a_car_gives_one_warning_with_an_end(sample_site: SiteConfig) -> None:
    detector = ConflictDetector(sample_site, CONFIG)
    tracker = WarningTracker(CONFIG, sample_site.reference)
    signal = signal_state(NOW_S, g2=(Indication.GREEN, 30.0), gp_north=(Indication.RED, 30.0))
    events = []
    for n in range(80):
        t = n * STEP_S
        # The car brakes gently (2 m/s²) from 1 s on, once it has seen the pedestrian, who crosses.
        braking_s = min(max(0.0, t - 1.0), 5.0)
        speed = 10.0 - 2.0 * braking_s
        travelled = 10.0 * min(t, 1.0) + 10.0 * braking_s - braking_s**2
        car = track(1, -4.8, 40.0 - travelled, speed, SOUTH, acceleration_mps2=-2.0 if 0 < braking_s < 5 else 0.0)
        car = car.model_copy(update={"lane_id": N_THROUGH if car.y_m > 12.14 else None})
        pedestrian = track(9, -5.85 + 1.3 * t, 10.0, 1.3, EAST, road_user=PED)
        events += tracker.update(detector.update([car, pedestrian], signal, NOW_S + t), NOW_S + t)
    lifecycle = [e.status for e in events if e.status is not WarningStatus.UPDATE]
    assert lifecycle == [WarningStatus.NEW, WarningStatus.ENDED]
    assert {e.kind for e in events} == {WarningKind.VULNERABLE_ROAD_USER}
    assert len({e.warning_id for e in events}) == 1


def test_detector_memory_is_bounded_by_the_live_tracks(sample_site: SiteConfig) -> None:
    detector = ConflictDetector(sample_site, CONFIG)
    for n in range(200):
        detector.update([track(n, -4.8, 60.0, 10.0, SOUTH, lane_id=N_THROUGH)], None, NOW_S + n * STEP_S)
    assert detector.remembered_tracks == 1
    detector.update([], None, NOW_S + 1000.0)
    assert detector.remembered_tracks == 0


def test_cyclist_at_a_red_is_held_like_a_vehicle(sample_site: SiteConfig) -> None:
    # A cyclist rolling up to its red stop line stops there; cross traffic with green passes.
    signal = signal_state(NOW_S, g2=(Indication.RED, 20.0), g8=(Indication.GREEN, 20.0))
    cyclist = track(1, -4.8, 20.0, 4.0, SOUTH, road_user=BIKE, lane_id=N_THROUGH)
    car = track(2, -25.0, -4.8, 12.0, EAST, lane_id=W_THROUGH)
    assert conflicts(sample_site, cyclist, car, signal=signal) == []


def test_no_warning_for_a_turner_past_the_stop_line_of_a_car_waiting_on_the_leg_it_enters(
    sample_site: SiteConfig,
) -> None:
    # Turning right from the east approach into the north leg at 7 m/s, its nose pointing at a car
    # waiting at the north_left stop line: that car is on the other side of its own stop line.
    turner = track(1, 6.2, 7.1, 6.8, 294.0, acceleration_mps2=0.4)
    waiting = track(2, -1.4, 15.5, 0.1, 191.0, lane_id=N_LEFT)
    hints = {1: MotionHint(origin_lane_id="east_through_right")}
    assert conflicts(sample_site, turner, waiting, hints=hints) == []
