"""Weights and tiny exported models for the detector tests, made in temporary folders (never in the repo)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsu.detectors.export import ExportResult, export_model

# Small enough to export and run in seconds; not a size anyone would deploy.
TINY_INPUT_HW = (64, 96)


@pytest.fixture(scope="session")
def weights(models_dir: Path) -> Path:
    return models_dir / "yolo11n-coco-rebuilt.pt"


@pytest.fixture(scope="session")
def tiny_onnx(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    return export_model(weights, "onnx", TINY_INPUT_HW, output_dir=tmp_path_factory.mktemp("tiny-onnx"))


@pytest.fixture(scope="session")
def tiny_openvino(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    return export_model(weights, "openvino", TINY_INPUT_HW, output_dir=tmp_path_factory.mktemp("tiny-openvino"))
