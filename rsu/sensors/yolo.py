"""Object detection on camera frames: a BGR image in, road users on the ground out.

Detectors sit behind one small interface (`Detector`) chosen by `detector.type` in the site file.
The Ultralytics detector runs YOLO on the CPU, keeps only road-user classes, and places each road
user where its box touches the road (bottom centre) projected through the camera's homography.
It never reaches the network: weights come from a local file, and a bare standard name such as
`yolo11n.pt` is left to Ultralytics to download only when the machine is actually online.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import numpy.typing as npt
import torch

from rsu.config.model import CameraConfig, CameraSource, DetectorConfig, RoadUserType
from rsu.perception.detections import Detections
from rsu.perception.homography import Homography
from rsu.sensors.ultralytics_setup import ensure_offline_ultralytics, prepare_ultralytics
from rsu.sensors.video import expand_uri

if TYPE_CHECKING:
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
    ensure_offline_ultralytics()
    from ultralytics.utils import SETTINGS

    return [Path.cwd() / name, Path(SETTINGS["weights_dir"]) / name]


def _ultralytics_asset_names() -> frozenset[str]:
    ensure_offline_ultralytics()
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    return frozenset(GITHUB_ASSETS_NAMES)


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
        # The first predict() builds the predictor and allocates buffers; do it now, not on the first real frame.
        warmup_hw = (self.imgsz, self.imgsz) if isinstance(self.imgsz, int) else tuple(self.imgsz)
        self._predict(np.zeros((*warmup_hw, 3), dtype=np.uint8))

    def detect(self, frame_bgr: ImageArray, capture_time_s: float) -> Detections:
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 BGR image, got shape {frame_bgr.shape}")
        started = time.perf_counter()
        boxes_px, class_ids, confidence = self._predict(frame_bgr)
        inference_s = time.perf_counter() - started
        road_user = [self._road_user_of_class[int(c)] for c in class_ids]
        detections = place_on_ground(boxes_px, road_user, confidence, self.homography, capture_time_s, self.camera_id)
        detections.extras["inference_s"] = inference_s
        return detections

    def _predict(self, frame_bgr: ImageArray) -> tuple[FloatArray, npt.NDArray[np.int64], FloatArray]:
        results = self._model.predict(
            frame_bgr,
            imgsz=self.imgsz,
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
    return values.cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


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
    if camera.detector.type == "ultralytics":
        return UltralyticsDetector(camera.detector, homography, camera.id, weights_dir=config_dir)
    raise DetectorError(f"cameras[{camera.id}].detector.type {camera.detector.type!r} is not supported")
