"""The detector's pure parts: boxes to ground positions, the class map, and finding the weights offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rsu.detectors import ultralytics_backend as yolo
from rsu.detectors.base import DetectorError
from rsu.detectors.classes import COCO_NAME_TO_ROAD_USER
from rsu.detectors.factory import build_detector
from rsu.detectors.ground import place_on_ground
from rsu.detectors.ultralytics_backend import resolve_weights
from rsu.perception.homography import Homography
from rsu_contracts.config.model import CalibrationPoint, CameraConfig
from rsu_contracts.enums import RoadUserType

# Pixels are centimetres on the ground, y flipped: ground (x, y) m = (u / 100, (600 - v) / 100).
FLAT = Homography.from_points(
    [
        CalibrationPoint(image_px=(u, v), ground_m=(u / 100, (600 - v) / 100))
        for u, v in [(0, 600), (800, 600), (800, 0), (0, 0)]
    ]
)


def test_coco_classes_map_to_road_users() -> None:
    assert dict(COCO_NAME_TO_ROAD_USER) == {
        "person": RoadUserType.PEDESTRIAN,
        "bicycle": RoadUserType.BICYCLE,
        "car": RoadUserType.CAR,
        "motorcycle": RoadUserType.MOTORCYCLE,
        "bus": RoadUserType.BUS,
        "truck": RoadUserType.TRUCK,
    }


def test_the_ground_position_is_the_bottom_centre_of_the_box() -> None:
    boxes = np.array([[100.0, 200.0, 300.0, 400.0], [500.0, 0.0, 520.0, 50.0]])
    detections = place_on_ground(
        boxes, [RoadUserType.CAR, RoadUserType.PEDESTRIAN], np.array([0.9, 0.4]), FLAT, 12.5, "cam"
    )
    np.testing.assert_allclose(detections.ground_xy_m, [[2.0, 2.0], [5.1, 5.5]])
    assert detections.road_user == (RoadUserType.CAR, RoadUserType.PEDESTRIAN)
    assert detections.boxes_px is not None
    np.testing.assert_allclose(detections.boxes_px, boxes)
    assert (detections.capture_time_s, detections.camera_id) == (12.5, "cam")


def test_boxes_ending_above_the_horizon_are_left_out() -> None:
    # A perspective camera whose horizon is image row 100 (see tests/sensors/test_homography.py).
    ground_to_image = np.array([[40.0, 20.0, 400.0], [0.0, 5.0, 662.5], [0.0, 0.05, 1.0]])
    ground = [(-8.0, 5.0), (8.0, 5.0), (10.0, 30.0), (-10.0, 30.0)]
    points = []
    for x, y in ground:
        u, v, w = ground_to_image @ [x, y, 1.0]
        points.append(CalibrationPoint(image_px=(u / w, v / w), ground_m=(x, y)))
    homography = Homography.from_points(points)
    boxes = np.array([[380.0, 300.0, 420.0, 500.0], [380.0, 20.0, 420.0, 80.0]])
    detections = place_on_ground(boxes, [RoadUserType.CAR, RoadUserType.BUS], np.array([0.9, 0.8]), homography, 0.0)
    assert detections.road_user == (RoadUserType.CAR,)
    assert detections.extras["dropped_above_horizon"] == 1


@pytest.fixture
def no_ultralytics_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Keep the machine's own Ultralytics weights folder out of the search."""
    elsewhere = tmp_path / "ultralytics_weights"
    monkeypatch.setattr(yolo, "_ultralytics_weight_dirs", lambda name: [elsewhere / name])
    monkeypatch.chdir(tmp_path)
    return elsewhere


def test_weights_are_found_by_path_relative_to_the_site_folder(tmp_path: Path) -> None:
    weights = tmp_path / "models" / "detector.pt"
    weights.parent.mkdir()
    weights.write_bytes(b"x")
    assert resolve_weights(str(weights)) == str(weights)
    assert resolve_weights("models/detector.pt", tmp_path) == str(weights)


def test_weights_paths_expand_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "detector.pt").write_bytes(b"x")
    monkeypatch.setenv("RSU_TEST_MODELS", str(tmp_path))
    assert resolve_weights("${RSU_TEST_MODELS}/detector.pt") == str(tmp_path / "detector.pt")
    monkeypatch.delenv("RSU_TEST_MODELS")
    assert resolve_weights("${RSU_TEST_MODELS:-.}/detector.pt", tmp_path) == str(tmp_path / "detector.pt")


def test_a_missing_weights_path_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match=r"not found: .*/models/missing\.pt"):
        resolve_weights("models/missing.pt", tmp_path)


def test_a_standard_name_offline_is_a_clear_error(no_ultralytics_dirs: Path, tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="offline") as error:
        resolve_weights("yolo11n.pt", tmp_path / "site", online=lambda: False)
    assert "yolo11n.pt" in str(error.value)


def test_a_standard_name_online_is_left_to_ultralytics(no_ultralytics_dirs: Path) -> None:
    assert resolve_weights("yolo11n.pt", online=lambda: True) == "yolo11n.pt"


def test_an_unknown_bare_name_is_never_downloaded(no_ultralytics_dirs: Path) -> None:
    def online() -> bool:
        raise AssertionError("must not check the network for a name Ultralytics cannot download")

    with pytest.raises(DetectorError, match="not found"):
        resolve_weights("my_custom_model.pt", online=online)


def test_a_standard_name_in_the_working_directory_is_used(no_ultralytics_dirs: Path, tmp_path: Path) -> None:
    (tmp_path / "yolo11n.pt").write_bytes(b"x")
    assert resolve_weights("yolo11n.pt", online=lambda: False) == str(tmp_path / "yolo11n.pt")


def test_a_simulated_camera_has_no_detector() -> None:
    with pytest.raises(DetectorError, match="simulation camera"):
        build_detector(CameraConfig(id="sim"))
