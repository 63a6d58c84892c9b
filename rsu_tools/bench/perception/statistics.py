"""What a run measured and how well it did: bounded latency samples and their percentiles, process CPU
and memory, per-line counts, and accuracy against ground truth (counting, detection, MOT)."""

from __future__ import annotations

import math
import os
import resource
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from rsu_contracts.config import load_site_config
from rsu_tools.bench.perception.plan import BenchError, BenchPlan, FloatArray, _clip_fps
from rsu_tools.evaluation import (
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

# Latency samples kept per stage (a random sample beyond this: see Reservoir).
RESERVOIR_SIZE = 10_000
# A track seen this soon after the first frame may have begun its movement before the clip did.
TRUNCATION_WINDOW_S = 0.5
CLIP_TRACK_ID_STRIDE = 1_000_000


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


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Collected:
    """What a variant saw, for the accuracy evaluation (kept only when ground truth is given)."""

    detections: dict[tuple[int, int], FrameDetections] = field(default_factory=dict)
    tracks: dict[tuple[int, int], TrackedBoxes] = field(default_factory=dict)
    crossings: list[PredictedCrossing] = field(default_factory=list)
    # Tracks alive in the first TRUNCATION_WINDOW_S of the clips or at their last frame.
    truncated_track_ids: set[int] = field(default_factory=set)


def _count_table(crossings: Sequence[PredictedCrossing]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for crossing in crossings:
        table[crossing.line_id][crossing.road_user.value] += 1
    return {line: dict(sorted(classes.items())) for line, classes in sorted(table.items())}


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
