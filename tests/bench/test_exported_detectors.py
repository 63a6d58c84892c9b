"""Exported models (ONNX, OpenVINO FP32 and INT8) find what the .pt finds on OpenTrafficCam frames."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from rsu.detectors.base import DetectorError
from rsu.detectors.classes import COCO_NAME_TO_ROAD_USER
from rsu.detectors.export import ExportError, ExportResult, check_input_size, export_model
from rsu.detectors.exported_yolo import ExportedYoloDetector, letterbox
from rsu.detectors.factory import build_detector
from rsu.detectors.openvino_backend import build_openvino_detector
from rsu.perception.homography import Homography
from rsu.samples import OPENTRAFFICCAM_SITE as SITE_FILE
from rsu_contracts.config import load_site_config
from rsu_contracts.config.model import DetectorConfig
from rsu_contracts.enums import RoadUserType
from rsu_tools.evaluation import iou_matrix

FRAME_INDICES = (40, 100, 160)


@pytest.fixture(scope="module")
def frames(otc_clips: tuple[Path, Path]) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(otc_clips[0]))
    images: list[np.ndarray] = []
    index = 0
    while len(images) < len(FRAME_INDICES):
        ok, image = capture.read()
        assert ok
        if index in FRAME_INDICES:
            images.append(image)
        index += 1
    capture.release()
    return images


@pytest.fixture(scope="module")
def homography() -> Homography:
    return Homography.from_points(load_site_config(SITE_FILE).cameras[0].calibration)


@pytest.fixture(scope="module")
def reference(weights: Path, frames: list[np.ndarray]) -> list[tuple[np.ndarray, list[RoadUserType]]]:
    """The .pt through Ultralytics' own predict(), road-user classes only, riders not merged."""
    from rsu.detectors.ultralytics_setup import prepare_ultralytics

    prepare_ultralytics(2)
    from ultralytics import YOLO

    model = YOLO(str(weights))
    names = dict(model.names)
    classes = [i for i, name in names.items() if name in COCO_NAME_TO_ROAD_USER]
    found = []
    for image in frames:
        result: Any = next(iter(model.predict(image, imgsz=640, classes=classes, conf=0.25, verbose=False)))
        users = [COCO_NAME_TO_ROAD_USER[names[int(c)]] for c in result.boxes.cls]
        found.append((result.boxes.xyxy.numpy().astype(np.float64), users))
    return found


def detector_for(result: ExportResult, homography: Homography) -> ExportedYoloDetector:
    kind = "openvino" if result.format == "openvino" else "onnx"
    camera = load_site_config(SITE_FILE).cameras[0]
    # Ultralytics' own post-processing exactly: no rider merging, class-by-class NMS.
    config = DetectorConfig(
        type=kind, weights=str(result.model_path), merge_riders=False, merge_confusable_classes=False
    )
    detector = build_detector(camera.model_copy(update={"detector": config}), homography=homography)
    assert isinstance(detector, ExportedYoloDetector)
    return detector


def matched_share(reference: np.ndarray, found: np.ndarray, min_iou: float) -> float:
    if len(reference) == 0:
        return 1.0
    return float(np.mean(iou_matrix(reference, found).max(axis=1, initial=0.0) >= min_iou))


@pytest.mark.footage
@pytest.mark.parametrize("model", ["openvino_fp32", "onnx_fp32"])
def test_fp32_exports_give_the_same_boxes_as_the_pt(
    model: str, request: pytest.FixtureRequest, homography: Homography, frames: list[np.ndarray], reference: Any
) -> None:
    result: ExportResult = request.getfixturevalue(model)
    assert result.input_hw == (480, 640) and not result.int8
    detector = detector_for(result, homography)
    assert detector.input_hw == (480, 640)
    for image, (ref_boxes, ref_users) in zip(frames, reference, strict=True):
        found = detector.detect_image(image)
        assert len(found) == len(ref_boxes)
        assert matched_share(ref_boxes, found.boxes_px, 0.95) == 1.0
        assert sorted(found.road_user) == sorted(ref_users)


@pytest.mark.footage
def test_int8_export_finds_nearly_the_same_road_users(
    openvino_int8: ExportResult, homography: Homography, frames: list[np.ndarray], reference: Any
) -> None:
    assert openvino_int8.int8 and openvino_int8.calibration_frames == 8
    detector = detector_for(openvino_int8, homography)
    assert "int8" in detector.description
    shares = [
        matched_share(ref_boxes, detector.detect_image(image).boxes_px, 0.5)
        for image, (ref_boxes, _) in zip(frames, reference, strict=True)
    ]
    assert float(np.mean(shares)) >= 0.8


@pytest.mark.footage
def test_exported_detector_places_road_users_on_the_ground(
    openvino_fp32: ExportResult, homography: Homography, frames: list[np.ndarray]
) -> None:
    detector = detector_for(openvino_fp32, homography)
    detections = detector.detect(frames[1], 5.0)
    assert detections.capture_time_s == 5.0 and len(detections) > 0
    assert RoadUserType.CAR in detections.road_user
    assert np.all(np.abs(detections.ground_xy_m) < 100.0)
    assert "inference_s" in detections.extras


@pytest.mark.footage
def test_a_site_imgsz_that_differs_from_the_model_input_is_refused(
    openvino_fp32: ExportResult, homography: Homography
) -> None:
    config = DetectorConfig(type="openvino", weights=str(openvino_fp32.model_path.parent), imgsz=(384, 640))
    with pytest.raises(DetectorError, match=r"does not match the input \[480, 640\]"):
        build_openvino_detector(config, homography, "cam")


def test_export_refuses_sizes_that_are_not_multiples_of_the_stride(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="multiples of 32"):
        check_input_size([360, 640])
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"")
    with pytest.raises(ExportError, match="--calibration"):
        export_model(weights, "openvino", (384, 640), int8=True)
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        if not os.access(read_only, os.W_OK):  # root writes anywhere: nothing to check then
            with pytest.raises(ExportError, match="give another folder with --output"):
                export_model(weights, "openvino", (384, 640), output_dir=read_only)
    finally:
        read_only.chmod(0o700)


def test_letterbox_matches_ultralytics_padding() -> None:
    image = np.zeros((720, 1280, 3), dtype=np.uint8)
    padded, placement = letterbox(image, (384, 640))
    assert padded.shape == (384, 640, 3)
    assert (placement.scale, placement.pad_x, placement.pad_y) == (0.5, 0, 12)
    assert padded[0, 0].tolist() == [114, 114, 114] and padded[12, 0].tolist() == [0, 0, 0]


@pytest.mark.footage
def test_export_and_detection_never_touch_the_network(
    weights: Path, tmp_path: Path, homography: Homography, frames: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenVINO's converter would send telemetry without a consent file; nothing may leave the box."""
    attempts: list[str] = []

    def refuse_connect(self: socket.socket, address: Any) -> None:
        attempts.append(f"connect {address}")
        raise OSError("network disabled by the test")

    def refuse_dns(host: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(f"resolve {host}")
        raise socket.gaierror("name resolution disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse_connect)
    monkeypatch.setattr(socket, "getaddrinfo", refuse_dns)
    monkeypatch.setenv("HOME", str(tmp_path))  # no consent file from an earlier run
    result = export_model(weights, "openvino", (256, 320), output_dir=tmp_path)
    detector = detector_for(result, homography)
    assert len(detector.detect_image(frames[1])) > 0
    assert attempts == []


def raw_output(*boxes: tuple[float, float, float, float, int, float], classes: int = 8) -> np.ndarray:
    """A raw (1, 4 + classes, anchors) YOLO output from (cx, cy, w, h, class, score) anchors."""
    output = np.zeros((1, 4 + classes, len(boxes)), dtype=np.float32)
    for anchor, (cx, cy, w, h, class_id, score) in enumerate(boxes):
        output[0, :4, anchor] = (cx, cy, w, h)
        output[0, 4 + class_id, anchor] = score
    return output


def test_decoding_keeps_wanted_classes_and_merges_confusable_duplicates() -> None:
    from rsu.detectors.exported_yolo import Letterbox, decode_yolo_output

    wanted = np.array([True, False, True, False, False, False, False, True])  # person, car, truck
    output = raw_output(
        (100, 100, 40, 20, 2, 0.8),  # a van as a car ...
        (100, 100, 40, 21, 7, 0.5),  # ... and as a truck
        (300, 100, 20, 40, 0, 0.9),  # a person
        (500, 100, 20, 20, 1, 0.9),  # best class not a road user: dropped, as predict(classes=...) does
        (600, 100, 20, 20, 2, 0.2),  # under the confidence threshold
    )
    placement = Letterbox(scale=0.5, pad_x=0, pad_y=12)
    boxes, classes, confidence = decode_yolo_output(output, placement, (720, 1280), 0.25, 0.7, wanted)
    assert classes.tolist() == [0, 2, 7]  # class by class, as Ultralytics: both van boxes survive
    groups = np.array([0, 1, 10, 3, 4, 5, 6, 10])  # car and truck in one group
    boxes, classes, confidence = decode_yolo_output(output, placement, (720, 1280), 0.25, 0.7, wanted, groups)
    assert classes.tolist() == [0, 2] and confidence.tolist() == pytest.approx([0.9, 0.8])
    # Back to frame pixels: (x - pad) / scale.
    assert boxes[1].tolist() == pytest.approx([160.0, 156.0, 240.0, 196.0])
