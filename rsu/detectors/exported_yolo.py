"""YOLO models exported by `rsu export`, run without Ultralytics or torch: what the OpenVINO and
ONNX backends share.

`ExportedYoloDetector` does what Ultralytics' predict() does around the network, in a few
vectorised numpy/OpenCV calls: letterbox the BGR frame to the model's fixed input (aspect ratio
kept, grey 114 padding, as Ultralytics pads), decode the raw (1, 4 + classes, anchors) output,
keep each box's best class only if it is a road-user class (as `predict(classes=...)` does), and
run class-aware NMS, in which confusable classes (car/truck/bus, bicycle/motorcycle) count as one
unless `merge_confusable_classes` is off. The network itself runs in an `InferenceBackend`
(rsu.detectors.openvino_backend, rsu.detectors.onnx_backend). Thread counts are set explicitly,
never left to the runtime. Detail regions (rsu.detectors.detail) run a second backend, with an
input of its own, on a crop of the frame; `build_exported_detector` loads each distinct detail
model once.

The class names come from the metadata Ultralytics writes beside the model (metadata.yaml for
OpenVINO, the ONNX metadata_props), so a custom model with COCO's names maps the same way.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from rsu.detectors.base import DetectorError, FloatArray, ImageArray, PassDetections
from rsu.detectors.classes import COCO_NAME_TO_ROAD_USER, road_users_of_classes
from rsu.detectors.detail import CONFUSABLE_GROUP
from rsu.detectors.frame_detector import FrameDetector
from rsu.perception.homography import Homography
from rsu.sensors.video import expand_uri
from rsu_contracts.config.model import DetailRegionConfig, DetectorConfig
from rsu_contracts.enums import RoadUserType

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
Float32Array = npt.NDArray[np.float32]

# Ultralytics' letterbox padding grey and its cap on detections per image.
PAD_VALUE = 114
MAX_DETECTIONS = 300


class InferenceBackend(Protocol):
    """One network on one runtime: a (1, 3, H, W) float32 RGB 0..1 blob in, the raw output out."""

    @property
    def input_hw(self) -> tuple[int, int]: ...

    @property
    def description(self) -> str:
        """Runtime, precision and threads, for logs and benchmark reports."""
        ...

    def infer(self, blob: Float32Array) -> Float32Array: ...


@dataclass(frozen=True)
class Letterbox:
    """Where the frame went inside the network input: input = frame * scale + (pad_x, pad_y)."""

    scale: float
    pad_x: int
    pad_y: int


def letterbox(frame_bgr: ImageArray, input_hw: tuple[int, int]) -> tuple[ImageArray, Letterbox]:
    """The frame scaled to fit input_hw and centred on grey, exactly as Ultralytics' LetterBox (center=True)."""
    height, width = frame_bgr.shape[:2]
    input_h, input_w = input_hw
    scale = min(input_h / height, input_w / width)
    new_w, new_h = max(round(width * scale), 1), max(round(height * scale), 1)
    pad_w, pad_h = (input_w - new_w) / 2, (input_h - new_h) / 2
    # Ultralytics rounds the two halves this way, so an odd padding puts the extra pixel bottom/right.
    top, bottom = round(pad_h - 0.1), round(pad_h + 0.1)
    left, right = round(pad_w - 0.1), round(pad_w + 0.1)
    resized = frame_bgr if (new_w, new_h) == (width, height) else cv2.resize(frame_bgr, (new_w, new_h))
    padded = cv2.copyMakeBorder(resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return np.asarray(padded, dtype=np.uint8), Letterbox(scale=scale, pad_x=left, pad_y=top)


def to_blob(image_bgr: ImageArray) -> Float32Array:
    """(1, 3, H, W) RGB in 0..1, the layout and scale Ultralytics models are exported with."""
    return np.asarray(cv2.dnn.blobFromImage(image_bgr, scalefactor=1.0 / 255.0, swapRB=True), dtype=np.float32)


def decode_yolo_output(
    output: Float32Array,
    placement: Letterbox,
    frame_hw: tuple[int, int],
    confidence_threshold: float,
    iou_threshold: float,
    wanted_class: npt.NDArray[np.bool_],
    nms_group: IntArray | None = None,
) -> tuple[FloatArray, IntArray, FloatArray]:
    """Boxes (x1 y1 x2 y2 in frame pixels), class ids and confidences from one raw YOLO output.

    output: (1, 4 + classes, anchors), boxes as centre x, centre y, width, height in input pixels.
    wanted_class: (classes,) True for the classes to keep. As in Ultralytics, a box takes its best
    class over all classes first and is dropped when that class is not wanted.
    nms_group: (classes,) boxes of classes in one group suppress each other; default: each class alone
    (Ultralytics' class-aware NMS).
    """
    predictions = output[0]
    class_scores = predictions[4:]
    best_class = class_scores.argmax(axis=0)
    confidence = class_scores[best_class, np.arange(class_scores.shape[1])]
    keep = (confidence > confidence_threshold) & wanted_class[best_class]  # strictly above, as Ultralytics
    cx, cy, w, h = predictions[0, keep], predictions[1, keep], predictions[2, keep], predictions[3, keep]
    class_ids = best_class[keep].astype(np.int64)
    confidence = confidence[keep].astype(np.float64)
    if confidence.size == 0:
        return np.zeros((0, 4)), np.zeros(0, dtype=np.int64), np.zeros(0)
    boxes_xywh = np.column_stack((cx - w / 2, cy - h / 2, w, h)).astype(np.float64)
    groups = class_ids if nms_group is None else nms_group[class_ids]
    kept = cv2.dnn.NMSBoxesBatched(
        boxes_xywh.tolist(), confidence.tolist(), groups.tolist(), confidence_threshold, iou_threshold
    )
    kept_indices = np.asarray(kept, dtype=np.int64).reshape(-1)
    # NMSBoxesBatched returns the kept boxes by falling score; Ultralytics keeps at most 300.
    kept_indices = kept_indices[np.argsort(-confidence[kept_indices], kind="stable")][:MAX_DETECTIONS]
    boxes = boxes_xywh[kept_indices]
    x1 = (boxes[:, 0] - placement.pad_x) / placement.scale
    y1 = (boxes[:, 1] - placement.pad_y) / placement.scale
    x2 = x1 + boxes[:, 2] / placement.scale
    y2 = y1 + boxes[:, 3] / placement.scale
    frame_h, frame_w = frame_hw
    boxes_px = np.column_stack(
        (np.clip(x1, 0, frame_w), np.clip(y1, 0, frame_h), np.clip(x2, 0, frame_w), np.clip(y2, 0, frame_h))
    )
    return boxes_px, class_ids[kept_indices], confidence[kept_indices]


def parse_class_names(raw: object) -> dict[int, str]:
    """Class names from Ultralytics export metadata: a mapping, or its Python-literal text (ONNX)."""
    value = ast.literal_eval(raw) if isinstance(raw, str) else raw
    if not isinstance(value, Mapping):
        raise DetectorError(f"model metadata holds no class-name mapping: {str(raw)[:80]!r}")
    return {int(class_id): str(name) for class_id, name in value.items()}


class ExportedYoloPass:
    """One run of an exported YOLO network on an image: letterbox, infer, decode; a PassDetector."""

    def __init__(
        self,
        backend: InferenceBackend,
        config: DetectorConfig,
        road_user_of_class: Mapping[int, RoadUserType],
        wanted_class: npt.NDArray[np.bool_],
        nms_group: IntArray,
    ) -> None:
        self.backend = backend
        self.config = config
        self._road_user_of_class = road_user_of_class
        self._wanted_class = wanted_class
        self._nms_group = nms_group

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.backend.input_hw

    def detect_pass(self, image_bgr: ImageArray) -> PassDetections:
        """One network run on a whole image (the frame or a crop of it): boxes in that image's pixels."""
        image, placement = letterbox(image_bgr, self.backend.input_hw)
        output = self.backend.infer(to_blob(image))
        boxes_px, class_ids, confidence = decode_yolo_output(
            output,
            placement,
            (int(image_bgr.shape[0]), int(image_bgr.shape[1])),
            self.config.confidence,
            self.config.iou,
            self._wanted_class,
            self._nms_group,
        )
        road_user = tuple(self._road_user_of_class[int(class_id)] for class_id in class_ids)
        return PassDetections(boxes_px, road_user, confidence)


class ExportedYoloDetector(FrameDetector):
    """A YOLO detector around any InferenceBackend; satisfies rsu.detectors.base.Detector."""

    def __init__(
        self,
        backend: InferenceBackend,
        class_names: Mapping[int, str],
        config: DetectorConfig,
        homography: Homography,
        camera_id: str,
        detail_backends: Sequence[InferenceBackend] = (),
    ) -> None:
        """detail_backends: one per config.detail_regions, in order (the same backend may serve several)."""
        self.backend = backend
        self.input_hw = backend.input_hw
        class_count = max(class_names) + 1 if class_names else 0
        road_user_of_class = road_users_of_classes(class_names)
        if not road_user_of_class:
            raise DetectorError(f"the model knows none of the road-user classes {sorted(COCO_NAME_TO_ROAD_USER)}")
        wanted_class = np.zeros(class_count, dtype=bool)
        wanted_class[list(road_user_of_class)] = True
        # NMS groups: one per class, except that confusable road-user classes share one.
        nms_group = np.arange(class_count, dtype=np.int64)
        if config.merge_confusable_classes:
            for class_id, user in road_user_of_class.items():
                nms_group[class_id] = class_count + CONFUSABLE_GROUP[user]

        def network_pass(on: InferenceBackend) -> ExportedYoloPass:
            return ExportedYoloPass(on, config, road_user_of_class, wanted_class, nms_group)

        super().__init__(
            network_pass(backend), config, homography, camera_id, [network_pass(b) for b in detail_backends]
        )
        # The first inference allocates the runtime's buffers; do it now, not on the first real frame.
        self.backend.infer(np.zeros((1, 3, *self.input_hw), dtype=np.float32))
        for detail_backend in {id(b): b for b in detail_backends}.values():
            if detail_backend is not backend:
                detail_backend.infer(np.zeros((1, 3, *detail_backend.input_hw), dtype=np.float32))

    @property
    def description(self) -> str:
        return self.backend.description + self.passes.description


def check_input_size(
    config: DetectorConfig, model_hw: tuple[int, int], model_path: Path, field: str = "detector.imgsz"
) -> None:
    """A detector.imgsz set in the site file must be the exported model's fixed input; DetectorError naming `field`."""
    if "imgsz" not in config.model_fields_set:
        return
    wanted = (config.imgsz, config.imgsz) if isinstance(config.imgsz, int) else tuple(config.imgsz)
    if wanted != model_hw:
        raise DetectorError(
            f"{field} {list(wanted)} does not match the input {list(model_hw)} of {model_path}; "
            f"export again with `rsu export --imgsz {wanted[0]} {wanted[1]}` or remove {field} (an exported "
            "model always runs at its own input size)"
        )


def check_same_classes(main: Mapping[int, str], detail: Mapping[int, str], detail_path: Path) -> None:
    """A detail region's model must name its classes as the camera's model does."""
    if dict(main) != dict(detail):
        raise DetectorError(f"detail region model {detail_path} has other class names than the camera's model")


def resolve_model_file(weights: str, weights_dir: str | Path | None, suffix: str) -> Path:
    """The model file detector.weights names (a folder holding exactly one `suffix` file is accepted)."""
    path = Path(expand_uri(weights, weights_dir))
    if path.is_dir():
        candidates = sorted(path.glob(f"*{suffix}"))
        if len(candidates) != 1:
            raise DetectorError(f"{path} should hold exactly one {suffix} model, found {len(candidates)}")
        path = candidates[0]
    if not path.is_file():
        raise DetectorError(f"detector model not found: {path} (detector.weights: {weights!r})")
    if path.suffix != suffix:
        raise DetectorError(f"{path}: expected a {suffix} model for this detector.type")
    return path


def build_exported_detector(
    config: DetectorConfig,
    homography: Homography,
    camera_id: str,
    weights_dir: str | Path | None,
    *,
    suffix: str,
    load: Callable[[Path], InferenceBackend],
    class_names_of: Callable[[Path, InferenceBackend], dict[int, str]],
) -> ExportedYoloDetector:
    """The detector for an exported model on one runtime, with its detail-region models.

    suffix: the model file's (".xml", ".onnx"); load: the runtime's backend for a model file;
    class_names_of: the class names of a loaded model. A detail region without weights of its own
    shares the camera's backend; regions naming the same weights share one backend.
    """
    model_path = resolve_model_file(config.weights, weights_dir, suffix)
    backend = load(model_path)
    check_input_size(config, backend.input_hw, model_path, f"cameras[{camera_id}].detector.imgsz")
    log.info("detector %s: %s, input %s", camera_id, backend.description, backend.input_hw)
    class_names = class_names_of(model_path, backend)
    detail_backends: dict[str, InferenceBackend] = {}

    def detail_backend(region: DetailRegionConfig) -> InferenceBackend:
        if region.weights is None:
            return backend
        if region.weights not in detail_backends:
            detail_path = resolve_model_file(region.weights, weights_dir, suffix)
            detail = load(detail_path)
            check_same_classes(class_names, class_names_of(detail_path, detail), detail_path)
            detail_backends[region.weights] = detail
        return detail_backends[region.weights]

    return ExportedYoloDetector(
        backend, class_names, config, homography, camera_id, [detail_backend(r) for r in config.detail_regions]
    )
