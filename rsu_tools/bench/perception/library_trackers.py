"""Well-kept trackers fed the rsu detector's own detections: Roboflow's `trackers` library (the
successor of supervision's ByteTrack, which supervision 0.31 no longer ships; Apache-2.0).

Same frames, same detector, same detector settings as the `rsu` variant, so the difference in the
tracking scores is the tracker's alone. The library runs with its own defaults except the frame
rate (the clip's) and the timestamps (the frames' capture times). Its tracks are counted on the
site's counting lines the way the Ultralytics baseline's are (box bottom centre on the ground,
GroundLineCrossings).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from rsu_contracts.enums import RoadUserType
from rsu_tools.bench.perception.baselines import GroundLineCrossings
from rsu_tools.bench.perception.plan import BenchError, BenchPlan, VariantSpec, _clip_fps
from rsu_tools.bench.perception.playback import (
    ClipPlayer,
    PlayedFrame,
    _describe_detector,
    _loop,
    _scale_back,
    _variant_detector,
)
from rsu_tools.bench.perception.statistics import TRUNCATION_WINDOW_S, Collected, StageTimes, _count_table
from rsu_tools.evaluation import FrameDetections, TrackedBoxes

# --library-tracker NAME -> the `trackers` class.
LIBRARY_TRACKERS = ("bytetrack", "ocsort", "sort")
ROAD_USER_CLASSES: tuple[RoadUserType, ...] = tuple(RoadUserType)


def _library_tracker(name: str, frame_rate: float) -> Any:
    try:
        import trackers
    except ImportError as exc:
        raise BenchError("the library trackers need the `trackers` package (pip install trackers)") from exc
    classes = {
        "bytetrack": trackers.ByteTrackTracker,
        "ocsort": trackers.OCSORTTracker,
        "sort": trackers.SORTTracker,
    }
    if name not in classes:
        raise BenchError(f"unknown library tracker {name!r}: choose from {', '.join(LIBRARY_TRACKERS)}")
    return classes[name](frame_rate=frame_rate)


def _run_library_tracker(
    plan: BenchPlan, spec: VariantSpec, player: ClipPlayer, source_wh: tuple[int, int], collect: bool
) -> tuple[StageTimes, Collected, dict[str, Any], dict[str, Any]]:
    import supervision as sv

    from rsu.perception.homography import Homography

    site, camera, detector = _variant_detector(plan, spec, source_wh)
    homography = Homography.from_points(camera.calibration)
    tracker = _library_tracker(spec.library_tracker, _clip_fps(plan.clips[0]))
    counter = GroundLineCrossings(site)
    scale_back = _scale_back(source_wh, plan.resize_wh)
    times = StageTimes()
    collected = Collected()
    info: dict[str, Any] = {
        "detector": _describe_detector(detector, camera.detector),
        "tracker": f"trackers {spec.library_tracker} (library defaults, frame rate of the clip)",
    }
    last_ids: list[int] = []

    def process(frame: PlayedFrame) -> None:
        started = time.perf_counter()
        detections = detector.detect(frame.image, frame.capture_time_s)
        times.add("detect", time.perf_counter() - started)
        started = time.perf_counter()
        boxes = detections.boxes_px if detections.boxes_px is not None else np.zeros((0, 4))
        class_ids = np.array([ROAD_USER_CLASSES.index(u) for u in detections.road_user], dtype=int)
        tracked = tracker.update(
            sv.Detections(xyxy=boxes.reshape(-1, 4), confidence=detections.confidence, class_id=class_ids),
            timestamp=frame.capture_time_s,
        )
        times.add("track", time.perf_counter() - started)
        started = time.perf_counter()
        ids = np.asarray(tracked.tracker_id if tracked.tracker_id is not None else [], dtype=np.int64)
        keep = ids >= 0  # -1: a detection the library did not assign to a track
        xyxy = np.asarray(tracked.xyxy, dtype=np.float64).reshape(-1, 4)[keep]
        ids = ids[keep]
        tracked_classes = np.asarray(tracked.class_id if tracked.class_id is not None else [], dtype=int)[keep]
        users = [ROAD_USER_CLASSES[int(c)] for c in tracked_classes]
        counter.count_boxes(homography, xyxy, ids, users, frame.capture_time_s)
        times.add("zones", time.perf_counter() - started)
        if collect:
            if frame.capture_time_s <= TRUNCATION_WINDOW_S:
                collected.truncated_track_ids.update(int(i) for i in ids)
            last_ids[:] = [int(i) for i in ids]
            key = (frame.clip_index, frame.frame_in_clip)
            collected.detections[key] = FrameDetections(boxes * scale_back, detections.road_user, detections.confidence)
            collected.tracks[key] = TrackedBoxes(xyxy * scale_back, ids)

    def finish() -> None:
        collected.crossings = list(counter.crossings)
        collected.truncated_track_ids.update(last_ids)
        info["counts"] = _count_table(collected.crossings)

    return _loop(player, process, times, collected, info, finish)
