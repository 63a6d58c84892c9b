"""The baseline: Ultralytics' own `model.track()` loop on the .pt, its tracks counted on the site's
counting lines as Ultralytics' ObjectCounter counts them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from rsu.detectors.classes import COCO_NAME_TO_ROAD_USER
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_contracts.enums import RoadUserType
from rsu_tools.bench.perception.plan import BenchError, BenchPlan, FloatArray, VariantSpec
from rsu_tools.bench.perception.playback import ClipPlayer, PlayedFrame, _loop, _scale_back, _scaled_camera
from rsu_tools.bench.perception.statistics import TRUNCATION_WINDOW_S, Collected, StageTimes, _count_table
from rsu_tools.evaluation import (
    FrameDetections,
    PredictedCrossing,
    TrackedBoxes,
)

if TYPE_CHECKING:
    from rsu.perception.homography import Homography

BASELINE_IMGSZ = 640


class GroundLineCrossings:
    """Baseline counting: a track's ground path cutting a counting line, once per track and line."""

    def __init__(self, site: SiteConfig, forget_after_s: float = 5.0) -> None:
        self.lines = [(line.id, np.array(line.line_m[0]), np.array(line.line_m[1])) for line in site.counting_lines]
        self.forget_after_s = forget_after_s
        self._last: dict[int, tuple[FloatArray, float]] = {}
        self._counted: set[tuple[int, str]] = set()
        self.crossings: list[PredictedCrossing] = []

    def count_boxes(
        self,
        homography: Homography,
        boxes_px: FloatArray,
        track_ids: npt.NDArray[np.int64],
        users: Sequence[RoadUserType],
        time_s: float,
    ) -> None:
        """Tracked image boxes: each box's bottom centre on the ground (boxes off the ground plane skipped)."""
        contact = (
            np.column_stack(((boxes_px[:, 0] + boxes_px[:, 2]) / 2, boxes_px[:, 3]))
            if len(boxes_px)
            else np.zeros((0, 2))
        )
        ground = homography.image_to_ground(contact)
        on_ground = np.all(np.isfinite(ground), axis=1)
        self.update(
            [int(i) for i in track_ids[on_ground]],
            ground[on_ground],
            [u for u, keep in zip(users, on_ground, strict=True) if keep],
            time_s,
        )

    def update(
        self, track_ids: Sequence[int], ground_xy: FloatArray, users: Sequence[RoadUserType], time_s: float
    ) -> None:
        for track_id, xy, user in zip(track_ids, ground_xy, users, strict=True):
            previous = self._last.get(track_id)
            self._last[track_id] = (xy, time_s)
            if previous is None:
                continue
            for line_id, a, b in self.lines:
                if (track_id, line_id) in self._counted:
                    continue
                fraction = _segment_intersection(previous[0], xy, a, b)
                if fraction is not None:
                    self._counted.add((track_id, line_id))
                    crossing_time = previous[1] + fraction * (time_s - previous[1])
                    self.crossings.append(PredictedCrossing(line_id, crossing_time, track_id, user))
        stale = [track_id for track_id, (_, seen) in self._last.items() if time_s - seen > self.forget_after_s]
        for track_id in stale:
            del self._last[track_id]
            self._counted = {key for key in self._counted if key[0] != track_id}


def _segment_intersection(p: FloatArray, q: FloatArray, a: FloatArray, b: FloatArray) -> float | None:
    """Where along p->q the segment p-q crosses a-b (0..1), or None."""
    r, s = q - p, b - a
    denominator = r[0] * s[1] - r[1] * s[0]
    if abs(denominator) < 1e-12:
        return None
    ap = a - p
    t = (ap[0] * s[1] - ap[1] * s[0]) / denominator
    u = (ap[0] * r[1] - ap[1] * r[0]) / denominator
    return float(t) if 0.0 <= t <= 1.0 and 0.0 <= u <= 1.0 else None


def _run_baseline(
    plan: BenchPlan, spec: VariantSpec, player: ClipPlayer, source_wh: tuple[int, int], collect: bool
) -> tuple[StageTimes, Collected, dict[str, Any], dict[str, Any]]:
    from rsu.detectors.ultralytics_setup import prepare_ultralytics
    from rsu.perception.homography import Homography

    prepare_ultralytics(plan.threads)
    from ultralytics import YOLO

    site = load_site_config(plan.site_path)
    camera = _scaled_camera(next(c for c in site.cameras if c.id == plan.camera_id), source_wh, plan.resize_wh)
    homography: Homography = Homography.from_points(camera.calibration)
    weights = spec.baseline_weights
    if weights is None:
        raise BenchError("the baseline needs .pt weights (--baseline-weights)")
    model = YOLO(weights, task="detect")
    names: dict[int, str] = dict(model.names)
    road_user_of_class = {i: COCO_NAME_TO_ROAD_USER[n] for i, n in names.items() if n in COCO_NAME_TO_ROAD_USER}
    counter = GroundLineCrossings(site)
    scale_back = _scale_back(source_wh, plan.resize_wh)
    times = StageTimes()
    collected = Collected()
    info: dict[str, Any] = {
        "detector": f"ultralytics track({spec.baseline_tracker}) {Path(weights).name} imgsz {BASELINE_IMGSZ}, "
        f"torch {plan.threads} threads",
        "imgsz": [BASELINE_IMGSZ, BASELINE_IMGSZ],
    }

    def process(frame: PlayedFrame) -> None:
        started = time.perf_counter()
        result = next(
            iter(
                model.track(
                    frame.image, persist=True, imgsz=BASELINE_IMGSZ, tracker=spec.baseline_tracker, verbose=False
                )
            )
        )
        call_s = time.perf_counter() - started
        detect_s = sum(float(result.speed.get(k) or 0.0) for k in ("preprocess", "inference", "postprocess")) / 1000
        times.add("detect", detect_s)
        times.add("track", max(call_s - detect_s, 0.0))
        started = time.perf_counter()
        boxes = result.boxes
        empty = boxes is None or boxes.id is None or len(boxes) == 0
        if empty:
            xyxy, ids, classes, confidence = np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        else:
            assert boxes is not None and boxes.id is not None
            xyxy = _numpy(boxes.xyxy, np.float64).reshape(-1, 4)
            ids = _numpy(boxes.id, np.int64)
            classes = _numpy(boxes.cls, np.int64)
            confidence = _numpy(boxes.conf, np.float64)
        road = np.array([int(c) in road_user_of_class for c in classes], dtype=bool)
        xyxy, ids, classes, confidence = xyxy[road], ids[road], classes[road], confidence[road]
        users = [road_user_of_class[int(c)] for c in classes]
        counter.count_boxes(homography, xyxy, ids, users, frame.capture_time_s)
        times.add("zones", time.perf_counter() - started)
        if collect:
            if frame.capture_time_s <= TRUNCATION_WINDOW_S:
                collected.truncated_track_ids.update(int(i) for i in ids)
            last_ids[:] = [int(i) for i in ids]
            key = (frame.clip_index, frame.frame_in_clip)
            collected.detections[key] = FrameDetections(xyxy * scale_back, tuple(users), confidence)
            collected.tracks[key] = TrackedBoxes(xyxy * scale_back, ids)

    last_ids: list[int] = []

    def finish() -> None:
        collected.crossings = list(counter.crossings)
        collected.truncated_track_ids.update(last_ids)
        info["counts"] = _count_table(collected.crossings)

    return _loop(player, process, times, collected, info, finish)


def _numpy(values: Any, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """A torch tensor or array from Ultralytics' Results as a numpy array."""
    return np.asarray(values.cpu().numpy() if hasattr(values, "cpu") else values, dtype=dtype)
