"""Image-space association: with image boxes, identity follows the boxes, not the ground positions.

Ground positions here are deliberately useless (every detection at the same point, as with a
missing or wrong calibration), so any identity kept can only come from the image association.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from rsu.perception.association import BoxKalman, associate_iou, iou_matrix
from rsu.perception.detections import Detections
from rsu.perception.tracker import IMAGE_HIGH_CONFIDENCE, TENTATIVE_MAX_COAST_S, GroundTracker, Track
from rsu_contracts.config.model import TrackingConfig
from rsu_contracts.enums import RoadUserType

CAR = RoadUserType.CAR
FRAME_S = 0.04  # 25 fps
Box = tuple[float, float, float, float]


def boxed(time_s: float, boxes: Sequence[Box], confidence: Sequence[float] | None = None) -> Detections:
    """Car detections with these image boxes, all at the same (meaningless) ground point."""
    n = len(boxes)
    return Detections(
        capture_time_s=time_s,
        ground_xy_m=np.zeros((n, 2)),
        road_user=(CAR,) * n,
        confidence=np.array(confidence if confidence is not None else [0.9] * n, dtype=np.float64),
        boxes_px=np.array(boxes, dtype=np.float64).reshape(n, 4),
    )


def moving_box(frame: int, x0: float, speed_px_per_frame: float, y: float = 100.0) -> Box:
    x = x0 + speed_px_per_frame * frame
    return (x, y, x + 40.0, y + 30.0)


def confirmed(tracks: list[Track]) -> dict[int, Track]:
    return {t.track_id: t for t in tracks if t.confirmed}


def test_two_cars_at_the_same_ground_point_keep_their_own_tracks() -> None:
    tracker = GroundTracker()
    ids_over_time = []
    for frame in range(30):
        # Two cars side by side in the image, driving right at different speeds.
        tracks = tracker.update(
            boxed(frame * FRAME_S, [moving_box(frame, 0.0, 3.0, y=50.0), moving_box(frame, 0.0, 2.0, y=150.0)])
        )
        ids_over_time.append({round(t.box_px[1]): t.track_id for t in tracks if t.confirmed and t.box_px})
    assert ids_over_time[-1].keys() == {50, 150}
    assert all(ids == ids_over_time[-1] for ids in ids_over_time[3:])
    assert len(tracker) == 2


def test_a_track_coasts_through_a_short_miss_with_a_predicted_box_and_keeps_its_id() -> None:
    tracker = GroundTracker()
    frames = [f for f in range(25) if f not in (10, 11, 12, 13)]  # hidden for four frames (0.16 s)
    seen: dict[int, Track] = {}
    for frame in range(25):
        [track] = tracker.update(boxed(frame * FRAME_S, [moving_box(frame, 0.0, 5.0)] if frame in frames else []))
        seen[frame] = track
    assert {t.track_id for t in seen.values()} == {1}
    hidden = seen[12]
    assert hidden.box_predicted and hidden.coasting_s == pytest.approx(3 * FRAME_S)
    assert hidden.box_px is not None
    # Predicted on along its path: within a few pixels of where the car really was.
    assert hidden.box_px[0] == pytest.approx(moving_box(12, 0.0, 5.0)[0], abs=5.0)
    back = seen[14]
    assert not back.box_predicted and back.box_px == moving_box(14, 0.0, 5.0)


def test_a_newly_confirmed_track_hands_over_its_first_hits() -> None:
    tracker = GroundTracker(TrackingConfig(confirm_hits=3))
    first = [moving_box(f, 0.0, 4.0) for f in range(3)]
    for frame in range(2):
        tracker.update(boxed(frame * FRAME_S, [first[frame]]))
        assert tracker.newly_confirmed_boxes == []
    [track] = tracker.update(boxed(2 * FRAME_S, [first[2]]))
    assert track.confirmed and track.box_px == first[2]
    assert tracker.newly_confirmed_boxes == [(track.track_id, 0.0, first[0]), (track.track_id, FRAME_S, first[1])]
    tracker.update(boxed(3 * FRAME_S, [moving_box(3, 0.0, 4.0)]))
    assert tracker.newly_confirmed_boxes == []


def test_weak_detections_continue_a_confirmed_track_but_never_start_one() -> None:
    weak = IMAGE_HIGH_CONFIDENCE / 2
    tracker = GroundTracker()
    for frame in range(5):
        tracker.update(boxed(frame * FRAME_S, [moving_box(frame, 0.0, 2.0)]))
    # The car turns weak; a weak stranger appears elsewhere.
    for frame in range(5, 10):
        tracks = tracker.update(
            boxed(frame * FRAME_S, [moving_box(frame, 0.0, 2.0), (300.0, 200.0, 330.0, 230.0)], [weak, weak])
        )
    assert [(t.track_id, t.coasting_s) for t in tracks] == [(1, 0.0)]


def test_a_tentative_track_is_dropped_after_its_coast_time_in_seconds_not_frames() -> None:
    tracker = GroundTracker()
    tracker.update(boxed(0.0, [(0.0, 0.0, 20.0, 20.0)]))
    for time_s in (0.1, TENTATIVE_MAX_COAST_S):
        tracker.update(boxed(time_s, []))
        assert len(tracker) == 1
    tracker.update(boxed(TENTATIVE_MAX_COAST_S + 0.01, []))
    assert len(tracker) == 0


def test_a_car_re_found_after_an_occlusion_takes_its_velocity_from_its_observations() -> None:
    tracker = GroundTracker()
    for frame in range(8):
        tracker.update(boxed(frame * FRAME_S, [moving_box(frame, 0.0, 2.0)]))
    # Hidden 10 frames; it speeds up meanwhile and re-appears overlapping where it was last seen.
    for frame in range(8, 18):
        tracker.update(boxed(frame * FRAME_S, []))
    reappear = (7 * 2.0 + 20.0, 100.0, 7 * 2.0 + 60.0, 130.0)
    [track] = tracker.update(boxed(18 * FRAME_S, [reappear]))
    assert track.track_id == 1 and not track.box_predicted
    # Its box velocity: 20 px over the 11 frames since the last observation, not the old 2 px/frame.
    state = tracker._states[0]
    assert state.box is not None
    assert state.box.velocity[0] == pytest.approx(20.0 / (11 * FRAME_S), rel=1e-6)


def test_iou_association_respects_the_minimum_overlap_and_the_allowed_pairs() -> None:
    tracks = np.array([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 110.0, 110.0]])
    dets = np.array([[101.0, 101.0, 111.0, 111.0], [1.0, 0.0, 11.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    allowed = np.ones((2, 3), dtype=bool)
    pairs, rows_left, cols_left = associate_iou(tracks, dets, allowed, min_iou=0.3)
    assert sorted(pairs) == [(0, 1), (1, 0)]
    assert rows_left.tolist() == [] and cols_left.tolist() == [2]
    allowed[1, 0] = False  # e.g. a pedestrian detection against a car track
    pairs, rows_left, _ = associate_iou(tracks, dets, allowed, min_iou=0.3)
    assert pairs == [(0, 1)] and rows_left.tolist() == [1]
    assert iou_matrix(tracks, dets)[0, 1] == pytest.approx(90.0 / 110.0)


def test_box_filter_refuses_to_predict_backwards() -> None:
    kalman = BoxKalman(np.array([0.0, 0.0, 10.0, 10.0]), 1.0)
    with pytest.raises(ValueError, match="backwards"):
        kalman.predict(0.5)
