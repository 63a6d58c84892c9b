"""Conflict detection on synthetic trajectories in the sample junction.

Sample geometry: the north approach runs south (heading 180°) along x = -4.8 (through/right, group 2)
and x = -1.6 (left, group 5); red-light cases place cars relative to the lane's stop line as the
site file defines it. Cars are 4.5 m long.

Defaults (WarningConfig): warning TTC < 3.0 s, critical < 1.5 s, and a pair only warns when the road
user who has to act needs more than 3.4 m/s² (DRAC) to avoid it, unless a participant violates its
signal. More must-warn / must-not-warn cases in test_warning_quality.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pytest

from rsu_contracts.config.model import SiteConfig, WarningConfig
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages.perception import TrackedObject
from rsu_contracts.messages.signal import Indication, SignalState
from rsu_contracts.messages.warnings import Severity, WarningKind
from tests.v2x.builders import EAST, NORTH, NOW_S, SOUTH, WEST, signal_state, track
from v2x.conflicts import Conflict, find_conflicts
from v2x.prediction import MotionModel

CONFIG = WarningConfig()  # warning < 3.0 s, critical < 1.5 s, horizon 4 s, radius 2 m, DRAC > 3.4 m/s²
PED, BIKE = RoadUserType.PEDESTRIAN, RoadUserType.BICYCLE
THROUGH, LEFT = "north_through_right", "north_left"


class ConflictsOf(Protocol):
    def __call__(
        self, *tracks: TrackedObject, signal: SignalState | None = None, model: MotionModel = ...
    ) -> list[Conflict]: ...


@pytest.fixture
def conflicts_of(sample_site: SiteConfig) -> ConflictsOf:
    def run(
        *tracks: TrackedObject,
        signal: SignalState | None = None,
        model: MotionModel = MotionModel.CONSTANT_ACCELERATION,
    ) -> list[Conflict]:
        return find_conflicts(list(tracks), signal, sample_site, CONFIG, NOW_S, model)

    return run


@dataclass(frozen=True)
class Approaching:
    """Makes southbound cars in the north through lane at a distance from its stop line."""

    stop_line: tuple[float, float]

    def __call__(
        self, front_to_line_m: float, speed_mps: float = 13.9, acceleration_mps2: float = 0.0
    ) -> TrackedObject:
        x, y = self.stop_line[0], self.stop_line[1] + front_to_line_m + 2.25  # centre is half a car behind
        return track(1, x, y, speed_mps, SOUTH, acceleration_mps2=acceleration_mps2, lane_id=THROUGH)


@pytest.fixture
def approaching(sample_site: SiteConfig) -> Approaching:
    lane = next(lane for lane in sample_site.lanes if lane.id == THROUGH)
    return Approaching(lane.centerline_m[-1])


def only(conflicts: list[Conflict]) -> Conflict:
    assert len(conflicts) == 1, conflicts
    return conflicts[0]


# --- rear-end ----------------------------------------------------------------------------------


def test_rear_end_ttc_is_gap_over_closing_speed(conflicts_of: ConflictsOf) -> None:
    # Centres 32.5 m apart, bumper gap 28 m, closing at 14 m/s: TTC 2 s; DRAC 14² / 56 = 3.5 m/s².
    follower = track(1, -4.8, 52.5, 18.0, SOUTH, lane_id=THROUGH)
    leader = track(2, -4.8, 20.0, 4.0, SOUTH, lane_id=THROUGH)
    conflict = only(conflicts_of(follower, leader))
    assert conflict.kind is WarningKind.REAR_END
    assert conflict.severity is Severity.WARNING
    assert conflict.ttc_s == pytest.approx(2.0, abs=1e-6)
    assert conflict.required_deceleration_mps2 == pytest.approx(3.5)
    assert [p.track_id for p in conflict.participants] == [1, 2]
    # The leader's rear bumper when they meet: 20 - 4 * 2 + 2.25.
    assert (conflict.conflict_x_m, conflict.conflict_y_m) == pytest.approx((-4.8, 20.0 - 8.0 + 2.25))
    assert conflict.key == (WarningKind.REAR_END, (1, 2))


def test_rear_end_onto_a_stopped_vehicle_is_critical(conflicts_of: ConflictsOf) -> None:
    # Bumper gap 15.5 m at 14 m/s: TTC 1.107 s.
    conflict = only(
        conflicts_of(
            track(7, -4.8, 20.0, 0.0, SOUTH, lane_id=THROUGH), track(3, -4.8, 40.0, 14.0, SOUTH, lane_id=THROUGH)
        )
    )
    assert conflict.severity is Severity.CRITICAL
    assert conflict.ttc_s == pytest.approx(15.5 / 14.0, abs=1e-6)
    assert [p.track_id for p in conflict.participants] == [3, 7]  # follower first


def test_a_standing_vehicle_with_a_stale_heading_is_still_rear_ended(conflicts_of: ConflictsOf) -> None:
    stopped = track(2, -4.8, 20.0, 0.0, SOUTH + 60.0, lane_id=THROUGH)  # the tracker's heading is noise
    conflict = only(conflicts_of(stopped, track(1, -4.8, 40.0, 14.0, SOUTH, lane_id=THROUGH)))
    assert conflict.kind is WarningKind.REAR_END
    assert conflict.ttc_s == pytest.approx(15.5 / 14.0, abs=1e-6)
    assert [p.track_id for p in conflict.participants] == [1, 2]


def test_rear_end_without_lane_ids_uses_lateral_overlap(conflicts_of: ConflictsOf) -> None:
    conflict = only(conflicts_of(track(1, 30.0, 1.7, 13.0, WEST), track(2, 12.0, 2.0, 3.0, WEST + 5.0)))
    assert conflict.kind is WarningKind.REAR_END


def test_leader_braking_hard_at_equal_speed_warns(conflicts_of: ConflictsOf) -> None:
    # Same speed, bumper gap 10 m, leader brakes at 8 m/s²: the gap 10 - 4 t² closes at t = 1.58 s.
    follower = track(1, -4.8, 34.5, 14.0, SOUTH, lane_id=THROUGH)
    leader = track(2, -4.8, 20.0, 14.0, SOUTH, acceleration_mps2=-8.0, lane_id=THROUGH)
    conflict = only(conflicts_of(follower, leader))
    assert conflict.ttc_s == pytest.approx(np.sqrt(10 / 4), abs=0.02)
    assert conflicts_of(follower, leader, model=MotionModel.CONSTANT_VELOCITY) == []


def test_no_warning_following_at_equal_speed(conflicts_of: ConflictsOf) -> None:
    assert (
        conflicts_of(
            track(1, -4.8, 40.0, 13.0, SOUTH, lane_id=THROUGH), track(2, -4.8, 30.0, 13.0, SOUTH, lane_id=THROUGH)
        )
        == []
    )


def test_no_warning_in_a_stopped_queue(conflicts_of: ConflictsOf) -> None:
    # Creeping up at 1.2 m/s to a stopped car 1 m ahead: both below the 1.5 m/s queue speed.
    follower = track(1, -4.8, 19.5, 1.2, SOUTH, lane_id=THROUGH)
    leader = track(2, -4.8, 14.0, 0.0, SOUTH, lane_id=THROUGH)
    queue = [track(10 + i, -4.8, 14.0 + 6.0 * i, 0.0, SOUTH, lane_id=THROUGH) for i in range(2, 8)]
    assert conflicts_of(follower, leader, *queue) == []


def test_no_warning_for_a_follower_braking_to_stop_in_time(conflicts_of: ConflictsOf) -> None:
    # 14 m/s, 20 m bumper gap to a stopped car: TTC 1.43 s at constant speed (DRAC 4.9 m/s²), but
    # braking at 5 m/s² stops it after 19.6 m.
    leader = track(2, -4.8, 20.0, 0.0, SOUTH, lane_id=THROUGH)
    braking = track(1, -4.8, 44.5, 14.0, SOUTH, acceleration_mps2=-5.0, lane_id=THROUGH)
    assert conflicts_of(braking, leader) == []
    coasting = track(1, -4.8, 44.5, 14.0, SOUTH, lane_id=THROUGH)
    conflict = only(conflicts_of(coasting, leader))
    assert conflict.ttc_s == pytest.approx(20.0 / 14.0, abs=1e-6)
    assert conflict.required_deceleration_mps2 == pytest.approx(14.0**2 / 40.0)


def test_no_warning_for_a_follower_that_can_still_stop_comfortably(conflicts_of: ConflictsOf) -> None:
    # 10 m/s towards a stopped car 20 m ahead, not braking yet: TTC 2 s is below the warning TTC,
    # but 2.5 m/s² stops it. An ordinary approach to a queue, not a conflict.
    leader = track(2, -4.8, 20.0, 0.0, SOUTH, lane_id=THROUGH)
    assert conflicts_of(track(1, -4.8, 44.5, 10.0, SOUTH, lane_id=THROUGH), leader) == []


@pytest.mark.parametrize("with_lane_ids", [True, False])
def test_no_warning_for_parallel_lanes_side_by_side(conflicts_of: ConflictsOf, with_lane_ids: bool) -> None:
    fast = track(1, -4.8, 30.0, 14.0, SOUTH, lane_id=THROUGH if with_lane_ids else None)
    slow_in_next_lane = track(2, -1.6, 22.0, 2.0, SOUTH, lane_id=LEFT if with_lane_ids else None)
    alongside = track(3, -1.6, 30.0, 14.0, SOUTH, lane_id=LEFT if with_lane_ids else None)
    assert conflicts_of(fast, slow_in_next_lane) == []
    assert conflicts_of(fast, alongside) == []


def test_no_warning_for_overlapping_boxes(conflicts_of: ConflictsOf) -> None:
    # Two tracks on one truck (a tracker duplicate), not a collision to announce.
    assert conflicts_of(track(1, -4.8, 30.0, 10.0, SOUTH), track(2, -4.8, 28.0, 8.0, SOUTH)) == []


# --- crossing ----------------------------------------------------------------------------------


def test_crossing_paths_meeting_in_the_junction(conflicts_of: ConflictsOf) -> None:
    # Eastbound 15 m/s from 22.5 m west, northbound 10 m/s from 15 m south: both at (0, 0) at 1.5 s.
    # The eastbound car arrives second; letting the other clear needs 4.8 m/s².
    conflict = only(conflicts_of(track(5, -22.5, 0.0, 15.0, EAST), track(4, 0.0, -15.0, 10.0, NORTH)))
    assert conflict.kind is WarningKind.CROSSING
    assert conflict.severity is Severity.WARNING
    assert conflict.ttc_s == pytest.approx(1.5, abs=0.01)
    assert (conflict.conflict_x_m, conflict.conflict_y_m) == pytest.approx((0.0, 0.0), abs=0.05)
    assert [p.track_id for p in conflict.participants] == [4, 5]
    assert conflict.pet_s is not None and conflict.pet_s < 0  # both in the crossing area together
    assert conflict.required_deceleration_mps2 == pytest.approx(4.77, abs=0.05)


def test_no_warning_for_a_crossing_either_can_still_avoid_comfortably(conflicts_of: ConflictsOf) -> None:
    # The same meeting 2 s ahead (15 m/s from 30 m, 10 m/s from 20 m): 2.9 m/s² lets it clear.
    assert conflicts_of(track(5, -30.0, 0.0, 15.0, EAST), track(4, 0.0, -20.0, 10.0, NORTH)) == []


def test_crossing_critical_when_close(conflicts_of: ConflictsOf) -> None:
    conflict = only(conflicts_of(track(1, -15.0, 0.0, 15.0, EAST), track(2, 0.0, -10.0, 10.0, NORTH)))
    assert conflict.severity is Severity.CRITICAL
    assert conflict.ttc_s == pytest.approx(1.0, abs=0.01)


def test_no_warning_when_paths_cross_at_different_times(conflicts_of: ConflictsOf) -> None:
    # The northbound car reaches the crossing point 1.5 s after the eastbound one has left it.
    assert conflicts_of(track(1, -30.0, 0.0, 15.0, EAST), track(2, 0.0, -35.0, 10.0, NORTH)) == []


def test_no_warning_beyond_the_warning_ttc(conflicts_of: ConflictsOf) -> None:
    # Meeting at 3.5 s: inside the 4 s horizon but above the 3 s warning threshold.
    assert conflicts_of(track(1, -52.5, 0.0, 15.0, EAST), track(2, 0.0, -35.0, 10.0, NORTH)) == []


def test_no_warning_for_diverging_paths(conflicts_of: ConflictsOf) -> None:
    # Just left the same spot 1.5 m apart, heading away from each other.
    assert conflicts_of(track(1, 1.0, 0.0, 8.0, EAST), track(2, 0.0, 1.1, 8.0, NORTH)) == []
    assert conflicts_of(track(1, 5.0, 0.0, 10.0, EAST), track(2, -5.0, 0.0, 10.0, WEST)) == []


def test_no_warning_for_opposing_lanes_passing(conflicts_of: ConflictsOf) -> None:
    # Opposing left-turn lanes 3.2 m apart, passing head-on at speed.
    assert conflicts_of(track(1, -1.6, 20.0, 12.0, SOUTH), track(2, 1.6, -20.0, 12.0, NORTH)) == []


def test_no_warning_for_stopped_road_users(conflicts_of: ConflictsOf) -> None:
    assert conflicts_of(track(1, 0.0, 0.0, 0.0, EAST), track(2, 1.5, 1.0, 0.0, NORTH)) == []


# --- vulnerable road users ---------------------------------------------------------------------


def test_vehicle_and_jaywalker_on_the_crosswalk(conflicts_of: ConflictsOf) -> None:
    # The car (green) reaches the middle of the north crosswalk (y = 10) in 1.75 s; a pedestrian
    # crossing against the red reaches its lane then. 3.1 m/s² would stop the car, but nobody
    # with a green expects a pedestrian there: the jaywalker makes it a warning.
    signal = signal_state(NOW_S, g2=(Indication.GREEN, 20.0), gp_north=(Indication.RED, 20.0))
    car = track(1, -4.8, 25.75, 9.0, SOUTH, lane_id=THROUGH)
    pedestrian = track(9, -5.85, 10.0, 0.6, EAST, road_user=PED)
    conflict = only(conflicts_of(pedestrian, car, signal=signal))
    assert conflict.kind is WarningKind.VULNERABLE_ROAD_USER
    assert conflict.ttc_s == pytest.approx(1.75, abs=0.02)
    assert conflict.severity is Severity.WARNING
    assert conflict.signal_violation
    assert [p.track_id for p in conflict.participants] == [1, 9]  # vehicle first
    assert (conflict.conflict_x_m, conflict.conflict_y_m) == pytest.approx((-4.8, 10.0), abs=0.1)
    # The same pedestrian on a walk signal: the car can yield comfortably, no warning.
    walk = signal_state(NOW_S, g2=(Indication.GREEN, 20.0), gp_north=(Indication.GREEN, 20.0))
    assert conflicts_of(pedestrian, car, signal=walk) == []


def test_vehicle_closing_on_a_cyclist_in_its_lane(conflicts_of: ConflictsOf) -> None:
    # Bumper gap 15 - (4.5 + 1.8) / 2 = 11.85 m closing at 11 m/s: TTC 1.08 s, DRAC 5.1 m/s².
    car = track(1, -4.8, 40.0, 15.0, SOUTH, lane_id=THROUGH)
    bicycle = track(2, -4.8, 25.0, 4.0, SOUTH, road_user=BIKE, lane_id=THROUGH)
    conflict = only(conflicts_of(car, bicycle))
    assert conflict.kind is WarningKind.VULNERABLE_ROAD_USER
    assert conflict.severity is Severity.CRITICAL
    assert conflict.ttc_s == pytest.approx(11.85 / 11.0, abs=1e-6)
    assert [p.track_id for p in conflict.participants] == [1, 2]
    # 12 m/s behind it (8 m/s faster): 2.7 m/s² keeps the gap, no warning.
    assert conflicts_of(car.model_copy(update={"speed_mps": 12.0}), bicycle) == []


def test_no_warning_for_a_car_passing_a_cyclist_with_clearance(conflicts_of: ConflictsOf) -> None:
    assert conflicts_of(track(1, 0.0, 40.0, 12.0, SOUTH), track(2, 1.6, 25.0, 4.0, SOUTH, road_user=BIKE)) == []


def test_no_warning_for_a_pedestrian_waiting_at_the_kerb(conflicts_of: ConflictsOf) -> None:
    car = track(1, -4.8, 30.0, 12.0, SOUTH, lane_id=THROUGH)
    assert conflicts_of(car, track(2, -8.0, 12.0, 0.0, EAST, road_user=PED)) == []


def test_no_warning_between_pedestrians_or_cyclists(conflicts_of: ConflictsOf) -> None:
    walking_at_each_other = (
        track(1, -5.0, 12.0, 1.5, EAST, road_user=PED),
        track(2, 1.0, 12.0, 1.5, WEST, road_user=PED),
    )
    assert conflicts_of(*walking_at_each_other) == []
    assert (
        conflicts_of(track(3, -5.0, 0.0, 5.0, EAST, road_user=BIKE), track(4, 0.0, -5.0, 5.0, NORTH, road_user=PED))
        == []
    )


# --- red-light violation -----------------------------------------------------------------------


def test_red_light_violation_when_it_cannot_stop(conflicts_of: ConflictsOf, approaching: Approaching) -> None:
    # Front bumper 13.75 m from the stop line at 13.9 m/s needs 7 m/s² to stop; arrives in 0.99 s,
    # after the yellow has ended.
    conflict = only(conflicts_of(approaching(13.75), signal=signal_state(NOW_S, g2=(Indication.YELLOW, 0.5))))
    assert conflict.kind is WarningKind.RED_LIGHT_VIOLATION
    assert conflict.ttc_s == pytest.approx(13.75 / 13.9)
    assert conflict.severity is Severity.CRITICAL
    assert (conflict.conflict_x_m, conflict.conflict_y_m) == approaching.stop_line
    assert [p.track_id for p in conflict.participants] == [1]


def test_red_light_violation_further_out_is_a_warning(conflicts_of: ConflictsOf, approaching: Approaching) -> None:
    # 20 m/s, front 40 m out: needs 5 m/s², arrives in 2 s; the yellow ends in 0.5 s.
    conflict = only(conflicts_of(approaching(40.0, 20.0), signal=signal_state(NOW_S, g2=(Indication.YELLOW, 0.5))))
    assert conflict.severity is Severity.WARNING
    # Needing 4.2 m/s² (47.75 m out) is within what drivers brake at a yellow onset: no call.
    assert conflicts_of(approaching(47.75, 20.0), signal=signal_state(NOW_S, g2=(Indication.YELLOW, 0.5))) == []


def test_yellow_ending_before_arrival_is_a_violation(conflicts_of: ConflictsOf, approaching: Approaching) -> None:
    ends_first = signal_state(NOW_S, g2=(Indication.YELLOW, 0.5))
    assert only(conflicts_of(approaching(13.75), signal=ends_first)).kind is WarningKind.RED_LIGHT_VIOLATION
    # Crosses at 0.99 s while the yellow lasts 2 s more: legal.
    assert conflicts_of(approaching(13.75), signal=signal_state(NOW_S, g2=(Indication.YELLOW, 2.0))) == []


@pytest.mark.parametrize("indication", [Indication.RED, Indication.RED_YELLOW])
def test_steady_red_is_predicted_to_stop(
    conflicts_of: ConflictsOf, approaching: Approaching, indication: Indication
) -> None:
    # Tracked speed lags a late-braking car, so a prediction on a steady red would flag ordinary
    # stops; the car is expected to stop at the line (a real runner is caught crossing it, see
    # test_warning_quality.py), so it crosses nobody's path either.
    signal = signal_state(NOW_S, g2=(indication, 10.0), g4=(Indication.GREEN, 10.0))
    cross_traffic = track(3, 20.0, 4.8, 12.0, WEST, lane_id="east_through_right")
    assert conflicts_of(approaching(13.75), cross_traffic, signal=signal) == []


def test_no_violation_when_it_can_stop_comfortably(conflicts_of: ConflictsOf, approaching: Approaching) -> None:
    # Front 43.75 m out at 13.9 m/s: 2.2 m/s² suffices.
    assert conflicts_of(approaching(43.75), signal=signal_state(NOW_S, g2=(Indication.RED, 10.0))) == []


def test_no_violation_when_already_braking_hard_enough(conflicts_of: ConflictsOf, approaching: Approaching) -> None:
    braking = approaching(13.75, acceleration_mps2=-7.5)
    assert conflicts_of(braking, signal=signal_state(NOW_S, g2=(Indication.RED, 10.0))) == []


def test_no_violation_when_the_red_ends_before_arrival(conflicts_of: ConflictsOf, approaching: Approaching) -> None:
    assert conflicts_of(approaching(13.75), signal=signal_state(NOW_S, g2=(Indication.RED, 0.5))) == []


@pytest.mark.parametrize("indication", [Indication.GREEN, Indication.FLASHING_YELLOW, Indication.DARK])
def test_no_violation_on_green_or_flashing(
    conflicts_of: ConflictsOf, approaching: Approaching, indication: Indication
) -> None:
    assert conflicts_of(approaching(13.75), signal=signal_state(NOW_S, g2=(indication, 10.0))) == []


def test_no_violation_without_a_lane_a_signal_or_for_other_groups(
    conflicts_of: ConflictsOf, approaching: Approaching
) -> None:
    red = signal_state(NOW_S, g2=(Indication.RED, 10.0))
    no_lane = approaching(13.75).model_copy(update={"lane_id": None})
    assert conflicts_of(no_lane, signal=red) == []
    assert conflicts_of(approaching(13.75), signal=None) == []
    assert conflicts_of(approaching(13.75), signal=signal_state(NOW_S, g5=(Indication.RED, 10.0))) == []


def test_no_violation_past_the_stop_line_or_driving_away(conflicts_of: ConflictsOf, approaching: Approaching) -> None:
    red = signal_state(NOW_S, g2=(Indication.RED, 10.0))
    assert conflicts_of(approaching(-0.5), signal=red) == []  # front already across the line
    leaving = approaching(13.75).model_copy(update={"heading_deg": NORTH})
    assert conflicts_of(leaving, signal=red) == []


def test_pedestrians_are_never_red_light_violators(conflicts_of: ConflictsOf, approaching: Approaching) -> None:
    runner = approaching(2.0, 6.0).model_copy(update={"road_user": PED})
    assert conflicts_of(runner, signal=signal_state(NOW_S, g2=(Indication.RED, 10.0))) == []


# --- whole snapshot ----------------------------------------------------------------------------


def test_output_is_sorted_and_combines_kinds(conflicts_of: ConflictsOf, approaching: Approaching) -> None:
    yellow_ending = signal_state(NOW_S, g2=(Indication.YELLOW, 0.5))
    tracks = (
        track(5, -22.5, 0.0, 15.0, EAST),
        track(4, 0.0, -15.0, 10.0, NORTH),
        approaching(20.0),
        approaching(10.0, 0.0).model_copy(update={"track_id": 2}),  # stopped ahead of car 1
    )
    conflicts = conflicts_of(*tracks, signal=yellow_ending)
    assert [(c.kind.value, c.key[1]) for c in conflicts] == sorted((c.kind.value, c.key[1]) for c in conflicts)
    assert {c.kind for c in conflicts} == {WarningKind.CROSSING, WarningKind.REAR_END, WarningKind.RED_LIGHT_VIOLATION}


def test_hundreds_of_tracks_in_well_under_a_frame(sample_site: SiteConfig) -> None:
    rng = np.random.default_rng(1)
    tracks = [
        track(i, float(x), float(y), float(v), float(h))
        for i, (x, y, v, h) in enumerate(
            zip(
                rng.uniform(-150, 150, 300),
                rng.uniform(-150, 150, 300),
                rng.uniform(0, 15, 300),
                rng.uniform(0, 359, 300),
                strict=True,
            )
        )
    ]
    start = time.perf_counter()
    find_conflicts(tracks, None, sample_site, CONFIG, NOW_S)
    assert time.perf_counter() - start < 0.5
