"""YOLO exported to ONNX by `rsu export`, run with ONNX Runtime on the CPU.

Pre- and post-processing are shared with the OpenVINO detector (ExportedYoloDetector); only the
runtime differs. Threads: intra-op as configured, inter-op 1 (YOLO is one sequential graph).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsu.config.model import DetailRegionConfig, DetectorConfig
from rsu.perception.homography import Homography
from rsu.sensors.openvino_detector import (
    ExportedYoloDetector,
    Float32Array,
    check_input_size,
    check_same_classes,
    parse_class_names,
    resolve_model_file,
)
from rsu.sensors.yolo import DetectorError


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


def build_onnx_detector(
    config: DetectorConfig, homography: Homography, camera_id: str, weights_dir: str | Path | None = None
) -> ExportedYoloDetector:
    model_path = resolve_model_file(config.weights, weights_dir, ".onnx")
    backend = OnnxRuntimeBackend(model_path, config.threads)
    check_input_size(config, backend.input_hw, model_path)
    detail_backends: dict[str, OnnxRuntimeBackend] = {}

    def detail_backend(region: DetailRegionConfig) -> OnnxRuntimeBackend:
        if region.weights is None:
            return backend
        if region.weights not in detail_backends:
            detail_path = resolve_model_file(region.weights, weights_dir, ".onnx")
            detail = OnnxRuntimeBackend(detail_path, config.threads)
            check_same_classes(backend.class_names, detail.class_names, detail_path)
            detail_backends[region.weights] = detail
        return detail_backends[region.weights]

    return ExportedYoloDetector(
        backend, backend.class_names, config, homography, camera_id, [detail_backend(r) for r in config.detail_regions]
    )
