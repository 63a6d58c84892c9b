"""Clips through a variant: frames decoded (and resized) in a reader thread, the measured loop around
each frame, and the rsu variant's detector and PerceptionPipeline on them."""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from rsu.perception.counting import LineCounter
from rsu.perception.lanes import LaneMap
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_contracts.config.model import CalibrationPoint, CameraConfig, DetectorConfig
from rsu_tools.bench.perception.plan import BenchError, BenchPlan, FloatArray, ImageArray, VariantSpec
from rsu_tools.bench.perception.statistics import (
    TRUNCATION_WINDOW_S,
    Collected,
    Reservoir,
    StageTimes,
    _count_table,
    _cpu_seconds,
    peak_rss_mb,
    rss_mb,
)
from rsu_tools.evaluation import (
    FrameDetections,
    PredictedCrossing,
    TrackedBoxes,
)

if TYPE_CHECKING:
    from rsu.detectors.base import Detector
    from rsu.perception.counting import _HeldCrossing, _TrackMemory
    from rsu.perception.detections import Detections
    from rsu.perception.tracker import Track
    from rsu_contracts.messages.perception import LineCrossing

WARMUP_FRAMES = 5
PREFETCH_FRAMES = 4
RSS_SAMPLE_EVERY_S = 10.0
# A detection and the track it updated lie this close on the ground (the Kalman posterior is near the measurement).
TRACK_BOX_GATE_M = 3.0


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


def _variant_detector(
    plan: BenchPlan, spec: VariantSpec, source_wh: tuple[int, int]
) -> tuple[SiteConfig, CameraConfig, Detector]:
    """The site, the bench camera with the variant's detector settings (scaled to the stream), and its detector."""
    from rsu.detectors.factory import build_detector

    site = load_site_config(plan.site_path)
    camera = next(c for c in site.cameras if c.id == plan.camera_id)
    camera = camera.model_copy(update={"detector": spec.detector_config(camera.detector)})
    camera = _scaled_camera(camera, source_wh, plan.resize_wh)
    return site, camera, build_detector(camera, config_dir=plan.site_path.parent)


def _run_rsu(
    plan: BenchPlan, spec: VariantSpec, player: ClipPlayer, source_wh: tuple[int, int], collect: bool
) -> tuple[StageTimes, Collected, dict[str, Any], dict[str, Any]]:
    from rsu.perception.motion import MotionGatedDetector
    from rsu.perception.pipeline import PerceptionPipeline

    site, camera, detector = _variant_detector(plan, spec, source_wh)
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
