"""detector.type "openvino": a YOLO model exported to OpenVINO IR by `rsu export`, on the CPU.

Only the runtime lives here; letterbox, decoding, NMS and detail regions are shared with the ONNX
backend (rsu.detectors.exported_yolo). The class names come from metadata.yaml beside the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rsu.detectors.base import DetectorError
from rsu.detectors.exported_yolo import ExportedYoloDetector, Float32Array, build_exported_detector, parse_class_names
from rsu.detectors.registry import register
from rsu.perception.homography import Homography
from rsu_contracts.config.model import DetectorConfig


class OpenVinoBackend:
    """An OpenVINO IR (.xml + .bin) compiled for the CPU with a fixed thread count."""

    def __init__(self, model_xml: Path, threads: int, precision: str = "f32") -> None:
        import openvino as ov  # imported here: only sites that use OpenVINO need it installed

        core = ov.Core()
        model = core.read_model(str(model_xml))
        shape = model.input(0).get_partial_shape()
        if shape.is_dynamic:
            raise DetectorError(f"{model_xml}: the model input {shape} is dynamic; export it with a fixed --imgsz")
        dims = [int(d.get_length()) for d in shape]
        if len(dims) != 4 or dims[:2] != [1, 3]:
            raise DetectorError(f"{model_xml}: expected a (1, 3, H, W) input, got {dims}")
        self._input_hw = (dims[2], dims[3])
        self.int8 = any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
        self.precision = precision
        self.threads = threads
        self._compiled = core.compile_model(
            model,
            "CPU",
            {
                "INFERENCE_NUM_THREADS": threads,
                "NUM_STREAMS": 1,
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": precision,
            },
        )
        self._request = self._compiled.create_infer_request()

    @property
    def input_hw(self) -> tuple[int, int]:
        return self._input_hw

    @property
    def description(self) -> str:
        weights = "int8" if self.int8 else "fp32"
        return f"openvino {weights} weights, {self.precision} compute, {self.threads} threads"

    def infer(self, blob: Float32Array) -> Float32Array:
        self._request.infer({0: blob})
        return np.asarray(self._request.get_output_tensor(0).data, dtype=np.float32)


def openvino_class_names(model_xml: Path) -> dict[int, str]:
    """Names from metadata.yaml beside the model (written by Ultralytics' export and by `rsu export`)."""
    metadata_file = model_xml.parent / "metadata.yaml"
    if not metadata_file.is_file():
        raise DetectorError(f"{metadata_file} not found: it holds the class names of {model_xml.name}")
    metadata: Any = yaml.safe_load(metadata_file.read_text(encoding="utf-8"))
    if not isinstance(metadata, Mapping) or "names" not in metadata:
        raise DetectorError(f"{metadata_file} has no class names")
    return parse_class_names(metadata["names"])


@register("openvino")
def build_openvino_detector(
    config: DetectorConfig, homography: Homography, camera_id: str, weights_dir: str | Path | None = None
) -> ExportedYoloDetector:
    return build_exported_detector(
        config,
        homography,
        camera_id,
        weights_dir,
        suffix=".xml",
        load=lambda model_xml: OpenVinoBackend(model_xml, config.threads, config.inference_precision),
        class_names_of=lambda model_xml, _backend: openvino_class_names(model_xml),
    )
