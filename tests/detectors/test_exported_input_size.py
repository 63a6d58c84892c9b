"""An exported model's input size comes from the file; a site's detector.imgsz must match it, and
`rsu check-config` rejects a mismatch naming the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from rsu.detectors.base import DetectorError
from rsu.detectors.export import ExportResult
from rsu.detectors.factory import build_detector
from rsu.detectors.model_input import check_camera_input_size, exported_input_hw
from rsu.samples import JAMCAM_SITE
from rsu.sensors.video import expand_uri
from rsu_cli import main
from rsu_contracts.config import load_site_config
from rsu_contracts.config.model import CameraConfig, DetectorConfig
from tests.detectors.conftest import TINY_INPUT_HW


def camera_with(detector: dict[str, object]) -> CameraConfig:
    """The JamCam site's first camera with these detector settings only (imgsz unset unless given)."""
    camera = load_site_config(JAMCAM_SITE).cameras[0]
    return camera.model_copy(update={"detector": DetectorConfig.model_validate(detector)})


def site_file_with(tmp_path: Path, detector: dict[str, object]) -> Path:
    """The JamCam site with its cameras' detector replaced (other paths made absolute)."""
    raw = yaml.safe_load(JAMCAM_SITE.read_text())
    for camera in raw["cameras"]:
        camera["uri"] = expand_uri(camera["uri"], JAMCAM_SITE.parent)
        camera["detector"] = detector
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.footage
@pytest.mark.parametrize("kind", ["onnx", "openvino"])
def test_the_input_size_is_read_from_the_exported_file(
    kind: str, tiny_onnx: ExportResult, tiny_openvino: ExportResult
) -> None:
    model = tiny_onnx if kind == "onnx" else tiny_openvino
    assert exported_input_hw(kind, model.model_path) == TINY_INPUT_HW


@pytest.mark.footage
def test_without_imgsz_the_detector_runs_at_the_models_size(tiny_openvino: ExportResult) -> None:
    camera = camera_with({"type": "openvino", "weights": str(tiny_openvino.model_path)})
    assert check_camera_input_size(camera, None) == TINY_INPUT_HW
    detector = build_detector(camera)
    assert getattr(detector, "input_hw", None) == TINY_INPUT_HW


@pytest.mark.footage
@pytest.mark.parametrize("kind", ["onnx", "openvino"])
def test_an_imgsz_that_matches_is_accepted_and_one_that_differs_is_rejected_naming_the_field(
    kind: str, tiny_onnx: ExportResult, tiny_openvino: ExportResult
) -> None:
    model = tiny_onnx if kind == "onnx" else tiny_openvino
    matching = camera_with({"type": kind, "weights": str(model.model_path), "imgsz": list(TINY_INPUT_HW)})
    assert check_camera_input_size(matching, None) == TINY_INPUT_HW
    square = camera_with({"type": kind, "weights": str(model.model_path), "imgsz": 640})
    message = f"cameras[{square.id}].detector.imgsz [640, 640] does not match the input [64, 96]"
    with pytest.raises(DetectorError, match=re.escape(message)):
        check_camera_input_size(square, None)
    # The detector itself refuses it too.
    with pytest.raises(DetectorError, match=re.escape("detector.imgsz [640, 640]")):
        build_detector(square)


@pytest.mark.footage
def test_check_config_rejects_a_mismatched_imgsz_naming_the_camera_and_field(
    tmp_path: Path, tiny_openvino: ExportResult, capsys: pytest.CaptureFixture[str]
) -> None:
    good = site_file_with(tmp_path, {"type": "openvino", "weights": str(tiny_openvino.model_path)})
    assert main(["check-config", str(good)]) == 0
    assert "valid site config" in capsys.readouterr().out
    bad = site_file_with(tmp_path, {"type": "openvino", "weights": str(tiny_openvino.model_path), "imgsz": [384, 640]})
    assert main(["check-config", str(bad)]) == 2
    error = capsys.readouterr().err
    assert "cameras[jamcam_20190628].detector.imgsz [384, 640]" in error
    assert "cameras[jamcam_20190702].detector.imgsz" in error
    assert "[64, 96]" in error and "rsu export --imgsz 384 640" in error


def test_check_config_names_the_weights_field_when_the_exported_model_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = site_file_with(tmp_path, {"type": "onnx", "weights": str(tmp_path / "absent.onnx")})
    assert main(["check-config", str(bad)]) == 2
    assert "cameras[jamcam_20190628].detector.weights" in capsys.readouterr().err
