"""Object detection on camera frames: a BGR image in, road users on the ground out.

Detectors sit behind one small interface (`Detector`) chosen by `detector.type` in the site file.
The Ultralytics detector runs YOLO on the CPU, keeps only road-user classes, and places each road
user where its box touches the road (bottom centre) projected through the camera's homography.
It never reaches the network: weights come from a local file, and a bare standard name such as
`yolo11n.pt` is left to Ultralytics to download only when the machine is actually online.
"""

from __future__ import annotations

import functools
import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from rsu.config.model import CameraConfig, CameraSource, DetectorConfig, RoadUserType
from rsu.perception.detections import Detections
from rsu.perception.homography import Homography
from rsu.sensors.detail import DetailSchedule, PassDetections, merge_passes, run_detail_pass
from rsu.sensors.video import expand_uri

# torch and Ultralytics are imported only where the Ultralytics detector needs them: the exported-model
# detectors (openvino, onnx) share this module and must not pay torch's memory and start-up time.
if TYPE_CHECKING:
    import torch
    from ultralytics import YOLO
    from ultralytics.engine.results import Results

log = logging.getLogger(__name__)

ImageArray = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float64]

# Class names as COCO (and Ultralytics' COCO weights) spell them; a custom model with the same
# names maps the same way.
COCO_NAME_TO_ROAD_USER: Mapping[str, RoadUserType] = MappingProxyType(
    {
        "person": RoadUserType.PEDESTRIAN,
        "bicycle": RoadUserType.BICYCLE,
        "car": RoadUserType.CAR,
        "motorcycle": RoadUserType.MOTORCYCLE,
        "bus": RoadUserType.BUS,
        "truck": RoadUserType.TRUCK,
    }
)
# Where Ultralytics downloads its standard weights from; reachable means a bare name can be fetched.
DOWNLOAD_HOST = ("github.com", 443)


class DetectorError(RuntimeError):
    """The detector cannot be built: missing weights, unsupported model, unknown type."""


class Detector(Protocol):
    def detect(self, frame_bgr: ImageArray, capture_time_s: float) -> Detections:
        """Road users in one frame, stamped with the frame's capture time."""
        ...


def can_download(timeout_s: float = 2.0) -> bool:
    """True if the download host answers; a plain TCP connect, nothing is sent."""
    try:
        with socket.create_connection(DOWNLOAD_HOST, timeout=timeout_s):
            return True
    except OSError:
        return False


def resolve_weights(
    weights: str, weights_dir: str | Path | None = None, *, online: Callable[[], bool] = can_download
) -> str:
    """A weights file that exists, or a bare standard name Ultralytics can download right now.

    weights: as in the site file: a path (`${VAR:-default}` allowed, relative to weights_dir) or a
    bare name like `yolo11n.pt`. Raises DetectorError naming every place looked at.
    """
    expanded = Path(expand_uri(weights, weights_dir))
    if expanded.is_file():
        return str(expanded.resolve())
    is_bare_name = "/" not in weights and "\\" not in weights and "$" not in weights
    if not is_bare_name:
        raise DetectorError(f"detector weights not found: {expanded} (detector.weights: {weights!r})")
    looked_at = [expanded, *_ultralytics_weight_dirs(weights)]
    for candidate in looked_at[1:]:
        if candidate.is_file():
            return str(candidate.resolve())
    places = ", ".join(str(p) for p in looked_at)
    if weights not in _ultralytics_asset_names():
        raise DetectorError(f"detector weights {weights!r} not found (looked at {places})")
    if not online():
        raise DetectorError(
            f"detector weights {weights!r} not found (looked at {places}) and this machine is offline, so "
            "Ultralytics cannot download them: copy the file there or set detector.weights to a local path"
        )
    log.info("detector weights %s not found locally; Ultralytics will download them", weights)
    return weights


def _ultralytics_weight_dirs(name: str) -> list[Path]:
    """Where Ultralytics itself would find a bare name: the working directory and its weights_dir setting."""
    from rsu.sensors.ultralytics_setup import ensure_offline_ultralytics

    ensure_offline_ultralytics()
    from ultralytics.utils import SETTINGS

    return [Path.cwd() / name, Path(SETTINGS["weights_dir"]) / name]


def _ultralytics_asset_names() -> frozenset[str]:
    from rsu.sensors.ultralytics_setup import ensure_offline_ultralytics

    ensure_offline_ultralytics()
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    return frozenset(GITHUB_ASSETS_NAMES)


# A person box overlapping a bicycle or motorcycle box by this share of the smaller box is its rider.
RIDER_OVERLAP = 0.4
_RIDDEN = frozenset({RoadUserType.BICYCLE, RoadUserType.MOTORCYCLE})


def merge_riders(
    boxes_px: FloatArray, road_user: Sequence[RoadUserType], confidence: FloatArray
) -> tuple[FloatArray, list[RoadUserType], FloatArray]:
    """One road user per cyclist or motorcyclist: the rider's person box is folded into the vehicle's.

    COCO has no cyclist class, so YOLO reports the rider as a person and the bicycle separately, and
    the rider would become a pedestrian track of its own (counted as a pedestrian crossing). A person
    whose box overlaps a bicycle/motorcycle box by RIDER_OVERLAP of the smaller one, with its centre
    above that box's horizontal span, is dropped; the vehicle box grows to the union (its bottom, the
    wheels on the road, stays the ground contact) and keeps the higher confidence.
    """
    users = list(road_user)
    vehicles = [i for i, user in enumerate(users) if user in _RIDDEN]
    people = [i for i, user in enumerate(users) if user is RoadUserType.PEDESTRIAN]
    if not vehicles or not people:
        return boxes_px, users, confidence
    boxes = boxes_px.copy()
    scores = confidence.copy()
    dropped: set[int] = set()
    for vehicle in sorted(vehicles, key=lambda i: -scores[i]):
        vx1, vy1, vx2, vy2 = boxes_px[vehicle]
        best, best_overlap = -1, RIDER_OVERLAP
        for person in people:
            if person in dropped:
                continue
            px1, py1, px2, py2 = boxes_px[person]
            if not vx1 <= (px1 + px2) / 2 <= vx2:
                continue
            inter = max(0.0, min(vx2, px2) - max(vx1, px1)) * max(0.0, min(vy2, py2) - max(vy1, py1))
            smaller = min((vx2 - vx1) * (vy2 - vy1), (px2 - px1) * (py2 - py1))
            overlap = inter / smaller if smaller > 0 else 0.0
            if overlap >= best_overlap:
                best, best_overlap = person, overlap
        if best >= 0:
            dropped.add(best)
            px1, py1, px2, py2 = boxes_px[best]
            boxes[vehicle] = (min(vx1, px1), min(vy1, py1), max(vx2, px2), vy2)
            scores[vehicle] = max(scores[vehicle], scores[best])
    keep = [i for i in range(len(users)) if i not in dropped]
    return boxes[keep], [users[i] for i in keep], scores[keep]


# A rider stays a rider for this long after its bicycle/motorcycle was last seen with it ...
RIDER_MEMORY_S = 0.6
# ... if the lone person box overlaps the rider's last box by at least this IoU.
RIDER_CONTINUITY_IOU = 0.3
# The wheels reach about this share of a rider's box height below the rider's feet (0.1-0.36 measured
# on the OTC cyclist), so a lone rider box is lengthened by it to keep the ground contact in place.
RIDER_WHEEL_DROP = 0.25


class RiderMemory:
    """Keeps a cyclist a cyclist when the detector stops seeing the bicycle under it.

    Far from the camera YOLO often finds only the rider (a person) of a bicycle it found a moment
    before; the tracker would then end the bicycle track and start a pedestrian one. A person box
    overlapping a two-wheeler box of the last RIDER_MEMORY_S is taken for that two-wheeler: it gets
    its class, and its box is lengthened down to the wheels. Call apply() once per frame, in time
    order, after merge_riders. Memory: the two-wheelers of the last RIDER_MEMORY_S only.
    """

    def __init__(self) -> None:
        self._riders: list[tuple[FloatArray, RoadUserType, float]] = []  # box, class, time seen

    def apply(
        self, boxes_px: FloatArray, road_user: Sequence[RoadUserType], confidence: FloatArray, time_s: float
    ) -> tuple[FloatArray, list[RoadUserType], FloatArray]:
        self._riders = [r for r in self._riders if 0.0 <= time_s - r[2] <= RIDER_MEMORY_S]
        users = list(road_user)
        boxes = boxes_px.copy()
        seen: list[tuple[FloatArray, RoadUserType, float]] = []
        for i, user in enumerate(users):
            if user in _RIDDEN:
                seen.append((boxes[i].copy(), user, time_s))
                continue
            if user is not RoadUserType.PEDESTRIAN or not self._riders:
                continue
            overlaps = [_iou(boxes[i], rider[0]) for rider in self._riders]
            best = int(np.argmax(overlaps))
            if overlaps[best] < RIDER_CONTINUITY_IOU:
                continue
            x1, y1, x2, y2 = boxes[i]
            boxes[i] = (x1, y1, x2, y2 + RIDER_WHEEL_DROP * (y2 - y1))
            users[i] = self._riders[best][1]
            seen.append((boxes[i].copy(), users[i], time_s))
        # The newest sighting of a two-wheeler replaces the older ones it overlaps.
        kept = [r for r in self._riders if all(_iou(r[0], s[0]) < RIDER_CONTINUITY_IOU for s in seen)]
        self._riders = kept + seen
        return boxes, users, confidence


def _iou(a: FloatArray, b: FloatArray) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def place_on_ground(
    boxes_px: FloatArray,
    road_user: Sequence[RoadUserType],
    confidence: FloatArray,
    homography: Homography,
    capture_time_s: float,
    camera_id: str = "",
) -> Detections:
    """Detections at the ground contact point of each box (x1 y1 x2 y2): the bottom centre, projected.

    Boxes whose bottom lies at or above the horizon have no ground position and are left out
    (counted in extras["dropped_above_horizon"]).
    """
    ground_contact_px = np.column_stack(((boxes_px[:, 0] + boxes_px[:, 2]) / 2, boxes_px[:, 3]))
    ground_xy_m = homography.image_to_ground(ground_contact_px)
    on_ground = np.all(np.isfinite(ground_xy_m), axis=1)
    return Detections(
        capture_time_s=capture_time_s,
        ground_xy_m=ground_xy_m[on_ground],
        road_user=tuple(user for user, kept in zip(road_user, on_ground, strict=True) if kept),
        confidence=confidence[on_ground],
        boxes_px=boxes_px[on_ground],
        camera_id=camera_id,
        extras={"dropped_above_horizon": int(np.count_nonzero(~on_ground))},
    )


class UltralyticsDetector:
    """YOLO (Ultralytics) on the CPU; see the module docstring."""

    def __init__(
        self,
        config: DetectorConfig,
        homography: Homography,
        camera_id: str,
        weights_dir: str | Path | None = None,
        *,
        online: Callable[[], bool] = can_download,
    ) -> None:
        """weights_dir: the folder a relative detector.weights is taken from (the site file's folder)."""
        from rsu.sensors.ultralytics_setup import prepare_ultralytics

        prepare_ultralytics(config.threads)
        from ultralytics import YOLO  # only after prepare_ultralytics: it must not see the default environment

        self.config = config
        self.camera_id = camera_id
        self.homography = homography
        self.weights = resolve_weights(config.weights, weights_dir, online=online)
        self.imgsz: int | list[int] = config.imgsz if isinstance(config.imgsz, int) else list(config.imgsz)
        try:
            self._model: YOLO = YOLO(self.weights, task="detect")
        except Exception as exc:
            raise DetectorError(f"cannot load detector weights {self.weights}: {exc}") from exc
        names: dict[int, str] = dict(self._model.names)
        self._road_user_of_class = {
            class_id: COCO_NAME_TO_ROAD_USER[name] for class_id, name in names.items() if name in COCO_NAME_TO_ROAD_USER
        }
        if not self._road_user_of_class:
            raise DetectorError(
                f"{self.weights}: the model knows none of the road-user classes {sorted(COCO_NAME_TO_ROAD_USER)}"
            )
        self._classes = sorted(self._road_user_of_class)
        self._riders = RiderMemory()
        # The first predict() builds the predictor and allocates buffers; do it now, not on the first real frame.
        warmup_hw = (self.imgsz, self.imgsz) if isinstance(self.imgsz, int) else (self.imgsz[0], self.imgsz[1])
        self._predict(np.zeros((*warmup_hw, 3), dtype=np.uint8))
        for region in config.detail_regions:
            if region.weights is not None:
                raise DetectorError(
                    f"detail region {list(region.box_px)}: weights are for exported models; the ultralytics "
                    "detector runs its own model at the region's imgsz"
                )
        self._detail = [(DetailSchedule(region), region.imgsz or warmup_hw) for region in config.detail_regions]

    def detect(self, frame_bgr: ImageArray, capture_time_s: float) -> Detections:
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 BGR image, got shape {frame_bgr.shape}")
        started = time.perf_counter()
        passes = [self._detect_pass(frame_bgr, self.imgsz)]
        for schedule, input_hw in self._detail:
            if schedule.due(capture_time_s):
                passes.append(
                    run_detail_pass(
                        frame_bgr,
                        schedule.region,
                        input_hw,
                        functools.partial(self._detect_pass, imgsz=list(input_hw)),
                    )
                )
        merged = merge_passes(passes)
        inference_s = time.perf_counter() - started
        boxes_px, road_user, confidence = merged.boxes_px, list(merged.road_user), merged.confidence
        if self.config.merge_riders:
            boxes_px, road_user, confidence = merge_riders(boxes_px, road_user, confidence)
            boxes_px, road_user, confidence = self._riders.apply(boxes_px, road_user, confidence, capture_time_s)
        detections = place_on_ground(boxes_px, road_user, confidence, self.homography, capture_time_s, self.camera_id)
        detections.extras["inference_s"] = inference_s
        return detections

    @property
    def detail_runs(self) -> list[int]:
        """How often each detail region has run."""
        return [schedule.runs for schedule, _ in self._detail]

    def _detect_pass(self, image_bgr: ImageArray, imgsz: int | list[int]) -> PassDetections:
        boxes_px, class_ids, confidence = self._predict(image_bgr, imgsz)
        return PassDetections(boxes_px, tuple(self._road_user_of_class[int(c)] for c in class_ids), confidence)

    def _predict(
        self, frame_bgr: ImageArray, imgsz: int | list[int] | None = None
    ) -> tuple[FloatArray, npt.NDArray[np.int64], FloatArray]:
        results = self._model.predict(
            frame_bgr,
            imgsz=self.imgsz if imgsz is None else imgsz,
            conf=self.config.confidence,
            classes=self._classes,
            device="cpu",
            verbose=False,
        )
        result = cast("Results", next(iter(results)))
        boxes = result.boxes
        if boxes is None:
            return np.zeros((0, 4)), np.zeros(0, dtype=np.int64), np.zeros(0)
        return (
            _numpy(boxes.xyxy).astype(np.float64).reshape(-1, 4),
            _numpy(boxes.cls).astype(np.int64),
            _numpy(boxes.conf).astype(np.float64),
        )


def _numpy(values: torch.Tensor | npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.asarray(values) if isinstance(values, np.ndarray) else values.cpu().numpy()


def build_detector(
    camera: CameraConfig,
    config_dir: str | Path | None = None,
    homography: Homography | None = None,
) -> Detector:
    """The detector a video camera's `detector.type` names, calibrated from the camera's points.

    config_dir: the site file's folder; relative and `${VAR:-default}` weights paths are expanded against it.
    """
    if camera.source is not CameraSource.VIDEO:
        raise DetectorError(f"camera {camera.id} is a {camera.source.value} camera; only video cameras run a detector")
    if homography is None:
        homography = Homography.from_points(camera.calibration)
    config = camera.detector
    detector: Detector
    if config.type == "ultralytics":
        detector = UltralyticsDetector(config, homography, camera.id, weights_dir=config_dir)
    elif config.type == "openvino":
        from rsu.sensors.openvino_detector import build_openvino_detector

        detector = build_openvino_detector(config, homography, camera.id, weights_dir=config_dir)
    elif config.type == "onnx":
        from rsu.sensors.onnx_detector import build_onnx_detector

        detector = build_onnx_detector(config, homography, camera.id, weights_dir=config_dir)
    else:
        raise DetectorError(f"cameras[{camera.id}].detector.type {config.type!r} is not supported")
    if config.motion.enabled:
        from rsu.perception.motion import MotionGatedDetector

        detector = MotionGatedDetector(detector, config.motion)
    return detector
