"""Detail regions: a second, higher-resolution detector pass over a fixed part of the frame.

A 1280x720 frame given to a 384x640 network is halved: a cyclist 50 px high at the far edge of the
junction is 25 px high at the network input, and YOLO misses it or calls it a pedestrian. A detail
region (DetectorConfig.detail_regions) is a crop of the far road given to a network of its own
input size, so the far road users reach the network at a larger scale. This is SAHI's slicing with
one configured slice and the full frame kept, which is what a fixed camera needs: the far road is
always in the same place.

Per region and frame: the crop window is the configured box widened or heightened about its centre
to the network input's aspect ratio (no input pixel is spent on padding) and moved inside the frame;
boxes touching an edge of the window that is not an edge of the frame are dropped (a road user cut
by the window is found whole by the full-frame pass); and the passes are merged by a greedy
suppression across passes, by confidence, within the groups of classes a detector confuses (car,
truck and bus; bicycle and motorcycle): a box is dropped when a kept box of another pass overlaps it
with IoU >= CROSS_PASS_IOU, or covers most of the smaller of the two (intersection over the smaller
area >= CROSS_PASS_IOS, as SAHI's merging does for a box cut short at low resolution). Within one
pass the network's own NMS has already decided. A region may run on every frame or at most once per
`interval_s` of capture time; in between the full frame alone is used and the tracker bridges the gap.

`DetailRegions` wraps the full-frame pass of any backend (a `PassDetector`) with one region pass each;
the merged boxes then go through the rider merging and ground placement every backend shares
(rsu.detectors.frame_detector), so the passes are merged before a rider is folded into its bicycle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rsu.detectors.base import FloatArray, ImageArray, PassDetections, PassDetector
from rsu.perception.tracker import ASSOCIATION_GROUP
from rsu_contracts.config.model import DetailRegionConfig
from rsu_contracts.enums import RoadUserType

# Road-user classes a detector confuses for one object (boxes of one group from two passes are one
# road user): the same groups the tracker lets continue one track.
CONFUSABLE_GROUP: Mapping[RoadUserType, int] = ASSOCIATION_GROUP
CROSS_PASS_IOU = 0.5
CROSS_PASS_IOS = 0.8
# A box within this many frame pixels of an inner edge of the crop window is taken as cut by it.
EDGE_MARGIN_PX = 2.0
# Capture times this close count as the same instant (a 0.1 s interval at 20 fps is every other frame).
_TIME_EPSILON_S = 1e-3


@dataclass(frozen=True)
class CropWindow:
    """Integer pixel window of the frame (x1, y1 inclusive; x2, y2 exclusive)."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1


def crop_window(
    box_px: tuple[float, float, float, float], input_hw: tuple[int, int], frame_hw: tuple[int, int]
) -> CropWindow:
    """The box grown about its centre to the input's aspect ratio and moved inside the frame.

    The window only shrinks (keeping the aspect ratio) where the frame itself is too small for it.
    """
    frame_h, frame_w = frame_hw
    input_h, input_w = input_hw
    x1, y1, x2, y2 = (float(v) for v in box_px)
    x1, x2 = max(0.0, min(x1, frame_w)), max(0.0, min(x2, frame_w))
    y1, y2 = max(0.0, min(y1, frame_h)), max(0.0, min(y2, frame_h))
    if x2 - x1 < 1.0 or y2 - y1 < 1.0:
        raise ValueError(f"detail region {list(box_px)} lies outside the {frame_w}x{frame_h} frame")
    width, height = x2 - x1, y2 - y1
    aspect = input_w / input_h
    if width / height < aspect:
        width = height * aspect
    else:
        height = width / aspect
    fit = min(1.0, frame_w / width, frame_h / height)
    width, height = width * fit, height * fit
    centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2
    left = min(max(centre_x - width / 2, 0.0), frame_w - width)
    top = min(max(centre_y - height / 2, 0.0), frame_h - height)
    ix1, iy1 = round(left), round(top)
    ix2, iy2 = min(max(round(left + width), ix1 + 1), frame_w), min(max(round(top + height), iy1 + 1), frame_h)
    return CropWindow(ix1, iy1, ix2, iy2)


def cut_by_window(boxes_px: FloatArray, window: CropWindow, frame_hw: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """True for boxes (frame pixels) touching an edge of the window that is not an edge of the frame."""
    frame_h, frame_w = frame_hw
    margin = EDGE_MARGIN_PX
    cut = np.zeros(len(boxes_px), dtype=bool)
    if window.x1 > 0:
        cut |= boxes_px[:, 0] <= window.x1 + margin
    if window.y1 > 0:
        cut |= boxes_px[:, 1] <= window.y1 + margin
    if window.x2 < frame_w:
        cut |= boxes_px[:, 2] >= window.x2 - margin
    if window.y2 < frame_h:
        cut |= boxes_px[:, 3] >= window.y2 - margin
    return cut


class DetailSchedule:
    """When a region's pass is due: every frame, or at most once per interval_s of capture time."""

    def __init__(self, region: DetailRegionConfig) -> None:
        self.region = region
        self._last_run_s: float | None = None
        self.runs = 0

    def due(self, capture_time_s: float | None) -> bool:
        """Whether to run at this capture time (None: always, a single picture); marks the run."""
        if capture_time_s is not None and self._last_run_s is not None:
            elapsed = capture_time_s - self._last_run_s
            # A clock that went back (a replayed clip starting over) restarts the schedule.
            if 0.0 <= elapsed < self.region.interval_s - _TIME_EPSILON_S:
                return False
        if capture_time_s is not None:
            self._last_run_s = capture_time_s
        self.runs += 1
        return True


def merge_passes(passes: Sequence[PassDetections]) -> PassDetections:
    """All passes' boxes with the duplicates across passes suppressed (see the module docstring)."""
    if len(passes) == 1:
        return passes[0]
    boxes = np.concatenate([p.boxes_px.reshape(-1, 4) for p in passes]).astype(np.float64)
    users = tuple(user for p in passes for user in p.road_user)
    confidence = np.concatenate([p.confidence for p in passes]).astype(np.float64)
    source = np.concatenate([np.full(len(p), index) for index, p in enumerate(passes)]).astype(np.int64)
    if len(users) == 0:
        return PassDetections(np.zeros((0, 4)), (), np.zeros(0))
    groups = np.array([CONFUSABLE_GROUP[user] for user in users], dtype=np.int64)
    order = np.argsort(-confidence, kind="stable")
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0.0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0.0)
    kept: list[int] = []
    for index in order:
        others = [k for k in kept if source[k] != source[index] and groups[k] == groups[index]]
        if others:
            other = np.array(others)
            ix1 = np.maximum(boxes[other, 0], boxes[index, 0])
            iy1 = np.maximum(boxes[other, 1], boxes[index, 1])
            ix2 = np.minimum(boxes[other, 2], boxes[index, 2])
            iy2 = np.minimum(boxes[other, 3], boxes[index, 3])
            inter = np.maximum(ix2 - ix1, 0.0) * np.maximum(iy2 - iy1, 0.0)
            union = area[other] + area[index] - inter
            smaller = np.minimum(area[other], area[index])
            iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
            ios = np.divide(inter, smaller, out=np.zeros_like(inter), where=smaller > 0)
            if np.any((iou >= CROSS_PASS_IOU) | (ios >= CROSS_PASS_IOS)):
                continue
        kept.append(int(index))
    kept_array = np.array(sorted(kept), dtype=np.int64)
    return PassDetections(boxes[kept_array], tuple(users[i] for i in kept_array), confidence[kept_array])


def run_detail_pass(
    frame_bgr: ImageArray,
    region: DetailRegionConfig,
    input_hw: tuple[int, int],
    detect: Callable[[ImageArray], PassDetections],
) -> PassDetections:
    """One region's pass: detect(crop) in crop pixels -> whole road users in frame pixels."""
    frame_hw = (int(frame_bgr.shape[0]), int(frame_bgr.shape[1]))
    window = crop_window(region.box_px, input_hw, frame_hw)
    found = detect(np.ascontiguousarray(frame_bgr[window.y1 : window.y2, window.x1 : window.x2]))
    boxes = found.boxes_px.reshape(-1, 4) + np.array([window.x1, window.y1, window.x1, window.y1], dtype=np.float64)
    whole = ~cut_by_window(boxes, window, frame_hw)
    return PassDetections(
        boxes[whole],
        tuple(user for user, keep in zip(found.road_user, whole, strict=True) if keep),
        found.confidence[whole],
    )


class DetailRegions:
    """A full-frame pass plus the detail-region passes due at each capture time, merged."""

    def __init__(
        self, full_frame: PassDetector, regions: Sequence[tuple[DetailRegionConfig, PassDetector]] = ()
    ) -> None:
        self.full_frame = full_frame
        self._regions = [(DetailSchedule(region), region_pass) for region, region_pass in regions]

    @property
    def runs(self) -> list[int]:
        """How often each detail region has run."""
        return [schedule.runs for schedule, _ in self._regions]

    @property
    def description(self) -> str:
        """The regions, their input sizes and schedules (empty without regions), for logs and reports."""
        text = ""
        for schedule, region_pass in self._regions:
            h, w = region_pass.input_hw
            every = f"every {schedule.region.interval_s:g} s" if schedule.region.interval_s else "every frame"
            text += f" + detail region {list(schedule.region.box_px)} at {h}x{w}, {every}"
        return text

    def detect(self, frame_bgr: ImageArray, capture_time_s: float | None) -> PassDetections:
        """Road users in frame pixels; every region runs when capture_time_s is None (a single picture)."""
        passes = [self.full_frame.detect_pass(frame_bgr)]
        for schedule, region_pass in self._regions:
            if schedule.due(capture_time_s):
                passes.append(
                    run_detail_pass(frame_bgr, schedule.region, region_pass.input_hw, region_pass.detect_pass)
                )
        return merge_passes(passes)
