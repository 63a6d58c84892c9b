"""Accuracy of the camera pipeline against hand-made ground truth.

Counting (OpenTrafficCam `*.otgtevents.json`): each ground-truth `section-enter` event is one road
user crossing one counting line at one frame. Predicted crossings are matched to them one to one,
same line, within a time tolerance: the pipeline places a road user at its box's bottom centre on
the ground, OTC's labels use the box centre in the image, so the two see a crossing at slightly
different moments. Matching is done road user by road user first (each ground-truth road user to
the track sharing most of its crossings), then the crossings left over by time alone: two cars
crossing one line in opposite directions a fraction of a second apart are not swapped that way.
Results per line: ground truth, predicted, matched, matched with an acceptable class, missed,
phantom (predicted but unmatched). A movement is a road user's first and last line (enter A, later
leave over B); a ground-truth movement is found when one track's first and last crossings are
matched to that road user's first and last events.

Unmatched crossings that the ground truth cannot judge are listed as unscored, with the reason,
instead of phantom: classes it does not label (OTC's test file labels no pedestrians), and, when it
labels only complete movements (every road user has two or more events), crossings of tracks cut by
the start or the end of the clip.

Detection (MOTChallenge `gt.txt`, JamCam): per frame, detections sorted by confidence are matched
greedily to the unmatched ground-truth box of highest IoU >= 0.5 (the PASCAL VOC rule). Recall is
given per ground-truth class, both "found as a vehicle" and "found with the right class"; precision
over all vehicle detections (the clips label vehicles only: pedestrians and cyclists are ignored,
and unlabelled far-away vehicles count against precision). Tracking: MOTA, IDF1 and friends from
motmetrics, with the same IoU 0.5 gate.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from rsu_contracts.enums import VEHICLE_TYPES, RoadUserType

FloatArray = npt.NDArray[np.float64]

DEFAULT_TIME_TOLERANCE_S = 2.0
IOU_THRESHOLD = 0.5

# OpenTrafficCam road-user types -> the detector classes that count as right. A delivery van is a
# "car" or a "truck" to a COCO detector, both are accepted.
OTC_TYPE_TO_ROAD_USERS: Mapping[str, frozenset[RoadUserType]] = {
    "car": frozenset({RoadUserType.CAR}),
    "delivery_van": frozenset({RoadUserType.CAR, RoadUserType.TRUCK}),
    "truck": frozenset({RoadUserType.TRUCK}),
    "truck_with_trailer": frozenset({RoadUserType.TRUCK}),
    "truck_with_semitrailer": frozenset({RoadUserType.TRUCK}),
    "bus": frozenset({RoadUserType.BUS}),
    "motorcyclist": frozenset({RoadUserType.MOTORCYCLE}),
    "bicyclist": frozenset({RoadUserType.BICYCLE}),
    "cargo_bike_driver": frozenset({RoadUserType.BICYCLE}),
    "pedestrian": frozenset({RoadUserType.PEDESTRIAN}),
}

# MOTChallenge class ids of the JamCam annotations -> name, and the detector classes that are right.
MOT_CLASS_NAMES: Mapping[int, str] = {0: "undefined", 1: "car", 2: "truck", 3: "bus", 4: "motorbike", 5: "van"}
MOT_CLASS_TO_ROAD_USERS: Mapping[int, frozenset[RoadUserType]] = {
    0: frozenset(VEHICLE_TYPES),
    1: frozenset({RoadUserType.CAR}),
    2: frozenset({RoadUserType.TRUCK}),
    3: frozenset({RoadUserType.BUS}),
    4: frozenset({RoadUserType.MOTORCYCLE}),
    5: frozenset({RoadUserType.CAR, RoadUserType.TRUCK}),
}


# -- counting ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TruthCrossing:
    line_id: str
    time_s: float  # seconds from the start of the evaluated stream
    road_user_id: str
    label: str  # the ground truth's own type name
    accepted: frozenset[RoadUserType]  # detector classes that count as the right class


@dataclass(frozen=True)
class PredictedCrossing:
    line_id: str
    time_s: float
    track_id: int
    road_user: RoadUserType


@dataclass(frozen=True)
class LineScore:
    line_id: str
    truth: int
    predicted: int
    matched: int
    matched_right_class: int
    missed: int
    phantom: int
    # Unmatched predictions by class (pedestrians show up here: OTC labels no pedestrians).
    phantom_by_class: dict[str, int] = field(default_factory=dict)

    @property
    def count_error(self) -> int:
        return self.predicted - self.truth


@dataclass(frozen=True)
class MovementScore:
    from_line: str
    to_line: str
    truth: int
    predicted: int
    found: int  # ground-truth movements reproduced by one track, both ends matched
    found_right_class: int


@dataclass(frozen=True)
class UnscoredCrossing:
    crossing: PredictedCrossing
    reason: str


@dataclass(frozen=True)
class CountingScore:
    lines: list[LineScore]
    movements: list[MovementScore]
    truth_total: int
    predicted_total: int
    matched_total: int
    matched_right_class_total: int
    phantom_total: int
    time_tolerance_s: float
    missed_events: list[TruthCrossing]
    phantom_events: list[PredictedCrossing]
    # Every predicted crossing with the ground-truth road user it was matched to (None: not matched).
    predicted_events: list[tuple[PredictedCrossing, str | None]]
    unscored_events: list[UnscoredCrossing]

    @property
    def all_found_right_class_no_phantoms(self) -> bool:
        return self.matched_right_class_total == self.truth_total and self.phantom_total == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "time_tolerance_s": self.time_tolerance_s,
            "truth_total": self.truth_total,
            "predicted_total": self.predicted_total,
            "matched_total": self.matched_total,
            "matched_right_class_total": self.matched_right_class_total,
            "phantom_total": self.phantom_total,
            "unscored_total": len(self.unscored_events),
            "all_found_right_class_no_phantoms": self.all_found_right_class_no_phantoms,
            "lines": [
                {
                    "line_id": s.line_id,
                    "truth": s.truth,
                    "predicted": s.predicted,
                    "matched": s.matched,
                    "matched_right_class": s.matched_right_class,
                    "missed": s.missed,
                    "phantom": s.phantom,
                    "phantom_by_class": s.phantom_by_class,
                    "count_error": s.count_error,
                }
                for s in self.lines
            ],
            "movements": [
                {
                    "from_line": m.from_line,
                    "to_line": m.to_line,
                    "truth": m.truth,
                    "predicted": m.predicted,
                    "found": m.found,
                    "found_right_class": m.found_right_class,
                }
                for m in self.movements
            ],
            "missed_events": [
                {"line_id": e.line_id, "time_s": round(e.time_s, 3), "road_user_id": e.road_user_id, "label": e.label}
                for e in self.missed_events
            ],
            "phantom_events": [
                {"line_id": e.line_id, "time_s": round(e.time_s, 3), "track_id": e.track_id, "class": e.road_user.value}
                for e in self.phantom_events
            ],
            "unscored_events": [
                {
                    "line_id": u.crossing.line_id,
                    "time_s": round(u.crossing.time_s, 3),
                    "track_id": u.crossing.track_id,
                    "class": u.crossing.road_user.value,
                    "reason": u.reason,
                }
                for u in self.unscored_events
            ],
            "predicted_events": [
                {
                    "line_id": e.line_id,
                    "time_s": round(e.time_s, 3),
                    "track_id": e.track_id,
                    "class": e.road_user.value,
                    "matched_road_user_id": road_user_id,
                }
                for e, road_user_id in self.predicted_events
            ],
        }


def load_otc_events(
    path: Path,
    clip_start_s: Mapping[str, float],
    fps: float,
    section_to_line: Mapping[str, str] | None = None,
    line_ids: Iterable[str] = (),
) -> list[TruthCrossing]:
    """Ground-truth crossings from an OpenTrafficCam event file.

    clip_start_s: video file name -> time of its first frame in the evaluated stream (clips played
    back to back); events of other videos are left out. section_to_line: OTC section id -> counting
    line id; by default a section maps to the line whose id is its name in lower case (South -> south),
    which must be one of line_ids when those are given.
    """
    document = json.loads(path.read_text(encoding="utf-8"))
    sections = {str(s["id"]): str(s.get("name", s["id"])) for s in document.get("sections", [])}
    known_lines = set(line_ids)
    mapping = dict(section_to_line) if section_to_line is not None else {}
    if section_to_line is None:
        for section_id, name in sections.items():
            mapping[section_id] = name.lower()
    if known_lines:
        unknown = {line for line in mapping.values() if line not in known_lines}
        if unknown:
            raise ValueError(
                f"{path}: sections map to lines {sorted(unknown)} that the site does not have "
                f"(site lines: {sorted(known_lines)}); give the mapping explicitly"
            )
    crossings: list[TruthCrossing] = []
    for event in document["event_list"]:
        if event.get("event_type") != "section-enter":
            continue
        video = Path(str(event["video_name"])).name
        if video not in clip_start_s:
            continue
        section_id = str(event["section_id"])
        if section_id not in mapping:
            raise ValueError(f"{path}: event on section {section_id}, which has no counting line")
        label = str(event["road_user_type"])
        if label not in OTC_TYPE_TO_ROAD_USERS:
            raise ValueError(f"{path}: unknown OpenTrafficCam road user type {label!r}")
        crossings.append(
            TruthCrossing(
                line_id=mapping[section_id],
                time_s=clip_start_s[video] + int(event["frame_number"]) / fps,
                road_user_id=str(event["road_user_id"]),
                label=label,
                accepted=OTC_TYPE_TO_ROAD_USERS[label],
            )
        )
    crossings.sort(key=lambda c: c.time_s)
    return crossings


_NO_PAIR = 1.0e6


def _pair_cost(t: TruthCrossing, p: PredictedCrossing, tolerance_s: float) -> float:
    """|dt| for a possible pair, plus a small penalty for a wrong class (so a car and a bicycle crossing
    together are not swapped); _NO_PAIR if they cannot pair."""
    dt = abs(t.time_s - p.time_s)
    if t.line_id != p.line_id or dt > tolerance_s:
        return _NO_PAIR
    return dt + (0.0 if p.road_user in t.accepted else tolerance_s / 4)


def _match_by_time(
    truth: Sequence[TruthCrossing],
    predicted: Sequence[PredictedCrossing],
    truth_indices: Sequence[int],
    predicted_indices: Sequence[int],
    tolerance_s: float,
) -> list[tuple[int, int]]:
    """One-to-one pairs (truth index, predicted index) among the given ones, least total cost."""
    if not truth_indices or not predicted_indices:
        return []
    cost = np.array(
        [[_pair_cost(truth[i], predicted[j], tolerance_s) for j in predicted_indices] for i in truth_indices]
    )
    rows, cols = linear_sum_assignment(cost)
    return [(truth_indices[r], predicted_indices[c]) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _NO_PAIR]


def _match_crossings(
    truth: Sequence[TruthCrossing], predicted: Sequence[PredictedCrossing], tolerance_s: float
) -> list[tuple[int, int]]:
    """Road users to tracks first (most shared crossings, then least |dt|), then the rest by time."""
    users: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(truth):
        users[t.road_user_id].append(i)
    tracks: dict[int, list[int]] = defaultdict(list)
    for j, p in enumerate(predicted):
        tracks[p.track_id].append(j)
    user_ids, track_ids = list(users), list(tracks)
    pairs: list[tuple[int, int]] = []
    if user_ids and track_ids:
        candidate: dict[tuple[int, int], list[tuple[int, int]]] = {}
        score = np.zeros((len(user_ids), len(track_ids)))
        for u, user in enumerate(user_ids):
            for k, track in enumerate(track_ids):
                shared = _match_by_time(truth, predicted, users[user], tracks[track], tolerance_s)
                if shared:
                    candidate[(u, k)] = shared
                    cost = sum(_pair_cost(truth[i], predicted[j], tolerance_s) for i, j in shared)
                    # More shared crossings always win; among equals the closer in time.
                    score[u, k] = len(shared) * 1000.0 - cost
        rows, cols = linear_sum_assignment(-score)
        for u, k in zip(rows, cols, strict=True):
            pairs.extend(candidate.get((int(u), int(k)), []))
    matched_truth = {i for i, _ in pairs}
    matched_predicted = {j for _, j in pairs}
    pairs.extend(
        _match_by_time(
            truth,
            predicted,
            [i for i in range(len(truth)) if i not in matched_truth],
            [j for j in range(len(predicted)) if j not in matched_predicted],
            tolerance_s,
        )
    )
    return pairs


UNLABELLED_CLASS = "class not labelled in this ground truth"
TRUNCATED_TRACK = "track cut by the clip's start or end; the ground truth labels complete movements only"


def evaluate_counting(
    truth: Sequence[TruthCrossing],
    predicted: Sequence[PredictedCrossing],
    line_ids: Sequence[str],
    time_tolerance_s: float = DEFAULT_TIME_TOLERANCE_S,
    *,
    unscored_classes: Iterable[RoadUserType] = (),
    truncated_track_ids: Iterable[int] = (),
) -> CountingScore:
    """Match predicted crossings to the ground truth and score them; see the module docstring.

    unscored_classes: classes the ground truth does not label; their unmatched crossings are unscored.
    truncated_track_ids: tracks alive at the first or the last frame; their unmatched crossings are
    unscored when the ground truth holds only complete movements.
    """
    pairs = _match_crossings(truth, predicted, time_tolerance_s)
    truth_of_pred = {j: i for i, j in pairs}
    pred_of_truth = {i: j for i, j in pairs}
    unlabelled = frozenset(unscored_classes)
    events_per_user: dict[str, int] = defaultdict(int)
    for t in truth:
        events_per_user[t.road_user_id] += 1
    complete_movements_only = bool(events_per_user) and min(events_per_user.values()) >= 2
    truncated = frozenset(truncated_track_ids) if complete_movements_only else frozenset()
    unscored: dict[int, str] = {}
    for j, p in enumerate(predicted):
        if j in truth_of_pred:
            continue
        if p.road_user in unlabelled:
            unscored[j] = UNLABELLED_CLASS
        elif p.track_id in truncated:
            unscored[j] = TRUNCATED_TRACK
    lines: list[LineScore] = []
    for line_id in line_ids:
        truth_here = [i for i, t in enumerate(truth) if t.line_id == line_id]
        pred_here = [j for j, p in enumerate(predicted) if p.line_id == line_id and j not in unscored]
        matched = [i for i in truth_here if i in pred_of_truth]
        right = [i for i in matched if predicted[pred_of_truth[i]].road_user in truth[i].accepted]
        phantom_by_class: dict[str, int] = defaultdict(int)
        for j in pred_here:
            if j not in truth_of_pred:
                phantom_by_class[predicted[j].road_user.value] += 1
        lines.append(
            LineScore(
                line_id=line_id,
                truth=len(truth_here),
                predicted=len(pred_here),
                matched=len(matched),
                matched_right_class=len(right),
                missed=len(truth_here) - len(matched),
                phantom=len(pred_here) - len(matched),
                phantom_by_class=dict(sorted(phantom_by_class.items())),
            )
        )
    return CountingScore(
        lines=lines,
        movements=_movement_scores(truth, predicted, pred_of_truth, frozenset(unscored)),
        truth_total=len(truth),
        predicted_total=len(predicted) - len(unscored),
        matched_total=len(pairs),
        matched_right_class_total=sum(1 for i, j in pairs if predicted[j].road_user in truth[i].accepted),
        phantom_total=len(predicted) - len(pairs) - len(unscored),
        time_tolerance_s=time_tolerance_s,
        missed_events=[t for i, t in enumerate(truth) if i not in pred_of_truth],
        phantom_events=[p for j, p in enumerate(predicted) if j not in truth_of_pred and j not in unscored],
        predicted_events=[
            (p, truth[truth_of_pred[j]].road_user_id if j in truth_of_pred else None) for j, p in enumerate(predicted)
        ],
        unscored_events=[UnscoredCrossing(predicted[j], reason) for j, reason in sorted(unscored.items())],
    )


def _movements_of(items: Sequence[tuple[str, float] | None]) -> dict[str, tuple[int, int]]:
    """Per road user (key), the indices of its first and last crossing, for users with two or more.

    items: (road user, time) per crossing, None for crossings left out.
    """
    by_user: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for index, item in enumerate(items):
        if item is not None:
            by_user[item[0]].append((item[1], index))
    movements: dict[str, tuple[int, int]] = {}
    for user, crossings in by_user.items():
        if len(crossings) >= 2:
            crossings.sort()
            movements[user] = (crossings[0][1], crossings[-1][1])
    return movements


def _movement_scores(
    truth: Sequence[TruthCrossing],
    predicted: Sequence[PredictedCrossing],
    pred_of_truth: Mapping[int, int],
    left_out: frozenset[int],
) -> list[MovementScore]:
    truth_moves = _movements_of([(t.road_user_id, t.time_s) for t in truth])
    pred_moves = _movements_of(
        [None if j in left_out else (str(p.track_id), p.time_s) for j, p in enumerate(predicted)]
    )
    pred_move_of_ends = {ends: user for user, ends in pred_moves.items()}
    table: dict[tuple[str, str], dict[str, int]] = defaultdict(
        lambda: {"truth": 0, "predicted": 0, "found": 0, "found_right_class": 0}
    )
    for first, last in truth_moves.values():
        key = (truth[first].line_id, truth[last].line_id)
        table[key]["truth"] += 1
        ends = (pred_of_truth.get(first), pred_of_truth.get(last))
        if ends[0] is not None and ends[1] is not None and (ends[0], ends[1]) in pred_move_of_ends:
            table[key]["found"] += 1
            if predicted[ends[1]].road_user in truth[last].accepted:
                table[key]["found_right_class"] += 1
    for first, last in pred_moves.values():
        table[(predicted[first].line_id, predicted[last].line_id)]["predicted"] += 1
    return [MovementScore(from_line=a, to_line=b, **counts) for (a, b), counts in sorted(table.items())]


# -- detection and tracking ------------------------------------------------------------------------


@dataclass(frozen=True)
class TruthBoxes:
    """One frame's ground-truth boxes: x1 y1 x2 y2, MOTChallenge class ids and track ids."""

    boxes_px: FloatArray  # (N, 4)
    class_ids: npt.NDArray[np.int64]
    track_ids: npt.NDArray[np.int64]


def load_mot_ground_truth(path: Path) -> dict[int, TruthBoxes]:
    """MOTChallenge gt.txt by 1-based frame number: frame, id, x, y, w, h, conf, class, visibility.

    Rows with conf 0 are "ignore" rows in MOTChallenge and are left out.
    """
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    if rows.size == 0:
        return {}
    if rows.shape[1] < 8:
        raise ValueError(f"{path}: expected at least 8 columns (frame,id,x,y,w,h,conf,class), got {rows.shape[1]}")
    rows = rows[rows[:, 6] != 0]
    by_frame: dict[int, TruthBoxes] = {}
    for frame in np.unique(rows[:, 0]).astype(int):
        here = rows[rows[:, 0] == frame]
        x, y, w, h = here[:, 2], here[:, 3], here[:, 4], here[:, 5]
        by_frame[int(frame)] = TruthBoxes(
            boxes_px=np.column_stack((x, y, x + w, y + h)),
            class_ids=here[:, 7].astype(np.int64),
            track_ids=here[:, 1].astype(np.int64),
        )
    return by_frame


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """IoU of every box in a (N, 4) with every box in b (M, 4), boxes x1 y1 x2 y2."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    intersection = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1.0), 0.0)


@dataclass(frozen=True)
class FrameDetections:
    """One frame's detections in image pixels."""

    boxes_px: FloatArray  # (N, 4) x1 y1 x2 y2
    road_user: tuple[RoadUserType, ...]
    confidence: FloatArray  # (N,)


@dataclass
class ClassRecall:
    truth: int = 0
    found: int = 0  # matched by any vehicle detection
    found_right_class: int = 0

    @property
    def recall(self) -> float:
        return self.found / self.truth if self.truth else math.nan

    @property
    def recall_right_class(self) -> float:
        return self.found_right_class / self.truth if self.truth else math.nan


@dataclass(frozen=True)
class DetectionScore:
    per_class: dict[str, ClassRecall]
    vehicle_detections: int
    true_positives: int
    frames: int
    iou_threshold: float

    @property
    def truth_total(self) -> int:
        return sum(c.truth for c in self.per_class.values())

    @property
    def recall(self) -> float:
        total = self.truth_total
        return sum(c.found for c in self.per_class.values()) / total if total else math.nan

    @property
    def precision(self) -> float:
        return self.true_positives / self.vehicle_detections if self.vehicle_detections else math.nan

    @property
    def f1(self) -> float:
        """Detection F1 at the operating point: the ceiling of IDF1 given these boxes."""
        recall, precision = self.recall, self.precision
        if not (math.isfinite(recall) and math.isfinite(precision)) or recall + precision == 0:
            return math.nan
        return 2 * recall * precision / (recall + precision)

    def as_dict(self) -> dict[str, Any]:
        return {
            "iou_threshold": self.iou_threshold,
            "frames": self.frames,
            "truth_boxes": self.truth_total,
            "vehicle_detections": self.vehicle_detections,
            "recall": _finite(self.recall),
            "precision": _finite(self.precision),
            "f1": _finite(self.f1),
            "per_class": {
                name: {
                    "truth": c.truth,
                    "found": c.found,
                    "found_right_class": c.found_right_class,
                    "recall": _finite(c.recall),
                    "recall_right_class": _finite(c.recall_right_class),
                }
                for name, c in self.per_class.items()
            },
        }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def evaluate_detections(
    truth: Mapping[int, TruthBoxes],
    detections: Mapping[int, FrameDetections],
    iou_threshold: float = IOU_THRESHOLD,
) -> DetectionScore:
    """Vehicle detection recall per ground-truth class and precision; see the module docstring.

    Frames are those in `detections` (frames not processed are not held against the detector).
    """
    per_class: dict[str, ClassRecall] = {}
    vehicle_detections = 0
    true_positives = 0
    for frame, found in detections.items():
        vehicles = np.array([user in VEHICLE_TYPES for user in found.road_user], dtype=bool)
        boxes = found.boxes_px[vehicles] if len(vehicles) else np.zeros((0, 4))
        classes = [user for user, keep in zip(found.road_user, vehicles, strict=True) if keep]
        confidence = found.confidence[vehicles] if len(vehicles) else np.zeros(0)
        vehicle_detections += len(boxes)
        frame_truth = truth.get(frame)
        if frame_truth is None:
            continue
        for class_id in frame_truth.class_ids:
            per_class.setdefault(MOT_CLASS_NAMES.get(int(class_id), str(class_id)), ClassRecall()).truth += 1
        overlaps = iou_matrix(boxes, frame_truth.boxes_px)
        taken = np.zeros(len(frame_truth.class_ids), dtype=bool)
        for d in np.argsort(-confidence, kind="stable"):
            if overlaps.shape[1] == 0:
                break
            candidates = np.where(taken, -1.0, overlaps[d])
            g = int(np.argmax(candidates))
            if candidates[g] < iou_threshold:
                continue
            taken[g] = True
            true_positives += 1
            class_id = int(frame_truth.class_ids[g])
            score = per_class[MOT_CLASS_NAMES.get(class_id, str(class_id))]
            score.found += 1
            if classes[d] in MOT_CLASS_TO_ROAD_USERS.get(class_id, frozenset()):
                score.found_right_class += 1
    return DetectionScore(
        per_class=dict(sorted(per_class.items())),
        vehicle_detections=vehicle_detections,
        true_positives=true_positives,
        frames=len(detections),
        iou_threshold=iou_threshold,
    )


@dataclass(frozen=True)
class TrackedBoxes:
    """One frame's tracker output in image pixels."""

    boxes_px: FloatArray  # (N, 4)
    track_ids: npt.NDArray[np.int64]


@dataclass(frozen=True)
class TrackingScore:
    mota: float
    idf1: float
    motp_iou: float  # mean IoU of the matched pairs
    id_switches: int
    false_positives: int
    misses: int
    truth_objects: int
    frames: int
    # Distinct track ids the tracker output over the frames, and distinct ground-truth ids in them.
    distinct_tracks: int = 0
    truth_tracks: int = 0
    # HOTA and its detection / association parts (TrackEval's definition, roboflow `trackers`'
    # port); None where that library is not installed.
    hota: float | None = None
    deta: float | None = None
    assa: float | None = None

    @property
    def box_f1(self) -> float:
        """F1 of the tracked boxes as detections (matched at the IoU threshold): IDF1's ceiling."""
        found = self.truth_objects - self.misses
        output = found + self.false_positives
        if self.truth_objects == 0 or output == 0 or found == 0:
            return math.nan
        recall, precision = found / self.truth_objects, found / output
        return 2 * recall * precision / (recall + precision)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mota": _finite(self.mota),
            "idf1": _finite(self.idf1),
            "hota": None if self.hota is None else _finite(self.hota),
            "deta": None if self.deta is None else _finite(self.deta),
            "assa": None if self.assa is None else _finite(self.assa),
            "motp_iou": _finite(self.motp_iou),
            "id_switches": self.id_switches,
            "false_positives": self.false_positives,
            "misses": self.misses,
            "truth_objects": self.truth_objects,
            "frames": self.frames,
            "distinct_tracks": self.distinct_tracks,
            "truth_tracks": self.truth_tracks,
            "box_f1": _finite(self.box_f1),
        }


def evaluate_tracking(
    truth: Mapping[int, TruthBoxes], tracks: Mapping[int, TrackedBoxes], iou_threshold: float = IOU_THRESHOLD
) -> TrackingScore:
    """CLEAR MOT and identity metrics (motmetrics) over the frames in `tracks`."""
    import motmetrics

    accumulator = motmetrics.MOTAccumulator(auto_id=True)
    empty = TruthBoxes(np.zeros((0, 4)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    for frame in sorted(tracks):
        frame_truth = truth.get(frame, empty)
        hypotheses = tracks[frame]
        # motmetrics' own iou_matrix uses np.asfarray, gone in NumPy 2: distances are computed here.
        distance = 1.0 - iou_matrix(frame_truth.boxes_px, hypotheses.boxes_px)
        distance[distance > 1.0 - iou_threshold] = np.nan
        accumulator.update(frame_truth.track_ids.tolist(), hypotheses.track_ids.tolist(), distance)
    metrics = motmetrics.metrics.create()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecation chatter from motmetrics 1.4
        summary = metrics.compute(
            accumulator,
            metrics=["mota", "idf1", "motp", "num_switches", "num_false_positives", "num_misses", "num_objects"],
            name="all",
        )
    row = summary.loc["all"]
    motp_distance = float(row["motp"])
    hota = _hota(truth, tracks, empty)
    frames_truth = [truth.get(frame, empty).track_ids for frame in tracks]
    return TrackingScore(
        mota=float(row["mota"]),
        idf1=float(row["idf1"]),
        motp_iou=1.0 - motp_distance if math.isfinite(motp_distance) else math.nan,
        id_switches=int(row["num_switches"]),
        false_positives=int(row["num_false_positives"]),
        misses=int(row["num_misses"]),
        truth_objects=int(row["num_objects"]),
        frames=len(tracks),
        distinct_tracks=len({int(i) for frame in tracks.values() for i in frame.track_ids}),
        truth_tracks=len({int(i) for ids in frames_truth for i in ids}),
        hota=None if hota is None else float(hota["HOTA"]),
        deta=None if hota is None else float(hota["DetA"]),
        assa=None if hota is None else float(hota["AssA"]),
    )


def _hota(
    truth: Mapping[int, TruthBoxes], tracks: Mapping[int, TrackedBoxes], empty: TruthBoxes
) -> dict[str, Any] | None:
    """HOTA over the frames in `tracks` with IoU similarity, or None without the `trackers` library."""
    try:
        from trackers.eval.hota import compute_hota_metrics
    except ImportError:
        return None
    frames = sorted(tracks)
    truth_ids, tracker_ids, similarity = [], [], []
    for frame in frames:
        frame_truth = truth.get(frame, empty)
        truth_ids.append(frame_truth.track_ids.astype(np.int64))
        tracker_ids.append(tracks[frame].track_ids.astype(np.int64))
        similarity.append(iou_matrix(frame_truth.boxes_px, tracks[frame].boxes_px))
    result: dict[str, Any] = compute_hota_metrics(truth_ids, tracker_ids, similarity)
    return result
