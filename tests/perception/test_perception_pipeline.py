"""PerceptionPipeline end to end on synthetic detections: tracks, lanes, crossings, bounded state."""

from __future__ import annotations

import numpy as np
import pytest

from rsu.perception.detections import Detections
from rsu.perception.pipeline import PerceptionOutput, PerceptionPipeline
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages.perception import DetectorStates, LineCrossing, TrackedObject
from tests.perception.perception_helpers import CAR, FRAME_S, PEDESTRIAN, detections, lane_point, lane_velocity

CAMERA = "cam_pole_ne"
LANE = "south_through_right"


def test_a_car_that_stops_at_the_stop_bar_and_leaves(sample_site: SiteConfig) -> None:
    pipeline = PerceptionPipeline(sample_site, CAMERA)
    rng = np.random.default_rng(11)
    (crosswalk,) = [c for c in sample_site.crosswalks if c.id == "cw_north"]
    walk_y = float(np.mean([p[1] for p in crosswalk.polygon_m]))
    outputs: list[PerceptionOutput] = []
    crossings: list[LineCrossing] = []
    distance, speed = 60.0, 10.0  # upstream of the stop line
    for step in range(300):
        t = 1000.0 + step * FRAME_S
        if step < 50:
            distance -= speed * FRAME_S  # 60 m -> 10 m
        elif step < 70:
            distance = max(distance - 0.25 * (70 - step) * FRAME_S, 3.0)  # creeps to a stop
        elif step >= 200:
            distance -= 6.0 * FRAME_S  # green: drives off into the junction
        x, y = lane_point(sample_site, LANE, distance)
        objects: list[tuple[float, float, RoadUserType, float]] = [
            (x + rng.normal(0, 0.3), y + rng.normal(0, 0.3), CAR, 0.9),
            # A pedestrian walking east over the north crosswalk, seen weakly at times.
            (-8.0 + 1.3 * step * FRAME_S + rng.normal(0, 0.2), walk_y + rng.normal(0, 0.2), PEDESTRIAN, 0.8),
            # Clutter: a different spot every frame.
            (float(rng.uniform(-60, 60)), float(rng.uniform(-60, 60)), CAR, 0.6),
        ]
        output = pipeline.process(detections(t, objects, camera_id=CAMERA))
        outputs.append(output)
        crossings.extend(output.crossings)
        assert pipeline.active_track_count < 15

    car_ids = {o.track_id for out in outputs for o in out.tracks if o.road_user is CAR}
    assert len(car_ids) == 1  # clutter never confirms; the car keeps one id
    lane_of = {out.time_s: next(o for o in out.tracks if o.road_user is CAR).lane_id for out in outputs[5:200]}
    assert set(lane_of.values()) == {LANE}
    assert all(isinstance(o, TrackedObject) for out in outputs for o in out.tracks)

    def lane_state(output: PerceptionOutput) -> tuple[bool, int, float]:
        (observation,) = [o for o in output.lanes if o.lane_id == LANE]
        return observation.stop_bar_occupied, observation.queued_vehicles, observation.stop_bar_gap_s

    assert lane_state(outputs[30]) == (False, 0, pytest.approx(3.0))  # approaching, never occupied yet
    assert lane_state(outputs[150])[:2] == (True, 1)
    waited = next(o for o in outputs[199].lanes if o.lane_id == LANE).max_wait_s
    assert 12.0 < waited < 15.0
    assert lane_state(outputs[-1])[0] is False
    assert lane_state(outputs[-1])[2] > 5.0

    (car_crossing,) = [c for c in crossings if c.road_user is CAR and c.line_id == "south_in"]
    assert car_crossing.line_id == "south_in"
    assert car_crossing.lane_id == LANE
    cw_counts = [next(c for c in out.crosswalks if c.crosswalk_id == "cw_north").pedestrians for out in outputs]
    assert max(cw_counts) == 1
    # The output parts fit the detector-state message of the controller.
    DetectorStates(
        unit_id=sample_site.unit_id,
        seq=0,
        capture_time_s=outputs[-1].time_s,
        publish_time_s=outputs[-1].time_s,
        camera_id=CAMERA,
        valid=True,
        lanes=outputs[-1].lanes,
        crosswalks=outputs[-1].crosswalks,
        crossings=crossings,
    )


def test_only_confirmed_tracks_are_published(sample_site: SiteConfig) -> None:
    pipeline = PerceptionPipeline(sample_site, CAMERA)
    x, y = lane_point(sample_site, LANE, 40.0)
    confirm_hits = sample_site.tracking.confirm_hits
    for step in range(confirm_hits):
        output = pipeline.process(detections(step * FRAME_S, [(x, y + step, CAR)], camera_id=CAMERA))
        assert len(output.tracks) == (1 if step + 1 >= confirm_hits else 0)
        assert pipeline.active_track_count == 1


def test_detections_of_another_camera_are_refused(sample_site: SiteConfig) -> None:
    pipeline = PerceptionPipeline(sample_site, CAMERA)
    pipeline.process(Detections.empty(0.0))  # no camera id: accepted
    with pytest.raises(ValueError, match="cam_other"):
        pipeline.process(Detections.empty(0.1, camera_id="cam_other"))


def test_time_going_backwards_raises(sample_site: SiteConfig) -> None:
    pipeline = PerceptionPipeline(sample_site, CAMERA)
    pipeline.process(Detections.empty(10.0, camera_id=CAMERA))
    with pytest.raises(ValueError, match="back in time"):
        pipeline.process(Detections.empty(9.0, camera_id=CAMERA))


def test_ten_thousand_vehicles_are_each_counted_once_and_leave_no_state(sample_site: SiteConfig) -> None:
    """Every lane of the sample junction streams vehicles over its counting line; memory stays flat."""
    pipeline = PerceptionPipeline(sample_site, CAMERA)
    rng = np.random.default_rng(12)
    lanes = [lane.id for lane in sample_site.lanes]
    line_at = 2.0  # the sample site's counting lines lie ~2 m upstream of the stop lines
    # Each vehicle is seen for 4 frames at 15 m/s around the line, then drives on unseen; a new one
    # follows per lane every 6 frames (0.6 s headway).
    headway_frames = 6
    offsets = [line_at + 3.0 - 1.5 * k for k in range(4)]
    points = {lane: [lane_point(sample_site, lane, d) for d in offsets] for lane in lanes}
    vehicles = 10_000
    frames = headway_frames * vehicles // len(lanes)
    counted = 0
    peak_tracks = peak_waits = peak_memory = 0
    for frame in range(frames + 20):
        k = frame % headway_frames
        objects = [] if frame >= frames or k >= 4 else [(*points[lane][k], CAR) for lane in lanes]
        xy = np.array([(o[0], o[1]) for o in objects]).reshape(-1, 2) + rng.normal(0, 0.1, (len(objects), 2))
        output = pipeline.process(
            Detections(
                capture_time_s=frame * FRAME_S,
                ground_xy_m=xy,
                road_user=tuple(o[2] for o in objects),
                confidence=np.full(len(objects), 0.9),
                camera_id=CAMERA,
            )
        )
        counted += len(output.crossings)
        peak_tracks = max(peak_tracks, pipeline.active_track_count)
        peak_waits = max(peak_waits, pipeline.zones.tracked_waits)
        peak_memory = max(peak_memory, pipeline.counter.remembered_tracks)
    assert counted == vehicles
    assert sum(pipeline.counter.totals.values()) == vehicles
    # Per lane one seen and at most two coasting for max_coast_s: bounded, not growing.
    assert peak_tracks <= 3 * len(lanes)
    assert peak_waits <= peak_tracks and peak_memory <= peak_tracks
    assert pipeline.active_track_count == 0
    assert pipeline.zones.tracked_waits == 0
    assert pipeline.counter.remembered_tracks == 0


def test_lane_velocity_helper_matches_the_lane(sample_site: SiteConfig) -> None:
    vx, vy = lane_velocity(sample_site, LANE, 10.0)
    assert np.hypot(vx, vy) == pytest.approx(10.0)


def test_a_track_beyond_the_message_bounds_is_left_out_and_counted(sample_site: SiteConfig) -> None:
    """A car confirmed 6 km out (a position projected from near the horizon) would make the whole
    track list fail at its readers: it is left out, the genuine car beside it is kept."""
    pipeline = PerceptionPipeline(sample_site, CAMERA)
    output = None
    for step in range(20):
        t = 1000.0 + step * FRAME_S
        near = (-4.8, 60.0 - 10.0 * step * FRAME_S, CAR, 0.9)
        far = (6_000.0, 40.0, CAR, 0.9)
        output = pipeline.process(detections(t, [near, far], camera_id=CAMERA))
    assert output is not None
    assert [round(o.x_m, 1) for o in output.tracks] == [-4.8]
    assert pipeline.implausible_tracks > 0


def test_published_tracks_carry_their_image_box_detected_or_predicted(sample_site: SiteConfig) -> None:
    pipeline = PerceptionPipeline(sample_site, CAMERA)
    x, y = lane_point(sample_site, LANE, 40.0)
    published: list[TrackedObject] = []
    for step in range(8):
        box = (100.0 + 4.0 * step, 50.0, 140.0 + 4.0 * step, 80.0)
        seen = step != 6  # missed once
        output = pipeline.process(
            Detections(
                capture_time_s=10.0 + step * FRAME_S,
                ground_xy_m=np.array([[x, y]] if seen else np.zeros((0, 2))).reshape(-1, 2),
                road_user=(CAR,) if seen else (),
                confidence=np.array([0.9] if seen else []),
                boxes_px=np.array([box] if seen else np.zeros((0, 4))).reshape(-1, 4),
            )
        )
        published.extend(output.tracks)
    boxes = [(o.image_box.x1_px, o.image_box.predicted) for o in published if o.image_box is not None]
    assert len(boxes) == len(published) == 6  # confirmed from the third frame on
    assert boxes[:4] == [(108.0, False), (112.0, False), (116.0, False), (120.0, False)]
    predicted_x, predicted = boxes[4]
    assert predicted and predicted_x == pytest.approx(124.0, abs=2.0)
    assert boxes[5] == (128.0, False)
