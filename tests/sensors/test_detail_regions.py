"""Detail regions: the crop window, cut boxes, merging across passes, the schedule, and the detector around them."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from rsu.detectors.detail import (
    CropWindow,
    DetailSchedule,
    PassDetections,
    crop_window,
    cut_by_window,
    merge_passes,
)
from rsu.detectors.exported_yolo import ExportedYoloDetector
from rsu.perception.homography import Homography
from rsu_contracts.config.model import CalibrationPoint, DetailRegionConfig, DetectorConfig
from rsu_contracts.enums import RoadUserType

CAR, TRUCK, PEDESTRIAN = RoadUserType.CAR, RoadUserType.TRUCK, RoadUserType.PEDESTRIAN
NAMES = {0: "person", 1: "bicycle", 2: "car"}


def test_the_window_takes_the_input_aspect_about_the_box_centre_and_stays_in_the_frame() -> None:
    # A 400x100 box for a 192x640 input (aspect 3.33): heightened to 120 about its centre.
    assert crop_window((400, 100, 800, 200), (192, 640), (720, 1280)) == CropWindow(400, 90, 800, 210)
    # A 100x100 box: widened to 333, then moved left to stay inside the frame.
    assert crop_window((1200, 0, 1280, 100), (192, 640), (720, 1280)) == CropWindow(947, 0, 1280, 100)
    # Wider than the frame allows: shrunk, keeping the aspect.
    window = crop_window((0, 0, 1280, 720), (192, 640), (720, 1280))
    assert (window.x1, window.x2) == (0, 1280) and window.height == 384


def test_a_region_outside_the_frame_is_an_error() -> None:
    with pytest.raises(ValueError, match="outside"):
        crop_window((2000, 0, 2100, 100), (192, 640), (720, 1280))


def test_boxes_on_an_inner_edge_of_the_window_are_cut_those_on_the_frame_edge_are_not() -> None:
    window = CropWindow(640, 0, 1280, 192)  # touches the top and right frame edges
    boxes = np.array(
        [
            [641.0, 50.0, 700.0, 90.0],  # on the window's left edge, inside the frame: cut
            [900.0, 150.0, 950.0, 192.0],  # on its bottom edge: cut
            [1200.0, 0.0, 1280.0, 40.0],  # on the frame's top and right edges: whole
            [800.0, 60.0, 860.0, 100.0],  # inside
        ]
    )
    assert cut_by_window(boxes, window, (720, 1280)).tolist() == [True, True, False, False]


def passes(*items: list[tuple[tuple[float, float, float, float], RoadUserType, float]]) -> list[PassDetections]:
    return [
        PassDetections(
            np.array([box for box, _, _ in item], dtype=np.float64).reshape(-1, 4),
            tuple(user for _, user, _ in item),
            np.array([conf for _, _, conf in item], dtype=np.float64),
        )
        for item in items
    ]


def test_one_road_user_seen_by_both_passes_is_kept_once_with_the_better_box() -> None:
    full = [((100.0, 100.0, 140.0, 120.0), CAR, 0.4), ((300.0, 100.0, 340.0, 130.0), CAR, 0.8)]
    detail = [((101.0, 99.0, 141.0, 121.0), TRUCK, 0.7)]  # the same van, called a truck
    merged = merge_passes(passes(full, detail))
    assert sorted(merged.confidence.tolist()) == [0.7, 0.8]
    assert TRUCK in merged.road_user


def test_a_box_cut_short_at_low_resolution_is_one_road_user_with_the_whole_one() -> None:
    full = [((100.0, 100.0, 120.0, 120.0), CAR, 0.3)]  # the visible half, IoU 0.5 with the whole
    detail = [((100.0, 100.0, 140.0, 120.0), CAR, 0.6)]
    merged = merge_passes(passes(full, detail))
    assert len(merged) == 1 and merged.confidence.tolist() == [0.6]


def test_boxes_of_one_pass_and_other_groups_are_never_merged() -> None:
    # Two cars of one pass overlapping (a queue), and a pedestrian over a car from the other pass.
    full = [((100.0, 100.0, 140.0, 120.0), CAR, 0.8), ((105.0, 100.0, 145.0, 120.0), CAR, 0.5)]
    detail = [((110.0, 95.0, 120.0, 120.0), PEDESTRIAN, 0.6)]
    assert len(merge_passes(passes(full, detail))) == 3


def test_a_region_runs_every_frame_or_once_per_interval_of_capture_time() -> None:
    every = DetailSchedule(DetailRegionConfig(box_px=(0, 0, 10, 10)))
    assert all(every.due(i * 0.05) for i in range(5))
    other = DetailSchedule(DetailRegionConfig(box_px=(0, 0, 10, 10), interval_s=0.1))
    assert [other.due(i / 20) for i in range(8)] == [True, False, True, False, True, False, True, False]
    assert other.due(None) and other.runs == 5  # a single picture: always
    assert other.due(0.0)  # a clock that went back (a clip starting over) restarts the schedule


def test_a_region_box_needs_its_corners_in_order() -> None:
    with pytest.raises(ValidationError, match="box_px"):
        DetailRegionConfig(box_px=(100, 0, 50, 10))


class FakeBackend:
    """A network that finds one car at fixed input pixels (cx, cy, w, h), whatever it is shown."""

    def __init__(self, input_hw: tuple[int, int], cars: list[tuple[float, float, float, float, float]]) -> None:
        self._input_hw = input_hw
        self.cars = cars
        self.shown: list[npt.NDArray[np.float32]] = []

    @property
    def input_hw(self) -> tuple[int, int]:
        return self._input_hw

    @property
    def description(self) -> str:
        return "fake"

    def infer(self, blob: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.shown.append(blob)
        output = np.zeros((1, 4 + len(NAMES), max(len(self.cars), 1)), dtype=np.float32)
        for anchor, (cx, cy, w, h, score) in enumerate(self.cars):
            output[0, :4, anchor] = (cx, cy, w, h)
            output[0, 4 + 2, anchor] = score
        return output


def detector(main: FakeBackend, detail: FakeBackend, regions: list[DetailRegionConfig]) -> ExportedYoloDetector:
    homography = Homography.from_points(
        [
            CalibrationPoint(image_px=(0.0, 720.0), ground_m=(-10.0, 0.0)),
            CalibrationPoint(image_px=(1280.0, 720.0), ground_m=(10.0, 0.0)),
            CalibrationPoint(image_px=(1280.0, 0.0), ground_m=(40.0, 100.0)),
            CalibrationPoint(image_px=(0.0, 0.0), ground_m=(-40.0, 100.0)),
        ]
    )
    config = DetectorConfig(type="openvino", weights="fake.xml", detail_regions=regions)
    return ExportedYoloDetector(main, NAMES, config, homography, "cam", [detail] * len(regions))


def test_the_detector_adds_the_far_road_users_only_the_detail_pass_finds() -> None:
    main = FakeBackend((384, 640), [])  # the full frame finds nothing
    # The detail network (192x640) finds a car at input (320, 96) and one cut by the crop's bottom edge.
    far = FakeBackend((192, 640), [(320.0, 96.0, 40.0, 20.0, 0.6), (100.0, 185.0, 40.0, 20.0, 0.7)])
    region = DetailRegionConfig(box_px=(640, 36, 1280, 228))
    found = detector(main, far, [region]).detect_image(np.zeros((720, 1280, 3), dtype=np.uint8), 0.0)
    # The window is 640x192 at (640, 36): scale 1, so the car is at frame (960, 132); the other is cut.
    assert len(found) == 1
    x1, y1, x2, y2 = found.boxes_px[0]
    assert ((x1 + x2) / 2, (y1 + y2) / 2) == pytest.approx((960.0, 132.0), abs=0.5)
    assert (x2 - x1, y2 - y1) == pytest.approx((40.0, 20.0), abs=0.5)
    assert far.shown[-1].shape == (1, 3, 192, 640)


def test_a_region_with_an_interval_runs_on_every_other_frame_at_20_fps() -> None:
    main = FakeBackend((384, 640), [])
    far = FakeBackend((192, 640), [(320.0, 96.0, 40.0, 20.0, 0.6)])
    region = DetailRegionConfig(box_px=(640, 36, 1280, 192), interval_s=0.1)
    camera = detector(main, far, [region])
    frame = np.zeros((720, 1280, 3), dtype=np.uint8)
    counts = [len(camera.detect(frame, i / 20)) for i in range(6)]
    assert counts == [1, 0, 1, 0, 1, 0]
    assert camera.detail_runs == [3]
    assert "detail region" in camera.description


def test_a_detector_needs_one_backend_per_region() -> None:
    from rsu.detectors.base import DetectorError

    with pytest.raises(DetectorError, match="detail regions"):
        ExportedYoloDetector(
            FakeBackend((384, 640), []),
            NAMES,
            DetectorConfig(type="openvino", weights="x.xml", detail_regions=[DetailRegionConfig(box_px=(0, 0, 9, 9))]),
            Homography.from_points(
                [
                    CalibrationPoint(image_px=(0.0, 720.0), ground_m=(-10.0, 0.0)),
                    CalibrationPoint(image_px=(1280.0, 720.0), ground_m=(10.0, 0.0)),
                    CalibrationPoint(image_px=(1280.0, 0.0), ground_m=(40.0, 100.0)),
                    CalibrationPoint(image_px=(0.0, 0.0), ground_m=(-40.0, 100.0)),
                ]
            ),
            "cam",
        )
