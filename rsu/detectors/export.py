"""`rsu export`: a YOLO .pt to ONNX or OpenVINO with a fixed, non-square input, optionally INT8.

    rsu export --weights yolo11n.pt --format openvino --imgsz 384 640 [--int8 --calibration clip.mp4]

The input should match the camera's aspect ratio (384x640 for 16:9, 480x640 for 4:3): a square
input spends a third of the network on grey padding. The float export is Ultralytics' own; INT8 is
post-training quantisation calibrated on frames of the given clips or images (ideally the site's own
camera, never the clip the accuracy is then measured on): NNCF for OpenVINO, ONNX Runtime's static
QDQ quantisation for ONNX. As Ultralytics does, the detection head's box decoding stays in float,
one INT8 scale cannot hold box pixels (0-640) and class scores (0-1) at once.

Everything runs offline: Ultralytics is prepared by prepare_ultralytics(), and the telemetry that
OpenVINO's converter and NNCF send when no consent file exists is declined for this process.
Ultralytics writes its export next to the weights, so the weights are copied into a scratch folder
first; the result goes to --output (default: beside the weights).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from rsu.detectors.exported_yolo import Float32Array, letterbox, to_blob

log = logging.getLogger(__name__)

ExportFormat = Literal["onnx", "openvino"]
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
DEFAULT_CALIBRATION_FRAMES = 200
STRIDE = 32


class ExportError(RuntimeError):
    """The export cannot be done as asked (bad size, missing calibration, unreadable weights)."""


@dataclass(frozen=True)
class ExportResult:
    model_path: Path  # the .onnx file or the OpenVINO .xml
    format: ExportFormat
    input_hw: tuple[int, int]
    int8: bool
    calibration_frames: int

    def summary(self) -> str:
        precision = f"INT8 (calibrated on {self.calibration_frames} frames)" if self.int8 else "FP32"
        h, w = self.input_hw
        return f"{self.model_path}: {self.format} {precision}, input {h}x{w}"


def check_input_size(imgsz: Sequence[int]) -> tuple[int, int]:
    if len(imgsz) != 2:
        raise ExportError(f"--imgsz takes height and width, got {list(imgsz)}")
    height, width = int(imgsz[0]), int(imgsz[1])
    if height <= 0 or width <= 0 or height % STRIDE or width % STRIDE:
        raise ExportError(f"--imgsz {height} {width}: both must be positive multiples of {STRIDE} (the YOLO stride)")
    return height, width


def export_model(
    weights: Path,
    fmt: ExportFormat,
    imgsz: Sequence[int],
    *,
    int8: bool = False,
    calibration: Sequence[Path] = (),
    calibration_frames: int = DEFAULT_CALIBRATION_FRAMES,
    output_dir: Path | None = None,
    threads: int = 2,
) -> ExportResult:
    """Export `weights` and return where the model went; see the module docstring."""
    input_hw = check_input_size(imgsz)
    if not weights.is_file():
        raise ExportError(f"weights not found: {weights}")
    if int8 and not calibration:
        raise ExportError("--int8 needs --calibration: video files, images or folders of images from the camera")
    output_dir = (output_dir if output_dir is not None else weights.parent).resolve()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=output_dir):
            pass
    except OSError as exc:
        raise ExportError(f"cannot write to {output_dir} ({exc.strerror}); give another folder with --output") from exc
    calibration_blobs = load_calibration_blobs(calibration, input_hw, calibration_frames) if int8 else []
    stem = f"{weights.stem}_{input_hw[0]}x{input_hw[1]}"
    with tempfile.TemporaryDirectory(prefix="rsu-export-") as scratch, _openvino_telemetry_declined():
        float_model = _ultralytics_export(weights, fmt, input_hw, Path(scratch), threads)
        if fmt == "onnx":
            target = output_dir / f"{stem}{'_int8' if int8 else ''}.onnx"
            if int8:
                _quantize_onnx(float_model, target, calibration_blobs)
            else:
                shutil.copyfile(float_model, target)
            model_path = target
        else:
            target_dir = output_dir / f"{stem}{'_int8' if int8 else ''}_openvino_model"
            if target_dir.exists():
                shutil.rmtree(target_dir)
            target_dir.mkdir(parents=True)
            model_path = target_dir / f"{weights.stem}.xml"
            if int8:
                _quantize_openvino(float_model, model_path, calibration_blobs, threads)
            else:
                shutil.copyfile(float_model, model_path)
                shutil.copyfile(float_model.with_suffix(".bin"), model_path.with_suffix(".bin"))
            shutil.copyfile(float_model.parent / "metadata.yaml", target_dir / "metadata.yaml")
    result = ExportResult(model_path, fmt, input_hw, int8, len(calibration_blobs))
    log.info("exported %s", result.summary())
    return result


def _ultralytics_export(
    weights: Path, fmt: ExportFormat, input_hw: tuple[int, int], scratch: Path, threads: int
) -> Path:
    from rsu.detectors.ultralytics_setup import prepare_ultralytics

    prepare_ultralytics(threads)
    from ultralytics import YOLO  # after prepare_ultralytics: offline environment first

    local_weights = scratch / weights.name
    shutil.copyfile(weights, local_weights)
    try:
        model = YOLO(str(local_weights), task="detect")
        options: dict[str, Any] = {"format": fmt, "imgsz": list(input_hw), "dynamic": False, "device": "cpu"}
        if fmt == "onnx":
            # simplify needs onnxslim, which Ultralytics would try to pip-install; the graph runs the same without.
            options["simplify"] = False
        exported = model.export(**options)
    except Exception as exc:  # Ultralytics raises many kinds for a bad checkpoint or a missing exporter
        raise ExportError(f"Ultralytics could not export {weights} to {fmt}: {exc}") from exc
    path = Path(str(exported))
    if fmt == "openvino":
        xml_files = sorted(path.glob("*.xml")) if path.is_dir() else [path]
        if len(xml_files) != 1:
            raise ExportError(f"unexpected OpenVINO export layout in {path}")
        return xml_files[0]
    return path


@contextlib.contextmanager
def _openvino_telemetry_declined() -> Iterator[None]:
    """OpenVINO's converter and NNCF send usage events unless a consent file says no: say no, in-process only."""
    try:
        from openvino_telemetry.utils import opt_in_checker
    except ModuleNotFoundError:
        yield
        return
    checker = opt_in_checker.OptInChecker
    original = checker.check

    def declined(self: Any, *args: Any, **kwargs: Any) -> Any:
        return opt_in_checker.ConsentCheckResult.DECLINED

    checker.check = declined
    try:
        yield
    finally:
        checker.check = original


# -- calibration ----------------------------------------------------------------------------------


def load_calibration_blobs(sources: Sequence[Path], input_hw: tuple[int, int], max_frames: int) -> list[Float32Array]:
    """Up to max_frames network inputs, spread evenly over the given videos, images and image folders."""
    if max_frames < 1:
        raise ExportError(f"--calibration-frames must be at least 1, got {max_frames}")
    videos: list[Path] = []
    images: list[Path] = []
    for source in sources:
        if source.is_dir():
            images.extend(sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif source.suffix.lower() in IMAGE_SUFFIXES:
            images.append(source)
        elif source.is_file():
            videos.append(source)
        else:
            raise ExportError(f"calibration source not found: {source}")
    share = max(max_frames // max(len(videos) + (1 if images else 0), 1), 1)
    frames: list[npt.NDArray[np.uint8]] = []
    for video in videos:
        frames.extend(_sample_video(video, share))
    for image_path in _spread(images, share):
        image = cv2.imread(str(image_path))
        if image is None:
            raise ExportError(f"cannot read calibration image {image_path}")
        frames.append(np.asarray(image, dtype=np.uint8))
    if not frames:
        raise ExportError(f"no calibration frames found in {[str(s) for s in sources]}")
    return [to_blob(letterbox(frame, input_hw)[0]) for frame in frames[:max_frames]]


def _spread(items: Sequence[Path], count: int) -> list[Path]:
    if len(items) <= count:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count)]


def _sample_video(path: Path, count: int) -> list[npt.NDArray[np.uint8]]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ExportError(f"cannot open calibration video {path}")
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        step = max(total // count, 1) if total > 0 else 1
        frames: list[npt.NDArray[np.uint8]] = []
        index = 0
        while len(frames) < count:
            ok = capture.grab()
            if not ok:
                break
            if index % step == 0:
                ok, frame = capture.retrieve()
                if ok:
                    frames.append(np.asarray(frame, dtype=np.uint8))
            index += 1
    finally:
        capture.release()
    if not frames:
        raise ExportError(f"no frame could be decoded from calibration video {path}")
    return frames


# -- quantisation ---------------------------------------------------------------------------------


def _quantize_openvino(float_xml: Path, target_xml: Path, blobs: list[Float32Array], threads: int) -> None:
    import nncf
    import openvino as ov

    core = ov.Core()
    core.set_property("CPU", {"INFERENCE_NUM_THREADS": threads})
    model = core.read_model(str(float_xml))
    operations = model.get_ordered_ops()
    # The head's box decoding (DFL, anchors, strides) and the class sigmoid stay float, as in Ultralytics.
    sigmoid_names = [op.get_friendly_name() for op in operations if op.get_type_name() == "Sigmoid"]
    if not sigmoid_names:
        raise ExportError(f"{float_xml} does not look like a YOLO detection model (no Sigmoid)")
    head_scope = sigmoid_names[-1].split("/", 1)[0]
    ignored = nncf.IgnoredScope(
        names=[
            op.get_friendly_name()
            for op in operations
            if op.get_type_name() == "Sigmoid"
            or op.get_friendly_name().startswith((f"{head_scope}/", f"{head_scope}.dfl"))
        ]
    )
    quantized = nncf.quantize(
        model,
        nncf.Dataset(blobs),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(blobs),
        ignored_scope=ignored,
    )
    ov.save_model(quantized, str(target_xml))


def _quantize_onnx(float_onnx: Path, target: Path, blobs: list[Float32Array]) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    graph = onnx.load(str(float_onnx)).graph
    input_name = graph.input[0].name
    # Only weighted ops are quantised; the head's decoding stays float (see the module docstring).
    exclude = [node.name for node in graph.node if node.op_type not in {"Conv", "Gemm", "MatMul"}]
    del graph

    class Blobs(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(blobs)

        def get_next(self) -> dict[str, Float32Array] | None:
            blob = next(self._items, None)
            return None if blob is None else {input_name: blob}

    quantize_static(
        str(float_onnx),
        str(target),
        Blobs(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude,
    )
    # Carry Ultralytics' metadata (class names, input size) over to the quantised file.
    source, quantized = onnx.load(str(float_onnx)), onnx.load(str(target))
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(source.metadata_props)
    onnx.save(quantized, str(target))


# -- command line ---------------------------------------------------------------------------------


def _export_command(args: argparse.Namespace) -> int:
    try:
        result = export_model(
            Path(args.weights),
            args.format,
            args.imgsz,
            int8=args.int8,
            calibration=[Path(p) for p in args.calibration],
            calibration_frames=args.calibration_frames,
            output_dir=Path(args.output) if args.output else None,
            threads=args.threads,
        )
    except ExportError as exc:
        print(f"rsu export: error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    kind = "openvino" if result.format == "openvino" else "onnx"
    print(f"use it in the site file: detector: {{type: {kind}, weights: {result.model_path}}}")
    return 0


def add_export_parser(subparsers: Any, name: str = "export") -> argparse.ArgumentParser:
    """`rsu export`: registered on the top-level command's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help="export YOLO weights to ONNX or OpenVINO (fixed input matched to the camera, optional INT8)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--weights", required=True, help="Ultralytics .pt file")
    parser.add_argument("--format", required=True, choices=["onnx", "openvino"], help="what to export the weights to")
    parser.add_argument(
        "--imgsz",
        required=True,
        nargs=2,
        type=int,
        metavar=("HEIGHT", "WIDTH"),
        help="network input, multiples of 32 matching the camera aspect (384 640 for 16:9, 480 640 for 4:3)",
    )
    parser.add_argument("--int8", action="store_true", help="post-training INT8 quantisation (needs --calibration)")
    parser.add_argument(
        "--calibration",
        nargs="+",
        default=[],
        metavar="PATH",
        help="videos, images or image folders from the camera for INT8 calibration",
    )
    parser.add_argument(
        "--calibration-frames",
        type=int,
        default=DEFAULT_CALIBRATION_FRAMES,
        help=f"frames used for calibration, spread over the sources (default {DEFAULT_CALIBRATION_FRAMES})",
    )
    parser.add_argument("--output", help="output folder (default: beside the weights)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for export and calibration")
    parser.set_defaults(handler=_export_command)
    return parser
