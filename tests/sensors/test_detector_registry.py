"""The detector registry: detector.type picks the registered builder; an unknown type is a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rsu.detectors import registry
from rsu.detectors.base import DetectorError, ImageArray
from rsu.detectors.factory import build_detector
from rsu.perception.detections import Detections
from rsu.perception.homography import Homography
from rsu.perception.motion import MotionGatedDetector
from rsu_contracts.config.model import CalibrationPoint, CameraConfig, DetectorConfig, MotionGateConfig
from rsu_contracts.enums import CameraSource


def video_camera(detector: DetectorConfig) -> CameraConfig:
    camera = CameraConfig(
        id="north",
        source=CameraSource.VIDEO,
        uri="clip.mp4",
        calibration=[
            CalibrationPoint(image_px=(u, v), ground_m=(u / 100, (600 - v) / 100))
            for u, v in [(0, 600), (800, 600), (800, 0), (0, 0)]
        ],
    )
    # model_copy does not validate, so a type the config schema does not list yet gets through to the factory.
    return camera.model_copy(update={"detector": detector})


class RecordingDetector:
    """A Detector that remembers what its builder was given and finds nothing."""

    def __init__(self, config: DetectorConfig, homography: Homography, camera_id: str, weights_dir: object) -> None:
        self.config, self.homography, self.camera_id, self.weights_dir = config, homography, camera_id, weights_dir

    def detect(self, frame_bgr: ImageArray, capture_time_s: float) -> Detections:
        return Detections(
            capture_time_s=capture_time_s, ground_xy_m=np.zeros((0, 2)), road_user=(), confidence=np.zeros(0)
        )


@pytest.fixture
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test are undone after it (the built-in backends stay)."""
    registry.known_types()  # the built-in backends are registered before the copy is taken
    monkeypatch.setattr(registry, "_builders", dict(registry._builders))


def test_the_built_in_types_are_registered() -> None:
    assert {"ultralytics", "openvino", "onnx"} <= set(registry.known_types())


def test_an_unknown_type_names_the_field_and_the_known_types() -> None:
    camera = video_camera(DetectorConfig().model_copy(update={"type": "coral-tpu"}))
    with pytest.raises(DetectorError) as error:
        build_detector(camera)
    message = str(error.value)
    assert "cameras[north].detector.type 'coral-tpu' is not supported" in message
    assert "known types: onnx, openvino, ultralytics" in message


def test_a_registered_builder_is_picked_by_its_type(own_registry: None, tmp_path: Path) -> None:
    @registry.register("recording")
    def build_recording(
        config: DetectorConfig, homography: Homography, camera_id: str, weights_dir: str | Path | None
    ) -> RecordingDetector:
        return RecordingDetector(config, homography, camera_id, weights_dir)

    config = DetectorConfig().model_copy(update={"type": "recording"})
    detector = build_detector(video_camera(config), config_dir=tmp_path)
    assert isinstance(detector, RecordingDetector)
    assert (detector.config.type, detector.camera_id, detector.weights_dir) == ("recording", "north", tmp_path)
    # Ground (x, y) = (u / 100, (600 - v) / 100), as the camera's calibration says.
    np.testing.assert_allclose(detector.homography.image_to_ground(np.array([[400.0, 100.0]])), [[4.0, 5.0]])
    assert "recording" in registry.known_types()


def test_the_motion_gate_is_wrapped_around_any_registered_backend(own_registry: None) -> None:
    registry.register("recording")(RecordingDetector)
    config = DetectorConfig(motion=MotionGateConfig(enabled=True)).model_copy(update={"type": "recording"})
    detector = build_detector(video_camera(config))
    assert isinstance(detector, MotionGatedDetector)
    assert isinstance(detector.detector, RecordingDetector)


def test_a_type_cannot_be_registered_twice_by_different_builders(own_registry: None) -> None:
    registry.register("recording")(RecordingDetector)

    def another_builder(
        config: DetectorConfig, homography: Homography, camera_id: str, weights_dir: str | Path | None
    ) -> RecordingDetector:
        return RecordingDetector(config, homography, camera_id, weights_dir)

    with pytest.raises(DetectorError, match="registered twice"):
        registry.register("recording")(another_builder)
    registry.register("recording")(RecordingDetector)  # the same builder again (a module imported twice) is fine
