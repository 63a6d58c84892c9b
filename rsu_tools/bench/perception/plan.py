"""What a perception run is given: the plan, one variant's settings, the clips' own size and rate,
the array types the other modules share, and the error the bench raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from rsu_contracts.config.model import DetectorConfig
from rsu_contracts.enums import RoadUserType

FloatArray = npt.NDArray[np.float64]
ImageArray = npt.NDArray[np.uint8]


class BenchError(RuntimeError):
    """The benchmark cannot run as asked."""


@dataclass(frozen=True)
class VariantSpec:
    name: str
    kind: str  # "rsu", "baseline" (Ultralytics' own loop) or "library" (a library tracker on rsu's detections)
    # rsu: DetectorConfig fields and motion-gate fields set over the site camera's detector config.
    detector_fields: dict[str, Any] = field(default_factory=dict)
    motion_fields: dict[str, Any] = field(default_factory=dict)
    baseline_weights: str | None = None  # baseline: the .pt
    baseline_tracker: str = "bytetrack.yaml"  # baseline: Ultralytics tracker config
    library_tracker: str = "bytetrack"  # library: which `trackers` tracker (library_trackers.LIBRARY_TRACKERS)

    def detector_config(self, base: DetectorConfig) -> DetectorConfig:
        if not self.detector_fields and not self.motion_fields:
            return base
        merged = base.model_dump(exclude_unset=True)
        merged.update(self.detector_fields)
        merged["motion"] = {**base.motion.model_dump(), **self.motion_fields}
        if "imgsz" not in self.detector_fields and merged.get("type", base.type) != "ultralytics":
            merged.pop("imgsz", None)  # an exported model brings its own input size
        return DetectorConfig.model_validate(merged)


@dataclass(frozen=True)
class BenchPlan:
    site_path: Path
    camera_id: str
    clips: tuple[Path, ...]
    resize_wh: tuple[int, int] | None
    max_frames: int | None
    loop_minutes: float | None
    realtime: bool
    threads: int
    otc_events: Path | None
    mot_ground_truth: tuple[Path, ...]
    time_tolerance_s: float
    # Classes the counting ground truth does not label (their unmatched crossings are not phantoms).
    unscored_classes: tuple[RoadUserType, ...] = ()


def _clip_size(clip: Path) -> tuple[int, int]:
    capture = cv2.VideoCapture(str(clip))
    try:
        if not capture.isOpened():
            raise BenchError(f"cannot open clip {clip}")
        return int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        capture.release()


def _clip_fps(clip: Path) -> float:
    capture = cv2.VideoCapture(str(clip))
    try:
        return float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()
