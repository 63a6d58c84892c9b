"""The fixed input size of an exported model, read from the file, and the site's `imgsz` checked against it.

An exported YOLO model (`rsu export`: OpenVINO IR or ONNX) has one input size baked in; the detector
always runs at that size. A site file that also sets `detector.imgsz` must give the same size, else
the setting would silently mean nothing: `check_camera_input_size` says so naming the field, and
`rsu check-config` calls it for every video camera, without compiling the model (only its graph
header is read), so the check is quick and needs no inference runtime beyond the reader.
"""

from __future__ import annotations

from pathlib import Path

from rsu.detectors.base import DetectorError
from rsu.detectors.exported_yolo import check_input_size, resolve_model_file
from rsu_contracts.config.model import CameraConfig

EXPORTED_SUFFIX = {"openvino": ".xml", "onnx": ".onnx"}


def exported_input_hw(detector_type: str, model_path: Path) -> tuple[int, int]:
    """(height, width) of the model's (1, 3, H, W) input; DetectorError if it is not fixed or not that shape."""
    if detector_type == "openvino":
        import openvino as ov

        try:
            shape = ov.Core().read_model(str(model_path)).input(0).get_partial_shape()
        except Exception as exc:  # OpenVINO raises its own untyped errors for unreadable files
            raise DetectorError(f"cannot read OpenVINO model {model_path}: {exc}") from exc
        if shape.is_dynamic:
            raise DetectorError(f"{model_path}: the model input {shape} is dynamic; export it with a fixed --imgsz")
        dims: list[int | str | None] = [int(d.get_length()) for d in shape]
    elif detector_type == "onnx":
        import onnx

        try:
            graph = onnx.load(str(model_path), load_external_data=False).graph
        except Exception as exc:  # a truncated or foreign file
            raise DetectorError(f"cannot read ONNX model {model_path}: {exc}") from exc
        initialisers = {tensor.name for tensor in graph.initializer}
        inputs = [i for i in graph.input if i.name not in initialisers]
        if not inputs:
            raise DetectorError(f"{model_path}: the model has no input")
        dims = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in inputs[0].type.tensor_type.shape.dim
        ]
    else:
        raise DetectorError(f"detector.type {detector_type!r} has no exported model file")
    if len(dims) != 4 or not all(isinstance(d, int) and d > 0 for d in dims) or dims[:2] != [1, 3]:
        raise DetectorError(f"{model_path}: expected a fixed (1, 3, H, W) input, got {dims}; export with --imgsz")
    height, width = dims[2], dims[3]
    assert isinstance(height, int) and isinstance(width, int)
    return height, width


def check_camera_input_size(camera: CameraConfig, config_dir: str | Path | None) -> tuple[int, int] | None:
    """For a camera with an exported model: its input size, after checking detector.imgsz against it.

    None for other detector types (Ultralytics runs a .pt at whatever imgsz says). Raises DetectorError
    naming `cameras[<id>].detector.imgsz` on a mismatch, or the weights field when the model is missing.
    """
    suffix = EXPORTED_SUFFIX.get(camera.detector.type)
    if suffix is None:
        return None
    try:
        model_path = resolve_model_file(camera.detector.weights, config_dir, suffix)
    except DetectorError as exc:
        raise DetectorError(f"cameras[{camera.id}].detector.weights: {exc}") from exc
    model_hw = exported_input_hw(camera.detector.type, model_path)
    check_input_size(camera.detector, model_hw, model_path, f"cameras[{camera.id}].detector.imgsz")
    return model_hw
