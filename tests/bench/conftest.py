"""Exported models for the footage tests, made once per session in a temporary folder (never in the repo)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsu.detectors.export import ExportResult, export_model

OTC_INPUT_HW = (480, 640)  # the OpenTrafficCam clips are 800x600, 4:3


@pytest.fixture(scope="session")
def weights(models_dir: Path) -> Path:
    return models_dir / "yolo11n-coco-rebuilt.pt"


@pytest.fixture(scope="session")
def otc_clips(footage_dir: Path) -> tuple[Path, Path]:
    folder = footage_dir / "opentrafficcam"
    return (
        folder / "Testvideo_FR20_2020-02-20_13-11-00.mp4",
        folder / "Testvideo_FR20_2020-02-20_13-11-10.mp4",
    )


@pytest.fixture(scope="session")
def exported_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exported")


@pytest.fixture(scope="session")
def openvino_fp32(weights: Path, exported_dir: Path) -> ExportResult:
    return export_model(weights, "openvino", OTC_INPUT_HW, output_dir=exported_dir)


@pytest.fixture(scope="session")
def openvino_int8(weights: Path, exported_dir: Path, footage_dir: Path) -> ExportResult:
    # Calibrated on another clip than the one it is checked on, with few frames to stay quick.
    calibration = footage_dir / "motorway" / "degirum_Traffic.mp4"
    return export_model(
        weights, "openvino", OTC_INPUT_HW, int8=True, calibration=[calibration], calibration_frames=8,
        output_dir=exported_dir,
    )  # fmt: skip


@pytest.fixture(scope="session")
def onnx_fp32(weights: Path, exported_dir: Path) -> ExportResult:
    return export_model(weights, "onnx", OTC_INPUT_HW, output_dir=exported_dir)
