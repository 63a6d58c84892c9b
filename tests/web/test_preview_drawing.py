"""Drawing the unit's geometry and tracks onto the camera frame, and the preview's rate."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from rsu.perception.detections import Detections
from rsu.perception.homography import Homography
from rsu.perception.pipeline import PerceptionOutput
from rsu.samples import DATASETS_DIR, SAMPLE_SITE
from rsu.web.annotate import TrailBook
from rsu.web.geometry import GroundProjector, site_layout, stop_bar_m, stop_bar_zone_m, view_bounds_m
from rsu.web.preview import CameraPreview
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages.perception import LaneObservation, TrackedObject

OTC_SITE = DATASETS_DIR / "opentrafficcam" / "site.yaml"


@pytest.fixture(scope="module")
def otc_site() -> SiteConfig:
    return load_site_config(OTC_SITE)


def test_stop_bar_and_zone_sit_at_the_end_of_the_lane(sample_site: SiteConfig) -> None:
    lane = sample_site.lanes[0]  # north_through_right: southbound, stop line at y = 12.14
    (ax, ay), (bx, by) = stop_bar_m(lane)
    assert ay == pytest.approx(12.14) and by == pytest.approx(12.14)
    assert abs(bx - ax) == pytest.approx(lane.width_m)
    zone = stop_bar_zone_m(lane)
    ys = [y for _, y in zone]
    assert min(ys) == pytest.approx(12.14) and max(ys) == pytest.approx(12.14 + lane.stop_bar_zone_length_m)


def test_site_layout_is_json_and_frames_the_junction(sample_site: SiteConfig) -> None:
    layout = json.loads(json.dumps(site_layout(sample_site)))
    assert {lane["id"] for lane in layout["lanes"]} == {lane.id for lane in sample_site.lanes}
    assert layout["simulated"] is True
    x0, y0, x1, y1 = view_bounds_m(sample_site)
    # The view opens on the junction, not on the 150 m long approaches.
    assert x1 - x0 < 100 and -50 < x0 < -14 and 14 < x1 < 50 and y0 < -14 and y1 > 14


def test_projector_maps_calibration_points_and_cuts_lines_behind_the_camera(otc_site: SiteConfig) -> None:
    camera = otc_site.cameras[0]
    homography = Homography.from_points(camera.calibration)
    projector = GroundProjector(homography)
    for point in camera.calibration:
        pixel = projector.points([point.ground_m])[0]
        assert math.dist(pixel, point.image_px) < 15
    # From the junction out past the camera (at x 22 m, y 9 m) and far beyond: only the visible part stays.
    pieces = projector.polyline([(0.0, 0.0), (60.0, 25.0), (200.0, 80.0)])
    assert len(pieces) == 1
    assert np.all(np.isfinite(pieces[0]))
    assert np.all(np.abs(pieces[0]) < 1e5)
    assert projector.polyline([(100.0, 40.0), (200.0, 80.0)]) == []


def test_trails_are_bounded_and_forget_old_tracks() -> None:
    trails = TrailBook(max_points=5, forget_after_s=1.0, max_tracks=3)
    for step in range(20):
        tracks = [track(i, x=step, y=i) for i in range(step % 7, step % 7 + 4)]
        trails.update(tracks, step * 0.1)
        assert len(trails) <= 3
    assert all(len(trails.trail(i)) <= 5 for i in range(20))
    trails.update([], 100.0)
    assert len(trails) == 0


def track(track_id: int, x: float, y: float) -> TrackedObject:
    return TrackedObject(
        track_id=track_id, road_user=RoadUserType.CAR, x_m=x, y_m=y, speed_mps=5.0, heading_deg=90.0, age_s=1.0
    )


class StepClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_preview_is_rate_limited_annotated_and_scaled(otc_site: SiteConfig) -> None:
    camera = otc_site.cameras[0]
    sent: list[bytes] = []
    clock = StepClock()
    preview = CameraPreview(otc_site, camera, sent.append, fps=2.0, width_px=400, clock=clock)
    frame = np.full((600, 800, 3), 90, dtype=np.uint8)
    boxes = np.array([[300.0, 150.0, 380.0, 200.0]])
    lane = otc_site.lanes[0]
    lanes = [
        LaneObservation(
            lane_id=lane.id,
            stop_bar_occupied=True,
            queue_length_m=5,
            queued_vehicles=1,
            approaching_vehicles=0,
            stop_bar_gap_s=0,
        )
    ]
    for i in range(10):  # 10 frames over 1 s at 2 previews per second: 2 or 3 previews
        clock.now = i * 0.1
        detections = Detections(
            capture_time_s=1000 + i * 0.1,
            ground_xy_m=np.array([[7.0, 0.4]]),
            road_user=(RoadUserType.CAR,),
            confidence=np.array([0.9]),
            boxes_px=boxes,
        )
        preview.hold(frame, detections)
        output = PerceptionOutput(
            time_s=detections.capture_time_s,
            tracks=[track(4, 7.0, 0.4 + i * 0.1)],
            lanes=lanes,
            crosswalks=[],
            crossings=[],
        )
        preview.publish(output)
    assert len(sent) == 2
    image = cv2.imdecode(np.frombuffer(sent[-1], dtype=np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape == (300, 400, 3)
    assert np.count_nonzero(np.any(np.abs(image.astype(int) - 90) > 40, axis=2)) > 500, "nothing drawn"
    assert np.all(frame == 90), "the detector's frame was drawn on"
    # The box, scaled by 0.5, is drawn in the road-user colour of a car.
    assert np.abs(image[90, 150].astype(int) - (255, 170, 60)).max() < 60


def test_preview_of_a_frame_the_pipeline_did_not_output_is_skipped(otc_site: SiteConfig) -> None:
    sent: list[bytes] = []
    preview = CameraPreview(otc_site, otc_site.cameras[0], sent.append, clock=lambda: 0.0)
    preview.hold(np.zeros((60, 80, 3), np.uint8), Detections.empty(5.0))
    assert preview.publish(PerceptionOutput(time_s=6.0, tracks=[], lanes=[], crosswalks=[], crossings=[])) is None
    assert sent == []


def test_sample_site_has_no_preview_camera() -> None:
    site = load_site_config(SAMPLE_SITE)
    assert site_layout(site)["cameras"][0]["ground_to_image"] is None
