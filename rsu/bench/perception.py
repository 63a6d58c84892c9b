"""`rsu bench perception`: speed and accuracy of the camera pipeline on a clip, against Ultralytics' own loop.

    rsu bench perception --site datasets/opentrafficcam/site.yaml --clip A.mp4 --clip B.mp4 \\
        --otc-events Testvideo.otgtevents.json --variant name=int8,type=openvino,weights=m_int8.xml

Every variant runs in its own fresh process, one after the other, on the same frames:
- `rsu` variants: the site camera's detector (or one given by --variant) -> PerceptionPipeline
  (ground tracker, zones, line counter), optionally behind the motion gate;
- `baseline`: Ultralytics' `model.track(frame, persist=True)` on the .pt at imgsz 640 with its
  default settings, except: the tracker is ByteTrack unless --baseline-tracker says otherwise
  (Ultralytics 8.4 made TrackTrack its default), verbose is off, and torch gets --threads threads
  instead of Ultralytics' cpu_count - 1. Its tracks are counted on the site's counting lines: the
  box bottom centre projected to the ground, a crossing when its path between two frames cuts a
  line, once per track and line (what Ultralytics' ObjectCounter does with box centres in the image).

Clips play back to back (capture time continuous from 0 s), decoded in a reader thread that runs
ahead by a few frames. `--resize WxH` resizes every frame in the reader (its cost is part of
"decode") and scales the calibration to match, for a throughput figure at a given stream size;
accuracy is still scored in the clip's own pixels. `--realtime` releases frames at the clip's
frame rate and the pipeline takes the newest one (as a live camera), so frames it cannot keep up
with are dropped and counted; otherwise every frame is processed as fast as possible.
`--loop-minutes N` loops the clips for N minutes and reports the resident memory over time.

A variant may add a detail region (DetectorConfig.detail_regions: a second, higher-resolution pass
over the far road, rsu.detectors.detail) with `detail=x1:y1:x2:y2,detail_weights=...,detail_interval_s=...`.

Reported per variant: sustained fps (frames after the warm-up over their wall time), per-stage
latency p50/p99 in ms (decode, motion, detect, track, zones; the baseline's detect is Ultralytics'
preprocess + inference + postprocess and its track the rest of the track() call), dropped frames,
CPU use (process CPU seconds per wall second: 2.0 = both cores busy), peak RSS, and accuracy
where ground truth is given (rsu.perception.evaluation).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import os
import queue
import resource
import sys
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from rsu.config import SiteConfig, load_site_config
from rsu.config.model import CalibrationPoint, CameraConfig, DetectorConfig, RoadUserType
from rsu.detectors.classes import COCO_NAME_TO_ROAD_USER
from rsu.perception.counting import LineCounter
from rsu.perception.evaluation import (
    FrameDetections,
    PredictedCrossing,
    TrackedBoxes,
    TruthBoxes,
    evaluate_counting,
    evaluate_detections,
    evaluate_tracking,
    load_mot_ground_truth,
    load_otc_events,
)
from rsu.perception.lanes import LaneMap

if TYPE_CHECKING:
    from rsu.messages.perception import LineCrossing
    from rsu.perception.counting import _HeldCrossing, _TrackMemory
    from rsu.perception.detections import Detections
    from rsu.perception.homography import Homography
    from rsu.perception.tracker import Track

log = logging.getLogger(__name__)

SCHEMA = "rsu.bench.perception/1"
WARMUP_FRAMES = 5
PREFETCH_FRAMES = 4
RSS_SAMPLE_EVERY_S = 10.0
# A detection and the track it updated lie this close on the ground (the Kalman posterior is near the measurement).
TRACK_BOX_GATE_M = 3.0
BASELINE_IMGSZ = 640
# A track seen this soon after the first frame may have begun its movement before the clip did.
TRUNCATION_WINDOW_S = 0.5
# Latency samples kept per stage (a random sample beyond this: see Reservoir).
RESERVOIR_SIZE = 10_000
CLIP_TRACK_ID_STRIDE = 1_000_000
# Ultralytics' COCO names of the classes counted as road users: the rsu detectors' own table.
COCO_ROAD_USERS = COCO_NAME_TO_ROAD_USER

FloatArray = npt.NDArray[np.float64]
ImageArray = npt.NDArray[np.uint8]


class BenchError(RuntimeError):
    """The benchmark cannot run as asked."""


# -- what to run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantSpec:
    name: str
    kind: str  # "rsu" or "baseline"
    # rsu: DetectorConfig fields and motion-gate fields set over the site camera's detector config.
    detector_fields: dict[str, Any] = field(default_factory=dict)
    motion_fields: dict[str, Any] = field(default_factory=dict)
    baseline_weights: str | None = None  # baseline: the .pt
    baseline_tracker: str = "bytetrack.yaml"  # baseline: Ultralytics tracker config

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


# -- frames ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlayedFrame:
    image: ImageArray
    capture_time_s: float
    clip_index: int
    frame_in_clip: int  # 0-based
    stream_index: int
    decode_s: float
    released_at: float  # perf_counter when the frame became available to the pipeline


class ClipPlayer:
    """Clips back to back (looped until a deadline if asked), decoded and resized in a thread.

    Fast mode: a bounded queue, the reader runs ahead by PREFETCH_FRAMES. Realtime mode: frame i is
    released at start + capture time; a frame not taken before the next one is released is dropped.
    """

    def __init__(
        self,
        clips: Sequence[Path],
        resize_wh: tuple[int, int] | None,
        *,
        max_frames: int | None = None,
        loop_until: float | None = None,
        realtime: bool = False,
    ) -> None:
        self.clips = list(clips)
        self.resize_wh = resize_wh
        self.max_frames = max_frames
        self.loop_until = loop_until
        self.realtime = realtime
        self.dropped = 0
        self.released = 0
        self.loops = 0
        self._queue: queue.Queue[PlayedFrame | None] = queue.Queue(maxsize=PREFETCH_FRAMES)
        self._latest: PlayedFrame | None = None
        self._ended = False
        self._condition = threading.Condition()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="clip reader", daemon=True)

    def __iter__(self) -> Iterator[PlayedFrame]:
        self._thread.start()
        try:
            while True:
                frame = self._next()
                if frame is None:
                    break
                yield frame
        finally:
            self._stop.set()
            with self._condition:
                self._condition.notify_all()
            while not self._queue.empty():  # unblock a reader waiting on a full queue
                self._queue.get_nowait()
            self._thread.join(timeout=5.0)
        if self._error is not None:
            raise BenchError(f"reading the clips failed: {self._error}") from self._error

    def _next(self) -> PlayedFrame | None:
        if not self.realtime:
            return self._queue.get()
        with self._condition:
            self._condition.wait_for(lambda: self._latest is not None or self._ended)
            frame, self._latest = self._latest, None
            return frame

    def _frames(self) -> Iterator[tuple[ImageArray, float, int, int, float]]:
        """(image, capture time, clip index, frame in clip, decode seconds), looping if asked."""
        clip_start_s = 0.0
        while True:
            for clip_index, clip in enumerate(self.clips):
                capture = cv2.VideoCapture(str(clip))
                if not capture.isOpened():
                    raise BenchError(f"cannot open clip {clip}")
                fps = capture.get(cv2.CAP_PROP_FPS)
                if not math.isfinite(fps) or fps <= 0:
                    raise BenchError(f"{clip} reports no frame rate")
                frame_in_clip = 0
                try:
                    while not self._stop.is_set():
                        started = time.perf_counter()
                        ok, image = capture.read()
                        if not ok or image is None:
                            break
                        if self.resize_wh is not None and (image.shape[1], image.shape[0]) != self.resize_wh:
                            image = cv2.resize(image, self.resize_wh, interpolation=cv2.INTER_LINEAR)
                        decode_s = time.perf_counter() - started
                        yield (
                            np.asarray(image, dtype=np.uint8),
                            clip_start_s + frame_in_clip / fps,
                            clip_index,
                            frame_in_clip,
                            decode_s,
                        )
                        frame_in_clip += 1
                finally:
                    capture.release()
                if frame_in_clip == 0:
                    raise BenchError(f"no frame could be decoded from {clip}")
                clip_start_s += frame_in_clip / fps
            self.loops += 1
            if self.loop_until is None or time.perf_counter() >= self.loop_until or self._stop.is_set():
                return

    def _run(self) -> None:
        start = time.perf_counter()
        try:
            for index, (image, capture_time_s, clip_index, frame_in_clip, decode_s) in enumerate(self._frames()):
                if self._stop.is_set() or (self.max_frames is not None and index >= self.max_frames):
                    break
                if self.loop_until is not None and time.perf_counter() >= self.loop_until:
                    break
                if self.realtime:
                    delay = start + capture_time_s - time.perf_counter()
                    if delay > 0:
                        self._stop.wait(delay)
                frame = PlayedFrame(
                    image, capture_time_s, clip_index, frame_in_clip, index, decode_s, time.perf_counter()
                )
                self.released += 1
                if self.realtime:
                    with self._condition:
                        if self._latest is not None:
                            self.dropped += 1
                        self._latest = frame
                        self._condition.notify_all()
                else:
                    while not self._stop.is_set():
                        try:
                            self._queue.put(frame, timeout=0.2)
                            break
                        except queue.Full:
                            continue
        except BaseException as exc:  # reported to the consumer, which re-raises it
            self._error = exc
        finally:
            with self._condition:
                self._ended = True
                self._condition.notify_all()
            if not self.realtime:
                while not self._stop.is_set():
                    try:
                        self._queue.put(None, timeout=0.2)
                        break
                    except queue.Full:
                        continue


# -- measurements ---------------------------------------------------------------------------------


class Reservoir:
    """A uniform random sample of at most `capacity` values, and the exact count and mean.

    Bounded memory, so that a soak run measures the pipeline's memory, not the benchmark's.
    """

    def __init__(self, capacity: int = RESERVOIR_SIZE, seed: int = 0) -> None:
        # Filled now, so that its pages are resident from the start and a soak sees no growth from it.
        self._values = np.full(capacity, np.nan)
        self._rng = np.random.default_rng(seed)
        self.count = 0
        self.total = 0.0

    def add(self, value: float) -> None:
        capacity = len(self._values)
        if self.count < capacity:
            self._values[self.count] = value
        else:
            # Algorithm R: the n-th value replaces a random kept one with probability capacity / n.
            slot = int(self._rng.integers(0, self.count + 1))
            if slot < capacity:
                self._values[slot] = value
        self.count += 1
        self.total += value

    @property
    def values(self) -> FloatArray:
        return self._values[: min(self.count, len(self._values))]


@dataclass
class StageTimes:
    samples: dict[str, Reservoir] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        reservoir = self.samples.get(stage)
        if reservoir is None:
            reservoir = self.samples[stage] = Reservoir()
        reservoir.add(seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            stage: {
                "p50_ms": round(1000 * float(np.percentile(reservoir.values, 50)), 3),
                "p99_ms": round(1000 * float(np.percentile(reservoir.values, 99)), 3),
                "mean_ms": round(1000 * reservoir.total / reservoir.count, 3),
            }
            for stage, reservoir in self.samples.items()
            if reservoir.count
        }


def rss_mb() -> float:
    """Resident memory of this process now, from /proc (no extra dependency)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return math.nan


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Collected:
    """What a variant saw, for the accuracy evaluation (kept only when ground truth is given)."""

    detections: dict[tuple[int, int], FrameDetections] = field(default_factory=dict)
    tracks: dict[tuple[int, int], TrackedBoxes] = field(default_factory=dict)
    crossings: list[PredictedCrossing] = field(default_factory=list)
    # Tracks alive in the first TRUNCATION_WINDOW_S of the clips or at their last frame.
    truncated_track_ids: set[int] = field(default_factory=set)


# -- the rsu pipeline -----------------------------------------------------------------------------


class AttributingLineCounter(LineCounter):
    """The pipeline's LineCounter, remembering which track made each crossing.

    LineCrossing carries no track id, and movements (enter A, leave B) need one; this hooks the one
    place where LineCounter reports a crossing. A track_id on LineCrossing would make it unnecessary.
    """

    def __init__(self, site: SiteConfig, lane_map: LaneMap) -> None:
        super().__init__(site, lane_map)
        self.attributed: list[tuple[int, LineCrossing]] = []

    def _record(self, track: Track, memory: _TrackMemory, held: _HeldCrossing, crossings: list[LineCrossing]) -> None:
        before = len(crossings)
        super()._record(track, memory, held, crossings)
        if len(crossings) > before:
            self.attributed.append((track.track_id, crossings[-1]))


def _scaled_camera(camera: CameraConfig, source_wh: tuple[int, int], resize_wh: tuple[int, int] | None) -> CameraConfig:
    """The camera with its calibration (and the detector's pixel boxes) scaled to the resized frames."""
    if resize_wh is None or resize_wh == source_wh:
        return camera
    sx, sy = resize_wh[0] / source_wh[0], resize_wh[1] / source_wh[1]
    calibration = [
        CalibrationPoint(image_px=(p.image_px[0] * sx, p.image_px[1] * sy), ground_m=p.ground_m)
        for p in camera.calibration
    ]
    motion = camera.detector.motion
    ignore = [(x1 * sx, y1 * sy, x2 * sx, y2 * sy) for x1, y1, x2, y2 in motion.ignore_boxes_px]
    detail = [
        region.model_copy(update={"box_px": (x1 * sx, y1 * sy, x2 * sx, y2 * sy)})
        for region in camera.detector.detail_regions
        for x1, y1, x2, y2 in [region.box_px]
    ]
    detector = camera.detector.model_copy(
        update={"motion": motion.model_copy(update={"ignore_boxes_px": ignore}), "detail_regions": detail}
    )
    return camera.model_copy(update={"calibration": calibration, "detector": detector})


def _track_boxes(
    tracks: Sequence[Track], detections: Detections, matched: dict[int, int] | None = None
) -> TrackedBoxes:
    """Image boxes of the confirmed tracks updated by a detection this frame (coasting tracks have none).

    matched: the tracker's own track id -> detection index of this update; without it, each track
    takes the nearest detection on the ground (within TRACK_BOX_GATE_M).
    """
    updated = [t for t in tracks if t.confirmed and t.coasting_s <= 0.0]
    if not updated or detections.boxes_px is None or len(detections) == 0:
        return TrackedBoxes(np.zeros((0, 4)), np.zeros(0, dtype=np.int64))
    if matched is not None:
        pairs = [(t.track_id, matched[t.track_id]) for t in updated if t.track_id in matched]
        return TrackedBoxes(
            boxes_px=detections.boxes_px[[d for _, d in pairs]].reshape(-1, 4),
            track_ids=np.array([i for i, _ in pairs], dtype=np.int64),
        )
    track_xy = np.array([[t.x_m, t.y_m] for t in updated])
    distance = np.linalg.norm(track_xy[:, None, :] - detections.ground_xy_m[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(distance)
    keep = distance[rows, cols] <= TRACK_BOX_GATE_M
    return TrackedBoxes(
        boxes_px=detections.boxes_px[cols[keep]],
        track_ids=np.array([updated[r].track_id for r in rows[keep]], dtype=np.int64),
    )


def _run_rsu(
    plan: BenchPlan, spec: VariantSpec, player: ClipPlayer, source_wh: tuple[int, int], collect: bool
) -> tuple[StageTimes, Collected, dict[str, Any], dict[str, Any]]:
    from rsu.detectors.factory import build_detector
    from rsu.perception.motion import MotionGatedDetector
    from rsu.perception.pipeline import PerceptionPipeline

    site = load_site_config(plan.site_path)
    camera = next(c for c in site.cameras if c.id == plan.camera_id)
    camera = camera.model_copy(update={"detector": spec.detector_config(camera.detector)})
    camera = _scaled_camera(camera, source_wh, plan.resize_wh)
    detector = build_detector(camera, config_dir=plan.site_path.parent)
    pipeline = PerceptionPipeline(site, camera.id)
    # Attribution keeps every crossing: only for accuracy runs, not for soaks.
    counter = AttributingLineCounter(site, pipeline.lane_map) if collect else pipeline.counter
    pipeline.counter = counter
    # The tracker's share of pipeline.process is timed by wrapping its update (and its output kept).
    tracker_calls: list[tuple[list[Track], float]] = []
    tracker_update = pipeline.tracker.update

    def timed_tracker_update(detections: Detections) -> list[Track]:
        started = time.perf_counter()
        tracks = tracker_update(detections)
        tracker_calls[:] = [(tracks, time.perf_counter() - started)]
        return tracks

    pipeline.tracker.update = timed_tracker_update  # type: ignore[method-assign]
    scale_back = _scale_back(source_wh, plan.resize_wh)
    info: dict[str, Any] = {
        "detector": _describe_detector(detector, camera.detector),
        "imgsz": list(getattr(detector, "input_hw", ()) or _as_hw(camera.detector.imgsz)),
    }
    times = StageTimes()
    collected = Collected()

    def process(frame: PlayedFrame) -> None:
        started = time.perf_counter()
        detections = detector.detect(frame.image, frame.capture_time_s)
        detect_s = time.perf_counter() - started
        motion_s = float(detections.extras.get("motion_s", 0.0))  # type: ignore[arg-type]
        if "motion_s" in detections.extras:
            times.add("motion", motion_s)
        times.add("detect", detect_s - motion_s)
        started = time.perf_counter()
        pipeline.process(detections)
        process_s = time.perf_counter() - started
        tracks, track_s = tracker_calls[-1]
        times.add("track", track_s)
        # Zones, lanes, counting and movements: the rest of PerceptionPipeline.process.
        times.add("zones", process_s - track_s)
        if collect:
            if frame.capture_time_s <= TRUNCATION_WINDOW_S:
                collected.truncated_track_ids.update(track.track_id for track in tracks)
            key = (frame.clip_index, frame.frame_in_clip)
            boxes = detections.boxes_px if detections.boxes_px is not None else np.zeros((0, 4))
            collected.detections[key] = FrameDetections(boxes * scale_back, detections.road_user, detections.confidence)
            tracked = _track_boxes(tracks, detections, pipeline.tracker.matched_detections)
            collected.tracks[key] = TrackedBoxes(tracked.boxes_px * scale_back, tracked.track_ids)

    def finish() -> None:
        if isinstance(counter, AttributingLineCounter):
            collected.crossings = [
                PredictedCrossing(c.line_id, c.time_s, track_id, c.road_user) for track_id, c in counter.attributed
            ]
        info["crossings_per_line"] = dict(counter.totals)
        collected.truncated_track_ids.update(track.track_id for track in pipeline.tracker.tracks)
        inner = getattr(detector, "detector", detector)  # through a motion gate
        if camera.detector.detail_regions:
            info["detail_region_runs"] = list(getattr(inner, "detail_runs", []))
        if isinstance(detector, MotionGatedDetector):
            info["motion_gate"] = {
                "frames": detector.frames,
                "detector_runs": detector.detector_runs,
                "skipped_share": round(detector.skipped_share, 4),
            }
        info["counts"] = _count_table(collected.crossings)

    return _loop(player, process, times, collected, info, finish)


def _describe_detector(detector: object, config: DetectorConfig) -> str:
    inner = getattr(detector, "detector", detector)  # through a motion gate
    description = getattr(inner, "description", None)
    text = str(description) if description else f"{config.type} {Path(config.weights).name}"
    if inner is not detector:
        text += " + motion gate"
    return text


def _as_hw(imgsz: int | tuple[int, int]) -> tuple[int, int]:
    return (imgsz, imgsz) if isinstance(imgsz, int) else (imgsz[0], imgsz[1])


def _scale_back(source_wh: tuple[int, int], resize_wh: tuple[int, int] | None) -> FloatArray:
    """Multiplier for x1 y1 x2 y2 boxes from resized frames back to the clip's own pixels."""
    if resize_wh is None:
        return np.ones(4)
    sx, sy = source_wh[0] / resize_wh[0], source_wh[1] / resize_wh[1]
    return np.array([sx, sy, sx, sy])


def _count_table(crossings: Sequence[PredictedCrossing]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for crossing in crossings:
        table[crossing.line_id][crossing.road_user.value] += 1
    return {line: dict(sorted(classes.items())) for line, classes in sorted(table.items())}


# -- the Ultralytics baseline ---------------------------------------------------------------------


class GroundLineCrossings:
    """Baseline counting: a track's ground path cutting a counting line, once per track and line."""

    def __init__(self, site: SiteConfig, forget_after_s: float = 5.0) -> None:
        self.lines = [(line.id, np.array(line.line_m[0]), np.array(line.line_m[1])) for line in site.counting_lines]
        self.forget_after_s = forget_after_s
        self._last: dict[int, tuple[FloatArray, float]] = {}
        self._counted: set[tuple[int, str]] = set()
        self.crossings: list[PredictedCrossing] = []

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
    road_user_of_class = {i: COCO_ROAD_USERS[n] for i, n in names.items() if n in COCO_ROAD_USERS}
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
        contact = np.column_stack(((xyxy[:, 0] + xyxy[:, 2]) / 2, xyxy[:, 3])) if len(xyxy) else np.zeros((0, 2))
        ground = homography.image_to_ground(contact)
        on_ground = np.all(np.isfinite(ground), axis=1)
        counter.update(
            [int(i) for i in ids[on_ground]],
            ground[on_ground],
            [u for u, keep in zip(users, on_ground, strict=True) if keep],
            frame.capture_time_s,
        )
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


# -- the measured loop ----------------------------------------------------------------------------


def _loop(
    player: ClipPlayer,
    process: Callable[[PlayedFrame], None],
    times: StageTimes,
    collected: Collected,
    info: dict[str, Any],
    finish: Callable[[], None],
) -> tuple[StageTimes, Collected, dict[str, Any], dict[str, Any]]:
    frames = 0
    # (end time, CPU seconds) after the first frame and after the warm-up.
    first_mark: tuple[float, float] | None = None
    warm_mark: tuple[float, float] | None = None
    warmup_samples: dict[str, Reservoir] = {}
    warmup_latencies: dict[str, Reservoir] = {}
    latencies = StageTimes()
    rss_samples: list[tuple[float, float]] = []
    loop_started = time.perf_counter()
    next_rss_sample = loop_started
    for frame in player:
        process(frame)
        now = time.perf_counter()
        frames += 1
        times.add("decode", frame.decode_s)
        latencies.add("frame", now - frame.released_at)
        if frames == 1:
            first_mark = (now, _cpu_seconds())
        if frames == WARMUP_FRAMES:
            # Steady state from here: the first frames include lazy allocations in every stage.
            warm_mark = (now, _cpu_seconds())
            warmup_samples, times.samples = times.samples, {}
            warmup_latencies, latencies.samples = latencies.samples, {}
        if now >= next_rss_sample:
            rss_samples.append((round(now - loop_started, 1), round(rss_mb(), 1)))
            next_rss_sample = now + RSS_SAMPLE_EVERY_S
    ended = time.perf_counter()
    rss_samples.append((round(ended - loop_started, 1), round(rss_mb(), 1)))
    finish()
    if frames > WARMUP_FRAMES and warm_mark is not None:
        mark, measured_frames = warm_mark, frames - WARMUP_FRAMES
    else:
        # A run too short for the warm-up (few frames, or most dropped in realtime): all but the first frame.
        mark, measured_frames = first_mark or (ended, _cpu_seconds()), max(frames - 1, 0)
        times.samples = {**warmup_samples, **times.samples}
        latencies.samples = {**warmup_latencies, **latencies.samples}
    wall_s = ended - mark[0]
    cpu_from = mark[1]
    stages = times.summary()
    speed: dict[str, Any] = {
        "frames_processed": frames,
        "frames_measured": measured_frames,
        "wall_s": round(wall_s, 3),
        "warmup_frames": frames - measured_frames,
        "fps": round(measured_frames / wall_s, 2) if measured_frames and wall_s > 0 else None,
        "frames_released": player.released,
        "dropped_frames": player.dropped,
        "loops": player.loops,
        "cpu_use": round((_cpu_seconds() - cpu_from) / wall_s, 3) if wall_s > 0 else None,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_mb_samples": rss_samples,
        "rss_mb_start": rss_samples[0][1],
        "rss_mb_end": rss_samples[-1][1],
        "stages": stages,
    }
    frame_latency = latencies.summary().get("frame")
    if player.realtime and frame_latency:
        speed["frame_latency_ms"] = {"p50": frame_latency["p50_ms"], "p99": frame_latency["p99_ms"]}
    return times, collected, info, speed


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- one variant in its own process ---------------------------------------------------------------


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


def run_variant(plan: BenchPlan, spec: VariantSpec) -> dict[str, Any]:
    """One variant over the clips, in this process; the result dict of the JSON report."""
    source_sizes = {_clip_size(clip) for clip in plan.clips}
    if len(source_sizes) != 1:
        raise BenchError(f"the clips have different frame sizes {sorted(source_sizes)}; bench them separately")
    source_wh = source_sizes.pop()
    collect = plan.loop_minutes is None and (plan.otc_events is not None or bool(plan.mot_ground_truth))
    loop_until = time.perf_counter() + 60.0 * plan.loop_minutes if plan.loop_minutes else None
    player = ClipPlayer(
        plan.clips, plan.resize_wh, max_frames=plan.max_frames, loop_until=loop_until, realtime=plan.realtime
    )
    load_before = os.getloadavg()
    runner = _run_rsu if spec.kind == "rsu" else _run_baseline
    _, collected, info, speed = runner(plan, spec, player, source_wh, collect)
    result: dict[str, Any] = {"name": spec.name, "kind": spec.kind, **info, **speed}
    result["load_average_before"] = [round(x, 2) for x in load_before]
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if collect:
        result["accuracy"] = _accuracy(plan, collected)
    return result


def _accuracy(plan: BenchPlan, collected: Collected) -> dict[str, Any]:
    accuracy: dict[str, Any] = {}
    site = load_site_config(plan.site_path)
    line_ids = [line.id for line in site.counting_lines]
    if plan.otc_events is not None:
        clip_start_s: dict[str, float] = {}
        start = 0.0
        for clip in plan.clips:
            clip_start_s[clip.name] = start
            capture = cv2.VideoCapture(str(clip))
            start += capture.get(cv2.CAP_PROP_FRAME_COUNT) / capture.get(cv2.CAP_PROP_FPS)
            capture.release()
        truth = load_otc_events(plan.otc_events, clip_start_s, _clip_fps(plan.clips[0]), line_ids=line_ids)
        if plan.max_frames is not None:
            last_clip, last_frame = max((key for key in collected.detections), default=(0, 0))
            horizon = clip_start_s[plan.clips[last_clip].name] + last_frame / _clip_fps(plan.clips[last_clip])
            truth = [t for t in truth if t.time_s <= horizon]
        score = evaluate_counting(
            truth,
            collected.crossings,
            line_ids,
            plan.time_tolerance_s,
            unscored_classes=plan.unscored_classes,
            truncated_track_ids=collected.truncated_track_ids,
        )
        accuracy["counting"] = score.as_dict()
    if plan.mot_ground_truth:
        if len(plan.mot_ground_truth) != len(plan.clips):
            raise BenchError("give one --mot-gt per --clip, in the same order")
        all_truth: dict[int, TruthBoxes] = {}
        all_detections: dict[int, FrameDetections] = {}
        all_tracks: dict[int, TrackedBoxes] = {}
        # Frames of all clips on one axis: clip k's frame f (0-based) is MOT frame f + 1 of its own file.
        offset = 0
        for clip_index, path in enumerate(plan.mot_ground_truth):
            truth_frames = load_mot_ground_truth(path)
            frames_here = [key for key in collected.detections if key[0] == clip_index]
            for _, frame in frames_here:
                all_detections[offset + frame + 1] = collected.detections[(clip_index, frame)]
                all_tracks[offset + frame + 1] = collected.tracks[(clip_index, frame)]
            for frame, boxes in truth_frames.items():
                # Track ids restart in every file: keep one clip's ids apart from the next's.
                all_truth[offset + frame] = TruthBoxes(
                    boxes.boxes_px, boxes.class_ids, boxes.track_ids + clip_index * CLIP_TRACK_ID_STRIDE
                )
            offset += 1 + max([*truth_frames, *(f + 1 for _, f in frames_here)], default=0)
        accuracy["detection"] = evaluate_detections(all_truth, all_detections).as_dict()
        accuracy["tracking"] = evaluate_tracking(all_truth, all_tracks).as_dict()
    return accuracy


def _variant_process(plan: BenchPlan, spec: VariantSpec, results: Any) -> None:
    logging.basicConfig(level=logging.WARNING)
    try:
        results.put(("ok", run_variant(plan, spec)))
    except BaseException as exc:  # the parent reports it; a child must not die silently
        results.put(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def run_bench(plan: BenchPlan, variants: Sequence[VariantSpec], *, isolated: bool = True) -> dict[str, Any]:
    """All variants one after the other, each in a fresh process unless isolated=False (tests)."""
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "site": str(plan.site_path),
        "camera_id": plan.camera_id,
        "clips": [str(c) for c in plan.clips],
        "source_size": list(_clip_size(plan.clips[0])),
        "stream_size": list(plan.resize_wh) if plan.resize_wh else list(_clip_size(plan.clips[0])),
        "source_fps": _clip_fps(plan.clips[0]),
        "mode": "realtime" if plan.realtime else "as fast as possible",
        "loop_minutes": plan.loop_minutes,
        "max_frames": plan.max_frames,
        "threads": plan.threads,
        "machine": {"cpus": os.cpu_count(), "cpu": _cpu_model(), "load_average_at_start": list(os.getloadavg())},
        "variants": [],
    }
    context = multiprocessing.get_context("spawn")
    for spec in variants:
        if not isolated:
            report["variants"].append(run_variant(plan, spec))
            continue
        results = context.Queue()
        child = context.Process(target=_variant_process, args=(plan, spec, results), name=f"bench {spec.name}")
        child.start()
        status, payload = _wait_for_result(child, results)
        if status != "ok":
            raise BenchError(f"variant {spec.name} failed: {payload}")
        report["variants"].append(payload)
    baseline = next((v for v in report["variants"] if v["kind"] == "baseline"), None)
    if baseline is not None and baseline.get("fps"):
        report["speed_ratio_to_baseline"] = {
            v["name"]: round(v["fps"] / baseline["fps"], 2)
            for v in report["variants"]
            if v["kind"] == "rsu" and v.get("fps")
        }
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    return report


def _wait_for_result(child: Any, results: Any) -> tuple[str, Any]:
    """The child's (status, payload); an error if it dies without one (killed, crashed in native code)."""
    while True:
        try:
            outcome: tuple[str, Any] = results.get(timeout=1.0)
        except queue.Empty:
            if not child.is_alive():
                return "error", f"the process ended without a result (exit code {child.exitcode})"
            continue
        child.join()
        return outcome


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


# -- report ---------------------------------------------------------------------------------------


def render_table(report: dict[str, Any]) -> str:
    stream = "x".join(str(v) for v in report["stream_size"])
    lines = [
        f"perception bench: {len(report['clips'])} clip(s), stream {stream}, {report['mode']}, "
        f"{report['machine']['cpus']} CPUs, load {report['machine']['load_average_at_start'][0]:.2f} at start",
        "",
    ]
    header = (
        f"{'variant':<14} {'fps':>6} {'decode':>11} {'motion':>11} {'detect':>11} {'track':>11} {'zones':>11} "
        f"{'drop':>5} {'cpu':>5} {'peakMB':>7}"
    )
    lines.append(header + "   (stage latency p50/p99 ms)")
    for variant in report["variants"]:
        stages = variant["stages"]

        def cell(stage: str, stages: dict[str, Any] = stages) -> str:
            s = stages.get(stage)
            return f"{s['p50_ms']:.1f}/{s['p99_ms']:.1f}" if s else "-"

        fps = variant.get("fps")
        lines.append(
            f"{variant['name']:<14} {fps if fps is not None else '-':>6} {cell('decode'):>11} {cell('motion'):>11} "
            f"{cell('detect'):>11} {cell('track'):>11} {cell('zones'):>11} {variant['dropped_frames']:>5} "
            f"{variant['cpu_use'] if variant['cpu_use'] is not None else '-':>5} {variant['peak_rss_mb']:>7.0f}"
        )
    lines.append("")
    for variant in report["variants"]:
        lines.append(f"{variant['name']}: {variant['detector']}")
        if variant.get("detail_region_runs"):
            lines.append(
                f"  detail regions ran {variant['detail_region_runs']} times in {variant['frames_processed']} frames"
            )
        gate = variant.get("motion_gate")
        if gate:
            lines.append(f"  motion gate: detector ran on {gate['detector_runs']}/{gate['frames']} frames")
        if report.get("loop_minutes"):
            lines.append(
                f"  RSS MB start {variant['rss_mb_start']} end {variant['rss_mb_end']} ({variant['loops']} loops)"
            )
        accuracy = variant.get("accuracy", {})
        counting = accuracy.get("counting")
        if counting:
            per_line = ", ".join(
                f"{s['line_id']} {s['matched_right_class']}/{s['truth']} (+{s['phantom']})" for s in counting["lines"]
            )
            movements = ", ".join(
                f"{m['from_line']}->{m['to_line']} {m['found_right_class']}/{m['truth']} pred {m['predicted']}"
                for m in counting["movements"]
            )
            lines.append(
                f"  counting: {counting['matched_right_class_total']}/{counting['truth_total']} crossings with the "
                f"right line and class, {counting['phantom_total']} phantom, {counting['unscored_total']} unscored; "
                f"per line {per_line}"
            )
            for unscored in counting["unscored_events"]:
                lines.append(
                    f"    unscored: {unscored['class']} over {unscored['line_id']} at {unscored['time_s']} s "
                    f"(track {unscored['track_id']}): {unscored['reason']}"
                )
            lines.append(f"  movements (found/truth): {movements}")
        detection = accuracy.get("detection")
        if detection:
            per_class = ", ".join(
                f"{name} {c['recall']}" + (f" ({c['recall_right_class']} right class)" if c["truth"] else "")
                for name, c in detection["per_class"].items()
            )
            lines.append(
                f"  detection @IoU {detection['iou_threshold']}: vehicle recall {detection['recall']}, precision "
                f"{detection['precision']}; per class {per_class}"
            )
        tracking = accuracy.get("tracking")
        if tracking:
            lines.append(
                f"  tracking: MOTA {tracking['mota']}, IDF1 {tracking['idf1']}, ID switches {tracking['id_switches']}"
            )
    ratios = report.get("speed_ratio_to_baseline")
    if ratios:
        lines.append("")
        capped = " (realtime: capped by the source's frame rate, compare drops)" if report["mode"] == "realtime" else ""
        lines.append("speed vs baseline: " + ", ".join(f"{name} {ratio}x" for name, ratio in ratios.items()) + capped)
    return "\n".join(lines)


# -- command line ---------------------------------------------------------------------------------


def parse_variant(text: str) -> VariantSpec:
    """`name=int8,type=openvino,weights=PATH[,precision=bf16][,threads=2][,motion=on][,imgsz=384x640][,conf=0.25]`.

    `detail=x1:y1:x2:y2[,detail_weights=PATH][,detail_imgsz=HxW][,detail_interval_s=S]`: one detail region
    (DetectorConfig.detail_regions) instead of the site's; its box in the clip's own pixels.
    """
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise BenchError(f"--variant {text!r}: expected key=value pairs, got {part!r}")
        fields[key.strip()] = value.strip()
    name = fields.pop("name", None)
    if not name:
        raise BenchError(f"--variant {text!r} needs name=...")
    config: dict[str, Any] = {}
    motion: dict[str, Any] = {}
    detail: dict[str, Any] = {}
    for key, value in fields.items():
        if key in ("type", "weights"):
            config[key] = value
        elif key == "precision":
            config["inference_precision"] = value
        elif key in ("threads",):
            config[key] = int(value)
        elif key in ("conf", "confidence"):
            config["confidence"] = float(value)
        elif key == "imgsz":
            h, w = (int(v) for v in value.lower().split("x"))
            config["imgsz"] = (h, w)
        elif key == "detail":
            # x1:y1:x2:y2 in the clip's own pixels (scaled with --resize); replaces the site's detail regions
            detail["box_px"] = tuple(float(v) for v in value.split(":"))
        elif key == "detail_weights":
            detail["weights"] = value
        elif key == "detail_interval_s":
            detail["interval_s"] = float(value)
        elif key == "detail_imgsz":
            h, w = (int(v) for v in value.lower().split("x"))
            detail["imgsz"] = (h, w)
        elif key == "motion":
            motion["enabled"] = value.lower() in ("on", "true", "1", "yes")
        elif key == "motion_max_skip_s":
            motion["max_skip_s"] = float(value)
        elif key == "motion_ignore":
            # x1:y1:x2:y2[;x1:y1:x2:y2...] in frame pixels (a clock overlay)
            motion["ignore_boxes_px"] = [tuple(float(v) for v in box.split(":")) for box in value.split(";") if box]
        else:
            raise BenchError(f"--variant {text!r}: unknown key {key!r}")
    if detail:
        if "box_px" not in detail:
            raise BenchError(f"--variant {text!r}: detail_* keys need detail=x1:y1:x2:y2")
        config["detail_regions"] = [detail]
    return VariantSpec(name=name, kind="rsu", detector_fields=config, motion_fields=motion)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise BenchError(f"--resize {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720") from exc
    if width <= 0 or height <= 0:
        raise BenchError(f"--resize {text!r}: sizes must be positive")
    return width, height


def plan_from_args(args: argparse.Namespace) -> tuple[BenchPlan, list[VariantSpec]]:
    from rsu.sensors.video import expand_uri

    site_path = Path(args.site).resolve()
    site = load_site_config(site_path)
    video_cameras = [c for c in site.cameras if c.uri]
    if args.camera:
        matches = [c for c in site.cameras if c.id == args.camera]
        if not matches:
            raise BenchError(f"{site_path}: no camera {args.camera!r} (cameras: {[c.id for c in site.cameras]})")
        camera = matches[0]
    elif video_cameras:
        camera = video_cameras[0]
    else:
        raise BenchError(f"{site_path} has no video camera")
    if args.clip:
        clips = tuple(Path(c).resolve() for c in args.clip)
    elif camera.uri:
        clips = (Path(expand_uri(camera.uri, site_path.parent)),)
    else:
        raise BenchError(f"camera {camera.id} has no uri; give --clip")
    for clip in clips:
        if not clip.is_file():
            raise BenchError(f"clip not found: {clip}")
    plan = BenchPlan(
        site_path=site_path,
        camera_id=camera.id,
        clips=clips,
        resize_wh=_parse_size(args.resize) if args.resize else None,
        max_frames=args.max_frames,
        loop_minutes=args.loop_minutes,
        realtime=args.realtime,
        threads=args.threads,
        otc_events=Path(args.otc_events).resolve() if args.otc_events else None,
        mot_ground_truth=tuple(Path(p).resolve() for p in args.mot_gt),
        time_tolerance_s=args.time_tolerance_s,
        unscored_classes=tuple(RoadUserType(c) for c in args.unscored_class),
    )
    specs = [parse_variant(text) for text in args.variant] or [VariantSpec(name="rsu", kind="rsu")]
    for spec in specs:
        try:
            spec.detector_config(camera.detector)  # a bad --variant fails here, not in a child process
        except ValueError as exc:
            raise BenchError(f"--variant {spec.name}: {exc}") from exc
    if not args.no_baseline:
        weights = args.baseline_weights
        if weights is None and camera.detector.type == "ultralytics":
            weights = expand_uri(camera.detector.weights, site_path.parent)
        if weights is None:
            raise BenchError("the site's detector is not a .pt: give --baseline-weights (or --no-baseline)")
        trackers = args.baseline_tracker or ["bytetrack.yaml"]
        for position, tracker in enumerate(trackers):
            name = "baseline" if position == 0 else f"baseline_{Path(tracker).stem}"
            specs.insert(
                position,
                VariantSpec(name=name, kind="baseline", baseline_weights=str(weights), baseline_tracker=tracker),
            )
    return plan, specs


def _bench_command(args: argparse.Namespace) -> int:
    try:
        plan, specs = plan_from_args(args)
        report = run_bench(plan, specs)
    except BenchError as exc:
        print(f"rsu bench perception: error: {exc}", file=sys.stderr)
        return 2
    print(render_table(report))
    output = Path(args.json)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"\nwrote {output}")
    return 0


def add_bench_perception_parser(subparsers: Any, name: str = "perception") -> argparse.ArgumentParser:
    """`rsu bench perception`: registered on the `bench` group's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help="camera pipeline fps, stage latency, CPU, memory and accuracy vs Ultralytics' track() loop",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--site", required=True, help="site config with the camera (calibration, counting lines)")
    parser.add_argument("--camera", help="camera id (default: the first video camera)")
    parser.add_argument(
        "--clip", action="append", default=[], help="clip to play (repeat: back to back); default: the camera uri"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="an rsu variant: name=N[,type=openvino|onnx|ultralytics,weights=P,precision=f32|bf16,threads=T,"
        "motion=on,motion_ignore=x1:y1:x2:y2,imgsz=HxW,conf=C,detail=x1:y1:x2:y2,detail_weights=P,detail_imgsz=HxW,"
        "detail_interval_s=S] (repeat; default: the site's detector)",
    )
    parser.add_argument(
        "--baseline-weights", help="the .pt for the Ultralytics baseline (default: the site's, if a .pt)"
    )
    parser.add_argument(
        "--baseline-tracker",
        action="append",
        default=[],
        help="Ultralytics tracker config of the baseline (default bytetrack.yaml; ultralytics 8.4's own default "
        "is tracktrack.yaml); repeat to run several baselines",
    )
    parser.add_argument("--no-baseline", action="store_true", help="run only the rsu variants")
    parser.add_argument("--resize", help="resize frames to WIDTHxHEIGHT in the reader (e.g. 1280x720)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--loop-minutes", type=float, help="soak: loop the clips this long and report memory")
    parser.add_argument("--realtime", action="store_true", help="release frames at the clip's rate; count drops")
    parser.add_argument("--threads", type=int, default=2, help="threads of the baseline's torch (rsu: from the config)")
    parser.add_argument("--otc-events", help="OpenTrafficCam *.otgtevents.json: counting accuracy")
    parser.add_argument("--mot-gt", action="append", default=[], help="MOTChallenge gt.txt per clip: detection and MOT")
    parser.add_argument("--time-tolerance-s", type=float, default=2.0, help="crossing match tolerance (default 2 s)")
    parser.add_argument(
        "--unscored-class",
        action="append",
        default=[],
        choices=[user.value for user in RoadUserType],
        help="a class the counting ground truth does not label (OTC's test file: pedestrian); repeatable",
    )
    parser.add_argument("--json", default="bench-perception.json", help="where to write the JSON report")
    parser.set_defaults(handler=_bench_command)
    return parser
