"""GroundTracker: identity, kinematics, track life cycle and bounded state, from synthetic detections."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsu.perception.detections import Detections
from rsu.perception.tracker import CLASS_HISTORY_LENGTH, GroundTracker, Track
from rsu_contracts.config.model import TrackingConfig
from rsu_contracts.enums import RoadUserType
from tests.perception.perception_helpers import CAR, FRAME_S, PEDESTRIAN, detections


def drive(
    tracker: GroundTracker,
    start: tuple[float, float],
    velocity: tuple[float, float],
    seconds: float,
    *,
    t0: float = 0.0,
    noise_m: float = 0.3,
    seed: int = 0,
    road_user: RoadUserType = CAR,
) -> list[list[Track]]:
    rng = np.random.default_rng(seed)
    history = []
    for i in range(round(seconds / FRAME_S)):
        t = t0 + i * FRAME_S
        x = start[0] + velocity[0] * (t - t0) + rng.normal(0, noise_m)
        y = start[1] + velocity[1] * (t - t0) + rng.normal(0, noise_m)
        history.append(tracker.update(detections(t, [(x, y, road_user)])))
    return history


def angle_difference(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


@pytest.mark.parametrize(
    ("velocity", "heading"),
    [((0.0, 10.0), 0.0), ((10.0, 0.0), 90.0), ((0.0, -10.0), 180.0), ((-10.0, 0.0), 270.0), ((7.07, 7.07), 45.0)],
)
def test_a_vehicle_at_10_mps_keeps_one_id_with_its_speed_and_heading(
    velocity: tuple[float, float], heading: float
) -> None:
    tracker = GroundTracker()
    history = drive(tracker, (0.0, 0.0), velocity, 5.0)
    assert {track.track_id for frame in history for track in frame} == {1}
    last = history[-1][0]
    assert last.confirmed
    assert last.speed_mps == pytest.approx(10.0, abs=0.8)
    assert angle_difference(last.heading_deg, heading) < 5.0
    assert 0.0 <= last.heading_deg < 360.0
    assert last.age_s == pytest.approx(4.9)
    assert abs(last.acceleration_mps2) < 1.5


def test_two_crossing_vehicles_keep_their_ids() -> None:
    tracker = GroundTracker()
    rng = np.random.default_rng(4)
    for i in range(61):
        t = i * FRAME_S
        # Both reach the origin at t = 3 s, one eastbound, one northbound.
        east = (-30.0 + 10.0 * t + rng.normal(0, 0.2), rng.normal(0, 0.2), CAR)
        north = (rng.normal(0, 0.2), -30.0 + 10.0 * t + rng.normal(0, 0.2), CAR)
        tracks = tracker.update(detections(t, [east, north]))
        if i == 5:
            by_id = {track.track_id: track for track in tracks}
            eastbound_id = min(by_id, key=lambda k: by_id[k].y_m ** 2)  # the one on the x axis
            northbound_id = min(by_id, key=lambda k: by_id[k].x_m ** 2)
    by_id = {track.track_id: track for track in tracks}
    assert set(by_id) == {eastbound_id, northbound_id}
    assert by_id[eastbound_id].x_m == pytest.approx(30.0, abs=1.0)
    assert angle_difference(by_id[eastbound_id].heading_deg, 90.0) < 10.0
    assert by_id[northbound_id].y_m == pytest.approx(30.0, abs=1.0)
    assert angle_difference(by_id[northbound_id].heading_deg, 0.0) < 10.0


def test_a_track_confirms_only_after_confirm_hits() -> None:
    tracker = GroundTracker(TrackingConfig(confirm_hits=4))
    history = drive(tracker, (0.0, 0.0), (0.0, 5.0), 0.6, noise_m=0.0)
    assert [frame[0].confirmed for frame in history] == [False, False, False, True, True, True]
    assert [frame[0].hits for frame in history] == [1, 2, 3, 4, 5, 6]


def test_a_confirmed_track_coasts_through_a_short_miss_and_is_deleted_after_max_coast() -> None:
    tracker = GroundTracker(TrackingConfig(max_coast_s=1.0))
    drive(tracker, (0.0, 0.0), (0.0, 10.0), 1.0, noise_m=0.0)  # t = 0.0 .. 0.9, y = 0 .. 9
    # 0.3 s without detections: the track coasts on its prediction.
    for t in (1.0, 1.1, 1.2):
        (track,) = tracker.update(Detections.empty(t))
        assert track.track_id == 1
        assert track.coasting_s == pytest.approx(t - 0.9)
    assert track.y_m == pytest.approx(12.0, abs=0.3)
    (track,) = tracker.update(detections(1.3, [(0.0, 13.0, CAR)]))
    assert track.track_id == 1
    assert track.coasting_s == 0.0
    # 2 s without detections: gone, and a later detection starts a new track.
    for i in range(1, 21):
        tracks = tracker.update(Detections.empty(1.3 + i * FRAME_S))
    assert tracks == []
    (track,) = tracker.update(detections(3.4, [(0.0, 34.0, CAR)]))
    assert track.track_id == 2
    assert not track.confirmed


def test_the_gate_grows_while_a_track_coasts() -> None:
    tracker = GroundTracker(TrackingConfig(gate_m=2.0, max_coast_s=1.5))
    drive(tracker, (0.0, 0.0), (0.0, 10.0), 2.0, noise_m=0.0)  # last seen at t = 1.9, y = 19
    # Occluded for 0.8 s, during which it braked: it reappears 3 m short of the prediction (y = 30).
    for i in range(1, 8):
        tracker.update(Detections.empty(1.9 + 0.1 * i))
    (track,) = tracker.update(detections(2.7, [(0.0, 27.0, CAR)]))
    assert track.track_id == 1
    assert track.coasting_s == 0.0


def test_a_coasting_car_does_not_take_a_newcomer_beside_its_path() -> None:
    tracker = GroundTracker(TrackingConfig(gate_m=4.0))
    drive(tracker, (0.0, 0.0), (10.0, 0.0), 1.0, noise_m=0.0)  # eastbound, last seen at x = 9
    tracker.update(Detections.empty(1.0))
    tracks = tracker.update(detections(1.1, [(11.0, 4.0, CAR)]))  # 4 m to the side of the prediction
    assert sorted(track.track_id for track in tracks) == [1, 2]
    # The same offset along its path is a plausible speed change and continues the track.
    tracker = GroundTracker(TrackingConfig(gate_m=4.0))
    drive(tracker, (0.0, 0.0), (10.0, 0.0), 1.0, noise_m=0.0)
    tracker.update(Detections.empty(1.0))
    tracks = tracker.update(detections(1.1, [(15.0, 0.0, CAR)]))
    assert [track.track_id for track in tracks] == [1]


def test_coasting_is_measured_in_seconds_not_frames() -> None:
    tracker = GroundTracker(TrackingConfig(max_coast_s=1.0))
    drive(tracker, (0.0, 0.0), (0.0, 1.0), 1.0, noise_m=0.0)
    # Many empty frames within 0.5 s keep the track; one empty frame 1.5 s later drops it.
    for i in range(50):
        assert len(tracker.update(Detections.empty(0.9 + 0.01 * (i + 1)))) == 1
    assert tracker.update(Detections.empty(2.5)) == []


def test_an_unconfirmed_track_that_misses_is_dropped_quickly() -> None:
    tracker = GroundTracker(TrackingConfig(max_coast_s=5.0))
    tracker.update(detections(0.0, [(0.0, 0.0, CAR)]))
    assert len(tracker.update(Detections.empty(0.1))) == 1
    assert tracker.update(Detections.empty(0.4)) == []


def test_time_going_backwards_raises() -> None:
    tracker = GroundTracker()
    tracker.update(detections(10.0, [(0.0, 0.0, CAR)]))
    tracker.update(detections(10.0, [(0.0, 0.0, CAR)]))  # the same time is allowed
    with pytest.raises(ValueError, match="back in time"):
        tracker.update(detections(9.9, [(0.0, 0.0, CAR)]))
    with pytest.raises(ValueError, match="non-finite"):
        tracker.update(Detections.empty(math.nan))


def test_low_confidence_detections_continue_a_confirmed_track_but_never_start_one() -> None:
    tracker = GroundTracker()
    drive(tracker, (0.0, 0.0), (0.0, 10.0), 1.0, noise_m=0.0)
    for i in range(10, 20):
        t = i * FRAME_S
        tracks = tracker.update(detections(t, [(0.0, 10.0 * t, CAR, 0.3), (30.0, 30.0, CAR, 0.3)]))
        assert [track.track_id for track in tracks] == [1]
        assert tracks[0].coasting_s == 0.0


def test_a_weak_detection_continues_a_track_only_close_to_its_prediction() -> None:
    # A car standing still; beside it a partly hidden car passes, seen only weakly.
    tracker = GroundTracker()
    for i in range(10):
        tracker.update(detections(i * FRAME_S, [(0.0, 0.0, CAR)]))
    # The standing car is hidden for a frame while the weak detection of the other one is 3.6 m away:
    # within the track's gate (4 m) but not within the stricter gate of weak detections.
    (track,) = tracker.update(detections(1.0, [(3.6, 0.0, CAR, 0.3)]))
    assert track.track_id == 1 and track.coasting_s > 0.0
    assert abs(track.x_m) < 0.5
    # A weak detection near the prediction does continue it (a partial occlusion of the car itself).
    (track,) = tracker.update(detections(1.1, [(0.3, 0.0, CAR, 0.3)]))
    assert track.track_id == 1 and track.coasting_s == 0.0


def test_low_confidence_detections_do_not_confirm_a_tentative_track() -> None:
    tracker = GroundTracker()
    tracker.update(detections(0.0, [(0.0, 0.0, CAR, 0.9)]))
    for t in (0.1, 0.2, 0.3, 0.4):
        tracks = tracker.update(detections(t, [(0.0, 0.0, CAR, 0.3)]))
    assert tracks == []


def test_a_pedestrian_detection_never_continues_a_car_track() -> None:
    tracker = GroundTracker()
    drive(tracker, (0.0, 0.0), (0.0, 10.0), 1.0, noise_m=0.0)
    tracks = tracker.update(detections(1.0, [(0.0, 10.0, PEDESTRIAN)]))
    by_type = {track.road_user: track for track in tracks}
    assert by_type[CAR].track_id == 1
    assert by_type[CAR].coasting_s > 0
    assert by_type[PEDESTRIAN].track_id == 2


def test_car_truck_and_bus_labels_share_a_track_and_the_majority_wins() -> None:
    tracker = GroundTracker()
    labels = [
        CAR,
        RoadUserType.TRUCK,
        RoadUserType.TRUCK,
        RoadUserType.BUS,
        RoadUserType.TRUCK,
        CAR,
        RoadUserType.TRUCK,
    ]
    for i, label in enumerate(labels):
        tracks = tracker.update(detections(i * FRAME_S, [(0.0, 1.0 * i, label)]))
    assert [track.track_id for track in tracks] == [1]
    assert tracks[0].road_user is RoadUserType.TRUCK
    assert tracks[0].length_m > 8.0


def test_the_class_vote_is_bounded_and_follows_a_lasting_change() -> None:
    tracker = GroundTracker()
    for i in range(200):
        label = CAR if i < 100 else RoadUserType.BUS
        tracks = tracker.update(detections(i * FRAME_S, [(0.0, 0.5 * i, label)]))
    assert tracks[0].road_user is RoadUserType.BUS
    state = tracker._states[0]
    assert len(state.class_history) == CLASS_HISTORY_LENGTH
    assert sum(state.class_counts.values()) == CLASS_HISTORY_LENGTH


def test_heading_stays_put_while_the_vehicle_stands_still() -> None:
    tracker = GroundTracker()
    rng = np.random.default_rng(7)
    y, speed = 0.0, 10.0
    headings = []
    for i in range(200):
        t = i * FRAME_S
        if t > 2.0:
            speed = max(0.0, speed - 4.0 * FRAME_S)  # stands still from t = 4.5 s to the end (20 s)
        y += speed * FRAME_S
        (track,) = tracker.update(detections(t, [(-4.8 + rng.normal(0, 0.3), y + rng.normal(0, 0.3), CAR)]))
        headings.append(track.heading_deg)
        if t > 5.0:
            assert track.speed_mps < 1.5
    assert track.heading_known
    assert max(angle_difference(h, 0.0) for h in headings[3:]) < 30.0


def test_a_track_that_never_moved_has_no_known_heading() -> None:
    tracker = GroundTracker()
    rng = np.random.default_rng(8)
    for i in range(100):
        (track,) = tracker.update(detections(i * FRAME_S, [(rng.normal(0, 0.3), rng.normal(0, 0.3), CAR)]))
    assert not track.heading_known


def test_the_number_of_tracks_is_bounded_and_clutter_evicts_only_tentative_tracks() -> None:
    tracker = GroundTracker(TrackingConfig(max_tracks=10, max_coast_s=5.0))
    rng = np.random.default_rng(9)
    drive(tracker, (0.0, 0.0), (0.0, 0.0), 0.5, noise_m=0.0)
    for i in range(5, 100):
        clutter = [(float(x), float(y), CAR) for x, y in rng.uniform(20, 200, (30, 2))]
        tracks = tracker.update(detections(i * FRAME_S, [(0.0, 0.0, CAR), *clutter]))
        assert len(tracks) <= 10
        assert any(track.track_id == 1 and track.confirmed for track in tracks)


def test_a_full_tracker_drops_the_longest_coasting_confirmed_track_for_a_new_one() -> None:
    tracker = GroundTracker(TrackingConfig(max_tracks=10, max_coast_s=5.0, confirm_hits=1))
    objects = [(10.0 * k, 0.0, CAR) for k in range(10)]
    tracker.update(detections(0.0, objects))
    tracker.update(detections(0.1, objects[1:]))  # the first one is no longer seen
    tracks = tracker.update(detections(0.2, [*objects[1:], (500.0, 0.0, CAR)]))
    assert len(tracks) == 10
    assert 1 not in {track.track_id for track in tracks}
    assert 11 in {track.track_id for track in tracks}


def test_ten_thousand_passing_vehicles_leave_no_state_behind() -> None:
    tracker = GroundTracker()
    t = 0.0
    peak = 0
    for _wave in range(1_000):
        # Ten vehicles at a time, 300 m apart, each seen for 0.6 s, then gone; a new wave every 0.8 s.
        for k in range(4):
            objects = [(300.0 * lane, 10.0 * k * 0.2, CAR) for lane in range(10)]
            peak = max(peak, len(tracker.update(detections(t + k * 0.2, objects))))
        t += 0.8
    assert peak <= 30  # the wave in sight and the two before it, still coasting (max_coast_s = 1 s)
    assert all(track.confirmed for track in tracker.tracks)
    assert max(track.track_id for track in tracker.tracks) == 10_000
    tracker.update(Detections.empty(t + 5.0))
    assert len(tracker) == 0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.floats(-60, 60),
                st.floats(-60, 60),
                st.sampled_from(list(RoadUserType)),
                st.floats(0.05, 1.0),
            ),
            max_size=12,
        ),
        min_size=1,
        max_size=25,
    ),
    st.lists(st.floats(0.0, 0.5), min_size=25, max_size=25),
)
def test_any_detection_stream_keeps_the_invariants(
    frames: list[list[tuple[float, float, RoadUserType, float]]], steps: list[float]
) -> None:
    tracker = GroundTracker(TrackingConfig(max_tracks=15))
    t = 100.0
    for objects, step in zip(frames, steps, strict=False):
        t += step
        tracks = tracker.update(detections(t, objects))
        ids = [track.track_id for track in tracks]
        assert len(ids) == len(set(ids)) <= 15
        for track in tracks:
            assert 0.0 <= track.heading_deg < 360.0
            assert math.isfinite(track.x_m) and math.isfinite(track.y_m) and track.speed_mps >= 0.0
            assert track.age_s >= 0.0 and 0.0 <= track.coasting_s <= tracker.config.max_coast_s
            assert track.confirmed == (track.hits >= tracker.config.confirm_hits)
