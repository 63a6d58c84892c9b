"""What every YOLO backend does around its network runs: passes in, road users on the ground out.

A backend supplies its `PassDetector`s (the full frame, and one per configured detail region);
`FrameDetector` runs them through `DetailRegions`, folds riders into their two-wheelers when
`detector.merge_riders` is on, and places each box on the ground through the camera's homography.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rsu.detectors.base import DetectorError, ImageArray, PassDetections, PassDetector
from rsu.detectors.detail import DetailRegions
from rsu.detectors.ground import place_on_ground
from rsu.detectors.riders import RiderMemory, merge_riders
from rsu.perception.detections import Detections
from rsu.perception.homography import Homography
from rsu_contracts.config.model import DetectorConfig


class FrameDetector:
    """A Detector from a full-frame pass and one pass per config.detail_regions (in order)."""

    def __init__(
        self,
        full_frame: PassDetector,
        config: DetectorConfig,
        homography: Homography,
        camera_id: str,
        region_passes: Sequence[PassDetector] = (),
    ) -> None:
        if len(region_passes) != len(config.detail_regions):
            raise DetectorError(
                f"{len(config.detail_regions)} detail regions configured but {len(region_passes)} backends given"
            )
        self.config = config
        self.homography = homography
        self.camera_id = camera_id
        self.passes = DetailRegions(full_frame, list(zip(config.detail_regions, region_passes, strict=True)))
        self._riders = RiderMemory()

    @property
    def detail_runs(self) -> list[int]:
        """How often each detail region has run."""
        return self.passes.runs

    def detect(self, frame_bgr: ImageArray, capture_time_s: float) -> Detections:
        started = time.perf_counter()
        found = self.detect_image(frame_bgr, capture_time_s)
        boxes_px, road_user, confidence = found.boxes_px, list(found.road_user), found.confidence
        if self.config.merge_riders:
            boxes_px, road_user, confidence = self._riders.apply(boxes_px, road_user, confidence, capture_time_s)
        inference_s = time.perf_counter() - started
        detections = place_on_ground(boxes_px, road_user, confidence, self.homography, capture_time_s, self.camera_id)
        detections.extras["inference_s"] = inference_s
        return detections

    def detect_image(self, frame_bgr: ImageArray, capture_time_s: float | None = None) -> PassDetections:
        """Road users in one frame's pixels, riders merged, no ground placement.

        Detail regions run when due at capture_time_s (every one of them when it is None: a single picture).
        """
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 BGR image, got shape {frame_bgr.shape}")
        merged = self.passes.detect(frame_bgr, capture_time_s)
        if not self.config.merge_riders:
            return merged
        boxes_px, road_user, confidence = merge_riders(merged.boxes_px, list(merged.road_user), merged.confidence)
        return PassDetections(boxes_px=boxes_px, road_user=tuple(road_user), confidence=confidence)
