"""detector.type "onnx": a YOLO model exported to ONNX by `rsu export`, run with ONNX Runtime on the CPU.

Pre- and post-processing are shared with the OpenVINO backend (rsu.detectors.exported_yolo); only the
runtime differs. Threads: intra-op as configured, inter-op 1 (YOLO is one sequential graph).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsu.detectors.base import DetectorError
from rsu.detectors.exported_yolo import (
    ExportedYoloDetector,
    Float32Array,
    InferenceBackend,
    build_exported_detector,
    parse_class_names,
)
from rsu.detectors.registry import register
from rsu.perception.homography import Homography
from rsu_contracts.config.model import DetectorConfig


class OnnxRuntimeBackend:
    """An ONNX model in an onnxruntime CPU session with a fixed thread count."""

    def __init__(self, model_path: Path, threads: int) -> None:
        import onnxruntime as ort  # imported here: only sites that use ONNX need it

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable models
            raise DetectorError(f"cannot load ONNX model {model_path}: {exc}") from exc
        model_input = self._session.get_inputs()[0]
        shape = model_input.shape
        if len(shape) != 4 or not all(isinstance(d, int) for d in shape[2:]):
            raise DetectorError(f"{model_path}: expected a fixed (1, 3, H, W) input, got {shape}; export with --imgsz")
        self._input_name = model_input.name
        self._input_hw = (int(shape[2]), int(shape[3]))
        self.threads = threads
        metadata = self._session.get_modelmeta().custom_metadata_map
        if "names" not in metadata:
            raise DetectorError(f"{model_path} carries no class names (was it exported by Ultralytics / rsu export?)")
        self.class_names = parse_class_names(metadata["names"])
        self.int8 = _is_quantized(model_path)

    @property
    def input_hw(self) -> tuple[int, int]:
        return self._input_hw

    @property
    def description(self) -> str:
        return f"onnxruntime {'int8' if self.int8 else 'fp32'}, {self.threads} threads"

    def infer(self, blob: Float32Array) -> Float32Array:
        outputs = self._session.run(None, {self._input_name: blob})
        return np.asarray(outputs[0], dtype=np.float32)


def _is_quantized(model_path: Path) -> bool:
    """True for a QDQ INT8 model (only for reports; False when the onnx package is absent)."""
    try:
        import onnx
    except ModuleNotFoundError:
        return False
    graph = onnx.load(str(model_path), load_external_data=False).graph
    return any(node.op_type == "QuantizeLinear" for node in graph.node)


def _onnx_class_names(_model_path: Path, backend: InferenceBackend) -> dict[int, str]:
    assert isinstance(backend, OnnxRuntimeBackend)  # build_onnx_detector loads only these
    return backend.class_names


@register("onnx")
def build_onnx_detector(
    config: DetectorConfig, homography: Homography, camera_id: str, weights_dir: str | Path | None = None
) -> ExportedYoloDetector:
    return build_exported_detector(
        config,
        homography,
        camera_id,
        weights_dir,
        suffix=".onnx",
        load=lambda model_path: OnnxRuntimeBackend(model_path, config.threads),
        class_names_of=_onnx_class_names,
    )
