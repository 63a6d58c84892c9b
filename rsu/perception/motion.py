"""A cheap motion stage in front of the object detector, as Frigate has.

`MotionDetector` compares a small blurred grey copy of each frame with a running-average
background (frame differencing, under a millisecond at 320 px wide) and reports the moving blobs.
`MotionGate` decides per frame whether the detector must run:

- the first frame, and at least every `max_skip_s` (a refresh, so a carried picture never gets old
  and objects that appear without visible motion are still found);
- whenever anything moves, or most of the picture changed at once (exposure, shake);
- otherwise it is skipped, and `MotionGatedDetector` hands on the objects of the last detector run
  with the new capture time: with nothing moving they are still where they were. That is what keeps
  live tracks alive (a queue at a red light, a parked bus) while the detector rests.

The background follows the scene at `background_rate_per_s` in capture time (not per frame), so a
car that stops fades into it in a few seconds, and the carried detections take over.
Region-only detection (running the network on the moving part of the frame) was measured and not
taken: the exported models have a fixed input, and a dynamic-shape OpenVINO export ran about 20 %
slower at full size and took 30-100 ms for the first inference after every change of crop size.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from rsu.detectors.base import Detector
from rsu.perception.detections import Detections
from rsu_contracts.config.model import MotionGateConfig

ImageArray = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float64]

# When more than this share of the picture changes at once it is the camera, not traffic: the
# background is reset to the current frame and the detector runs.
GLOBAL_CHANGE_RATIO = 0.5
BLUR_KERNEL_PX = 5
DILATE_ITERATIONS = 2


@dataclass(frozen=True)
class MotionResult:
    boxes_px: FloatArray  # (N, 4) moving blobs, x1 y1 x2 y2 in frame pixels
    moving_ratio: float  # share of the watched picture that changed
    global_change: bool  # most of the picture changed at once; the background was reset

    @property
    def moving(self) -> bool:
        return self.global_change or len(self.boxes_px) > 0


class MotionDetector:
    """Moving blobs by differencing against a running-average background; update() once per frame in time order."""

    def __init__(self, config: MotionGateConfig) -> None:
        self.config = config
        self._background: npt.NDArray[np.float32] | None = None
        self._watched: npt.NDArray[np.uint8] | None = None  # 1 where changes count, 0 in ignore boxes
        self._watched_pixels = 0
        self._frame_hw: tuple[int, int] = (0, 0)
        self._analysis_hw: tuple[int, int] = (0, 0)
        self._time_s: float | None = None
        self._kernel = np.ones((3, 3), dtype=np.uint8)

    def update(self, frame_bgr: ImageArray, time_s: float) -> MotionResult:
        grey = self._prepare(frame_bgr)
        if self._background is None or self._time_s is None:
            self._background = grey.astype(np.float32)
            self._time_s = time_s
            return MotionResult(np.zeros((0, 4)), 0.0, global_change=False)
        difference = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
        _, over_threshold = cv2.threshold(difference, self.config.pixel_threshold, 1, cv2.THRESH_BINARY)
        changed = np.asarray(cv2.bitwise_and(over_threshold, self._watched_mask()), dtype=np.uint8)
        moving_ratio = float(np.count_nonzero(changed)) / max(self._watched_pixels, 1)
        # Time-based learning rate: the same fade-in time at 10 or 30 frames per second.
        elapsed_s = max(time_s - self._time_s, 0.0)
        self._time_s = time_s
        if moving_ratio > GLOBAL_CHANGE_RATIO:
            self._background = grey.astype(np.float32)
            return MotionResult(np.zeros((0, 4)), moving_ratio, global_change=True)
        alpha = 1.0 - math.exp(-self.config.background_rate_per_s * elapsed_s)
        cv2.accumulateWeighted(grey, self._background, alpha)
        return MotionResult(self._blobs(changed), moving_ratio, global_change=False)

    def _prepare(self, frame_bgr: ImageArray) -> ImageArray:
        frame_hw = (int(frame_bgr.shape[0]), int(frame_bgr.shape[1]))
        if frame_hw != self._frame_hw:
            self._reset(frame_hw)
        height, width = self._analysis_hw
        small = cv2.resize(frame_bgr, (width, height), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        return np.asarray(cv2.GaussianBlur(grey, (BLUR_KERNEL_PX, BLUR_KERNEL_PX), 0), dtype=np.uint8)

    def _reset(self, frame_hw: tuple[int, int]) -> None:
        """A new frame size: start over (a camera reconfigured mid-stream)."""
        self._frame_hw = frame_hw
        frame_h, frame_w = frame_hw
        width = min(self.config.analysis_width_px, frame_w)
        self._analysis_hw = (max(round(frame_h * width / frame_w), 1), width)
        self._background = None
        self._time_s = None
        watched = np.ones(self._analysis_hw, dtype=np.uint8)
        scale = width / frame_w
        for x1, y1, x2, y2 in self.config.ignore_boxes_px:
            watched[
                max(math.floor(y1 * scale), 0) : max(math.ceil(y2 * scale), 0),
                max(math.floor(x1 * scale), 0) : max(math.ceil(x2 * scale), 0),
            ] = 0
        self._watched = watched
        self._watched_pixels = int(np.count_nonzero(watched))

    def _watched_mask(self) -> npt.NDArray[np.uint8]:
        assert self._watched is not None  # set by _prepare
        return self._watched

    def _blobs(self, mask: npt.NDArray[np.uint8]) -> FloatArray:
        if not mask.any():
            return np.zeros((0, 4))
        # Dilation joins the scattered changed pixels of one road user into one blob.
        joined = cv2.dilate(mask, self._kernel, iterations=DILATE_ITERATIONS)
        count, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
        height, width = self._analysis_hw
        min_area = self.config.min_blob_area_ratio * height * width
        # Row 0 is the background component.
        blobs = stats[1:count]
        blobs = blobs[blobs[:, cv2.CC_STAT_AREA] >= min_area]
        scale = self._frame_hw[1] / width
        x, y = blobs[:, cv2.CC_STAT_LEFT], blobs[:, cv2.CC_STAT_TOP]
        w, h = blobs[:, cv2.CC_STAT_WIDTH], blobs[:, cv2.CC_STAT_HEIGHT]
        return np.column_stack((x, y, x + w, y + h)).astype(np.float64) * scale


@dataclass(frozen=True)
class GateDecision:
    run_detector: bool
    # first | refresh | motion | global_change | still
    reason: str
    motion: MotionResult


class MotionGate:
    """Whether the detector must look at a frame; see the module docstring."""

    def __init__(self, config: MotionGateConfig) -> None:
        self.config = config
        self.motion = MotionDetector(config)
        self._last_run_s: float | None = None

    def decide(self, frame_bgr: ImageArray, time_s: float) -> GateDecision:
        motion = self.motion.update(frame_bgr, time_s)
        if self._last_run_s is None:
            reason = "first"
        elif motion.global_change:
            reason = "global_change"
        elif len(motion.boxes_px):
            reason = "motion"
        elif time_s - self._last_run_s >= self.config.max_skip_s:
            reason = "refresh"
        else:
            return GateDecision(run_detector=False, reason="still", motion=motion)
        self._last_run_s = time_s
        return GateDecision(run_detector=True, reason=reason, motion=motion)


class MotionGatedDetector:
    """A Detector that runs the wrapped detector only when the MotionGate says so.

    Skipped frames get the last detector output with the frame's capture time (extras:
    "motion_gate" = "skipped", "carried_from_s"); every output carries "motion_s", the motion stage's time.
    """

    def __init__(self, detector: Detector, config: MotionGateConfig) -> None:
        self.detector = detector
        self.gate = MotionGate(config)
        self._last: Detections | None = None
        self.frames = 0
        self.detector_runs = 0

    @property
    def skipped_share(self) -> float:
        return 1.0 - self.detector_runs / self.frames if self.frames else 0.0

    def detect(self, frame_bgr: ImageArray, capture_time_s: float) -> Detections:
        started = time.perf_counter()
        decision = self.gate.decide(frame_bgr, capture_time_s)
        motion_s = time.perf_counter() - started
        self.frames += 1
        if decision.run_detector or self._last is None:
            detections = self.detector.detect(frame_bgr, capture_time_s)
            self._last = detections
            self.detector_runs += 1
            detections.extras["motion_gate"] = decision.reason
        else:
            last = self._last
            detections = Detections(
                capture_time_s=capture_time_s,
                ground_xy_m=last.ground_xy_m,
                road_user=last.road_user,
                confidence=last.confidence,
                boxes_px=last.boxes_px,
                camera_id=last.camera_id,
                extras={"motion_gate": "skipped", "carried_from_s": last.capture_time_s},
            )
        detections.extras["motion_s"] = motion_s
        return detections
