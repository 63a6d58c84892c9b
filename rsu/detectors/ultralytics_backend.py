"""detector.type "ultralytics": YOLO (Ultralytics) on the CPU from a .pt weights file.

The detector keeps only road-user classes (rsu.detectors.classes); rider merging, detail regions
and ground placement are the shared FrameDetector's. It never reaches the network: weights come
from a local file, and a bare standard name such as `yolo11n.pt` is left to Ultralytics to download
only when the machine is actually online.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from rsu.detectors.base import DetectorError, FloatArray, ImageArray, PassDetections
from rsu.detectors.classes import COCO_NAME_TO_ROAD_USER, road_users_of_classes
from rsu.detectors.frame_detector import FrameDetector
from rsu.detectors.registry import register
from rsu.perception.homography import Homography
from rsu.sensors.video import expand_uri
from rsu_contracts.config.model import DetectorConfig
from rsu_contracts.enums import RoadUserType

# torch and Ultralytics are imported only when an Ultralytics detector is built: importing this
# module (the registry does, for every backend) must not pay torch's memory and start-up time.
if TYPE_CHECKING:
    import torch
    from ultralytics import YOLO
    from ultralytics.engine.results import Results

log = logging.getLogger(__name__)

# Where Ultralytics downloads its standard weights from; reachable means a bare name can be fetched.
DOWNLOAD_HOST = ("github.com", 443)


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
    from rsu.detectors.ultralytics_setup import ensure_offline_ultralytics

    ensure_offline_ultralytics()
    from ultralytics.utils import SETTINGS

    return [Path.cwd() / name, Path(SETTINGS["weights_dir"]) / name]


def _ultralytics_asset_names() -> frozenset[str]:
    from rsu.detectors.ultralytics_setup import ensure_offline_ultralytics

    ensure_offline_ultralytics()
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    return frozenset(GITHUB_ASSETS_NAMES)


class UltralyticsPass:
    """One Ultralytics predict() at a given input size; a PassDetector."""

    def __init__(
        self,
        model: YOLO,
        imgsz: int | list[int],
        config: DetectorConfig,
        road_user_of_class: dict[int, RoadUserType],
    ) -> None:
        self._model = model
        self.imgsz = imgsz
        self.config = config
        self._road_user_of_class = road_user_of_class
        self._classes = sorted(road_user_of_class)

    @property
    def input_hw(self) -> tuple[int, int]:
        return (self.imgsz, self.imgsz) if isinstance(self.imgsz, int) else (self.imgsz[0], self.imgsz[1])

    def detect_pass(self, image_bgr: ImageArray) -> PassDetections:
        boxes_px, class_ids, confidence = self.predict(image_bgr)
        return PassDetections(boxes_px, tuple(self._road_user_of_class[int(c)] for c in class_ids), confidence)

    def predict(self, image_bgr: ImageArray) -> tuple[FloatArray, npt.NDArray[np.int64], FloatArray]:
        from rsu.detectors.ultralytics_setup import pin_torch_threads  # torch is loaded by now

        results = self._model.predict(
            image_bgr,
            imgsz=self.imgsz,
            conf=self.config.confidence,
            classes=self._classes,
            device="cpu",
            verbose=False,
        )
        result = cast("Results", next(iter(results)))
        # A predictor (re)built in that call has reset torch to cpu_count - 1 threads.
        pin_torch_threads(self.config.threads)
        boxes = result.boxes
        if boxes is None:
            return np.zeros((0, 4)), np.zeros(0, dtype=np.int64), np.zeros(0)
        return (
            _numpy(boxes.xyxy).astype(np.float64).reshape(-1, 4),
            _numpy(boxes.cls).astype(np.int64),
            _numpy(boxes.conf).astype(np.float64),
        )


class UltralyticsDetector(FrameDetector):
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
        from rsu.detectors.ultralytics_setup import prepare_ultralytics

        prepare_ultralytics(config.threads)
        from ultralytics import YOLO  # only after prepare_ultralytics: it must not see the default environment

        self.weights = resolve_weights(config.weights, weights_dir, online=online)
        self.imgsz: int | list[int] = config.imgsz if isinstance(config.imgsz, int) else list(config.imgsz)
        try:
            model: YOLO = YOLO(self.weights, task="detect")
        except Exception as exc:
            raise DetectorError(f"cannot load detector weights {self.weights}: {exc}") from exc
        road_user_of_class = road_users_of_classes(dict(model.names))
        if not road_user_of_class:
            raise DetectorError(
                f"{self.weights}: the model knows none of the road-user classes {sorted(COCO_NAME_TO_ROAD_USER)}"
            )
        full_frame = UltralyticsPass(model, self.imgsz, config, road_user_of_class)
        # The first predict() builds the predictor and allocates buffers; do it now, not on the first real frame.
        full_frame.predict(np.zeros((*full_frame.input_hw, 3), dtype=np.uint8))
        for region in config.detail_regions:
            if region.weights is not None:
                raise DetectorError(
                    f"detail region {list(region.box_px)}: weights are for exported models; the ultralytics "
                    "detector runs its own model at the region's imgsz"
                )
        # A region runs the same model at its own imgsz, or at the full frame's.
        region_passes = [
            UltralyticsPass(model, list(region.imgsz or full_frame.input_hw), config, road_user_of_class)
            for region in config.detail_regions
        ]
        super().__init__(full_frame, config, homography, camera_id, region_passes)


def _numpy(values: torch.Tensor | npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.asarray(values) if isinstance(values, np.ndarray) else values.cpu().numpy()


@register("ultralytics")
def build_ultralytics_detector(
    config: DetectorConfig, homography: Homography, camera_id: str, weights_dir: str | Path | None = None
) -> UltralyticsDetector:
    return UltralyticsDetector(config, homography, camera_id, weights_dir=weights_dir)
