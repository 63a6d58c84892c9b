"""Multi-object tracker: image-space association, ground-plane state (metres), ByteTrack-style stages.

With image boxes (a real camera), tracks are matched to detections in the image (rsu.perception.
association: IoU against each track's predicted box, scale-aware by construction) in three stages:
confident detections against every track, weak detections against the confirmed tracks left, then
OC-SORT's observation-centric recovery (a track's last real box against the confident detections
still left, for a road user that re-appears where it was hidden). A track re-found after a gap takes
its velocity from its last observation (OC-SORT's re-update), not from the drift of its prediction.
The ground-plane Kalman filter of each track is fed the matched detection's ground point and gives
speed, heading, acceleration, lanes and the lookahead, as before; it never vetoes a match.

Without boxes (the simulated camera gives ground positions only), association is on the ground:
each frame: predict every track to the capture time, match high-confidence detections to all
tracks, then low-confidence detections to the confirmed tracks still unmatched, within a stricter
gate (they keep a track alive through a partial occlusion but never start or confirm one), and
start tentative tracks from the high-confidence detections left over. Association cost is the distance between a track's
predicted position and a detection, gated per track, solved with the Hungarian method.

Every timeout is in seconds of capture time, never in frames, and the number of tracks is bounded.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from rsu.perception.association import BoxKalman, associate_iou
from rsu.perception.detections import Detections
from rsu.perception.kalman import (
    PEDESTRIAN_NOISE,
    TWO_WHEELER_NOISE,
    VEHICLE_NOISE,
    ConstantVelocityKalman,
    MotionNoise,
)
from rsu_contracts.config.model import TrackingConfig
from rsu_contracts.enums import RoadUserType

# Detections at or above this confidence may start tracks (ByteTrack's first stage).
HIGH_CONFIDENCE = 0.5
# A weak detection continues a confirmed track only this close to its prediction (a share of the
# track's gate): ByteTrack's second association is the stricter one (IoU 0.5 against 0.2 in the first).
# A weak, partly hidden road user must not pull a coasting neighbour's track over to itself. Measured
# on the JamCam clips (INT8): 1.0 -> 0.75 cut false positives 862 -> 696 at the same MOTA (0.31) and
# IDF1 0.31 -> 0.28; 0.5 gave MOTA 0.34 but IDF1 0.26.
LOW_CONFIDENCE_GATE_FACTOR = 0.75
# A tentative track is most likely clutter: it is dropped after this long without a detection.
TENTATIVE_MAX_COAST_S = 0.25
# Heading follows the velocity only while a track is moving. A standing road user's velocity is
# noise of a few tenths of a m/s, so "moving" has hysteresis: it ends below the stop speed, and it
# starts only above the start speed, with that speed significant against the filter's own velocity
# uncertainty (a new track's first velocity is mostly noise), once the track has left the spot it
# rests on (its position averaged over _REST_SPOT_TIME_CONSTANT_S). Meanwhile the last heading is
# kept. Near the stop speed the direction is still noisy, so the heading turns only part of the way
# towards it, all the way from the full speed on. Values per group: vehicles, two-wheelers, pedestrians.
_HEADING_STOP_SPEED_MPS = {0: 0.5, 1: 0.5, 2: 0.3}
_HEADING_START_SPEED_MPS = {0: 1.0, 1: 1.0, 2: 0.5}
_HEADING_FULL_SPEED_MPS = {0: 2.5, 1: 2.0, 2: 1.0}
_HEADING_START_TRAVEL_M = {0: 1.0, 1: 1.0, 2: 0.5}
_HEADING_START_SIGNIFICANCE = 1.5  # standard deviations
_REST_SPOT_TIME_CONSTANT_S = 1.0
# Class votes remembered per track (a long-lived track must not keep an unbounded history).
CLASS_HISTORY_LENGTH = 30
# The gate grows by this many standard deviations of the position uncertainty added since the
# last detection (coasting, or the unknown velocity of a new track) ...
GATE_GROWTH_SIGMAS = 2.0
# ... up to this multiple of the configured gate.
MAX_GATE_FACTOR = 2.5
# A moving road user keeps its path far better than its speed, so for the gate (not the cost) a
# sideways offset from a track moving faster than GATE_PATH_MIN_SPEED_MPS counts this many times.
# It keeps a coasting car from snapping onto a newcomer in a crossing lane.
GATE_SIDEWAYS_WEIGHT = 2.0
GATE_PATH_MIN_SPEED_MPS = 2.0
# Extra cost for tentative tracks, so that a confirmed track wins a detection both could take.
TENTATIVE_COST_PENALTY_M = 0.5
# The velocity of a new track settles after a few detections; acceleration is estimated after that.
ACCELERATION_AFTER_HITS = 3
_UNASSIGNABLE = 1.0e6

# Image-space association (tuned on JamCam 2019-06-28_13-02-35 only; 2019-07-02_09-01-45 is held out).
# A confident detection: it may start a track and is matched first (ByteTrack's track_high_thresh,
# 0.25 there; on the tuning clip 0.25 / 0.35 / 0.4 / 0.5 gave ID switches 36 / 9 / 6 / 0 and IDF1
# 0.66 / 0.75 / 0.74 / 0.66, distinct tracks 40 / 24 / 22 / 14 against 23 in the ground truth).
# The detector must pass weaker detections (down to 0.1) for the second stage to see them.
IMAGE_HIGH_CONFIDENCE = 0.4
# Lowest IoU between a track's predicted box and a confident detection for a match (stage 1) ...
IMAGE_MIN_IOU = 0.2
# ... with a weak detection, for a confirmed track (stage 2; ByteTrack's second association: 0.5) ...
IMAGE_LOW_MIN_IOU = 0.5
# ... and between a track's last real box and a confident detection left over (stage 3, OC-SORT's OCR).
IMAGE_RECOVERY_MIN_IOU = 0.3
# Cost added to tentative tracks, so a confirmed track wins a detection both overlap.
IMAGE_TENTATIVE_PENALTY = 0.05

# Nominal footprint (length, width) in metres, for zone occupancy and the published objects.
NOMINAL_SIZE_M: dict[RoadUserType, tuple[float, float]] = {
    RoadUserType.CAR: (4.5, 1.8),
    RoadUserType.TRUCK: (10.0, 2.5),
    RoadUserType.BUS: (12.0, 2.55),
    RoadUserType.MOTORCYCLE: (2.2, 0.8),
    RoadUserType.BICYCLE: (1.8, 0.6),
    RoadUserType.PEDESTRIAN: (0.6, 0.6),
}

# Classes a detector confuses with each other may continue the same track: YOLO swaps car, truck
# and bus, and motorcycle and bicycle; a pedestrian never continues a vehicle's track.
ASSOCIATION_GROUP: dict[RoadUserType, int] = {
    RoadUserType.CAR: 0,
    RoadUserType.TRUCK: 0,
    RoadUserType.BUS: 0,
    RoadUserType.MOTORCYCLE: 1,
    RoadUserType.BICYCLE: 1,
    RoadUserType.PEDESTRIAN: 2,
}
_GROUP_NOISE: dict[int, MotionNoise] = {0: VEHICLE_NOISE, 1: TWO_WHEELER_NOISE, 2: PEDESTRIAN_NOISE}


def association_group(road_user: RoadUserType) -> int:
    """The group of classes that may continue one track (vehicles, two-wheelers, pedestrians)."""
    return ASSOCIATION_GROUP[RoadUserType(road_user)]


IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Track:
    """A snapshot of one live track at the time of the last update."""

    track_id: int
    road_user: RoadUserType
    x_m: float
    y_m: float
    vx_mps: float
    vy_mps: float
    speed_mps: float
    heading_deg: float  # direction of travel, 0 = north, clockwise, in [0, 360); kept while stopped
    heading_known: bool  # False until the track has moved (heading_deg is then only a placeholder)
    acceleration_mps2: float
    hits: int
    confirmed: bool
    first_seen_s: float
    last_seen_s: float
    age_s: float
    coasting_s: float  # time since the last associated detection (0 when detected this frame)
    # Image box x1 y1 x2 y2 in the detector's pixels: the detection's when detected this frame, else the
    # track's predicted box (box_predicted); None for tracks from ground-only detections.
    box_px: tuple[float, float, float, float] | None = None
    box_predicted: bool = False

    @property
    def length_m(self) -> float:
        return NOMINAL_SIZE_M[self.road_user][0]

    @property
    def width_m(self) -> float:
        return NOMINAL_SIZE_M[self.road_user][1]


def heading_from_velocity(vx_mps: float, vy_mps: float) -> float:
    """Compass heading of a velocity: 0 = north, 90 = east, in [0, 360)."""
    heading = math.degrees(math.atan2(vx_mps, vy_mps)) % 360.0
    # A tiny negative angle rounds to exactly 360.0 under the modulo.
    return 0.0 if heading >= 360.0 else heading


class _TrackState:
    __slots__ = (
        "box",
        "class_counts",
        "class_history",
        "confirmed",
        "early_boxes",
        "first_seen_s",
        "group",
        "heading_deg",
        "heading_known",
        "hits",
        "kalman",
        "last_box",
        "last_seen_s",
        "missed",
        "moving",
        "posterior_pos_var",
        "rest_time_s",
        "rest_x",
        "rest_y",
        "road_user",
        "track_id",
    )

    def __init__(
        self,
        track_id: int,
        x_m: float,
        y_m: float,
        road_user: RoadUserType,
        time_s: float,
        box_px: npt.NDArray[np.float64] | None = None,
    ) -> None:
        self.track_id = track_id
        # Image state: the box filter, the last real (detected) box, and the boxes of a tentative track,
        # shown once it confirms (its first hits); missed: no detection at the last update.
        self.box = BoxKalman(box_px, time_s) if box_px is not None else None
        self.last_box = None if box_px is None else np.asarray(box_px, dtype=np.float64).copy()
        self.early_boxes: list[tuple[float, tuple[float, float, float, float]]] = (
            [] if box_px is None else [(time_s, _box_tuple(box_px))]
        )
        self.missed = False
        self.group = ASSOCIATION_GROUP[road_user]
        self.kalman = ConstantVelocityKalman(x_m, y_m, time_s, _GROUP_NOISE[self.group])
        self.posterior_pos_var = self.kalman.p_pos
        self.hits = 1
        self.confirmed = False
        self.first_seen_s = time_s
        self.last_seen_s = time_s
        self.heading_deg = 0.0
        self.heading_known = False
        self.moving = False
        self.rest_x = x_m
        self.rest_y = y_m
        self.rest_time_s = time_s
        self.class_history: deque[RoadUserType] = deque(maxlen=CLASS_HISTORY_LENGTH)
        self.class_counts: dict[RoadUserType, int] = {}
        self.road_user = road_user
        self.vote(road_user)

    def vote(self, road_user: RoadUserType) -> None:
        history = self.class_history
        if len(history) == history.maxlen:
            dropped = history[0]
            self.class_counts[dropped] -= 1
        history.append(road_user)
        self.class_counts[road_user] = self.class_counts.get(road_user, 0) + 1
        best = max(self.class_counts.values())
        # On a tie the latest vote wins if it is among the leaders; otherwise the label stays.
        if self.class_counts[road_user] == best:
            self.road_user = road_user
        elif self.class_counts.get(self.road_user, 0) != best:
            self.road_user = max(self.class_counts, key=self.class_counts.__getitem__)

    def update_heading(self) -> None:
        k = self.kalman
        speed = k.speed_mps
        stop_speed = _HEADING_STOP_SPEED_MPS[self.group]
        if self.moving:
            if speed < stop_speed:
                self.moving = False
                self.rest_x, self.rest_y, self.rest_time_s = k.x, k.y, k.time_s
                return
        elif (
            self.hits >= ACCELERATION_AFTER_HITS  # the velocity of a new track is still settling
            and speed >= _HEADING_START_SPEED_MPS[self.group]
            and speed * speed >= _HEADING_START_SIGNIFICANCE**2 * k.p_vel
            and math.hypot(k.x - self.rest_x, k.y - self.rest_y) >= _HEADING_START_TRAVEL_M[self.group]
        ):
            self.moving = True
        else:
            alpha = 1.0 - math.exp(-(k.time_s - self.rest_time_s) / _REST_SPOT_TIME_CONSTANT_S)
            self.rest_x += alpha * (k.x - self.rest_x)
            self.rest_y += alpha * (k.y - self.rest_y)
            self.rest_time_s = k.time_s
            return
        direction = heading_from_velocity(k.vx, k.vy)
        if not self.heading_known:
            self.heading_deg = direction
            self.heading_known = True
            return
        weight = min(1.0, (speed - stop_speed) / (_HEADING_FULL_SPEED_MPS[self.group] - stop_speed))
        turn = (direction - self.heading_deg + 180.0) % 360.0 - 180.0
        heading = (self.heading_deg + weight * turn) % 360.0
        self.heading_deg = 0.0 if heading >= 360.0 else heading

    def gate_m(self, base_gate_m: float) -> float:
        grown = self.kalman.p_pos - self.posterior_pos_var
        gate = base_gate_m + GATE_GROWTH_SIGMAS * math.sqrt(grown) if grown > 0 else base_gate_m
        return min(gate, MAX_GATE_FACTOR * base_gate_m)

    def snapshot(self, time_s: float) -> Track:
        k = self.kalman
        detected = self.last_seen_s == time_s
        box: tuple[float, float, float, float] | None = None
        if self.last_box is not None and detected:
            box = _box_tuple(self.last_box)
        elif self.box is not None:
            box = _box_tuple(self.box.box_px)
        return Track(
            track_id=self.track_id,
            road_user=self.road_user,
            x_m=k.x,
            y_m=k.y,
            vx_mps=k.vx,
            vy_mps=k.vy,
            speed_mps=k.speed_mps,
            heading_deg=self.heading_deg,
            heading_known=self.heading_known,
            acceleration_mps2=k.acceleration_mps2,
            hits=self.hits,
            confirmed=self.confirmed,
            first_seen_s=self.first_seen_s,
            last_seen_s=self.last_seen_s,
            age_s=time_s - self.first_seen_s,
            coasting_s=time_s - self.last_seen_s,
            box_px=box,
            box_predicted=box is not None and not detected,
        )


def _box_tuple(box: npt.NDArray[np.float64]) -> tuple[float, float, float, float]:
    return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


class GroundTracker:
    """Tracks road users from ground-plane detections; update() once per frame, in time order."""

    def __init__(self, config: TrackingConfig | None = None) -> None:
        self.config = config if config is not None else TrackingConfig()
        self._states: list[_TrackState] = []
        self._next_id = 1
        self._time_s: float | None = None
        self._tracks: list[Track] = []
        self._matched: dict[int, int] = {}
        self._newly_confirmed: list[tuple[int, float, tuple[float, float, float, float]]] = []

    @property
    def tracks(self) -> list[Track]:
        """The live tracks (tentative and confirmed) as returned by the last update()."""
        return list(self._tracks)

    @property
    def matched_detections(self) -> dict[int, int]:
        """Track id -> index of the detection that updated it in the last update() (for evaluation)."""
        return dict(self._matched)

    @property
    def time_s(self) -> float | None:
        return self._time_s

    def __len__(self) -> int:
        return len(self._states)

    def update(self, detections: Detections) -> list[Track]:
        time_s = float(detections.capture_time_s)
        if not math.isfinite(time_s):
            raise ValueError(f"detections have a non-finite capture time: {time_s}")
        if self._time_s is not None and time_s < self._time_s:
            raise ValueError(
                f"detections went back in time: capture_time_s {time_s} is before the previous {self._time_s}"
            )
        self._time_s = time_s
        for state in self._states:
            state.kalman.predict(time_s)
            if state.box is not None:
                state.box.predict(time_s)

        det_groups = np.fromiter(
            (ASSOCIATION_GROUP[road_user] for road_user in detections.road_user), dtype=np.int64, count=len(detections)
        )
        if detections.boxes_px is not None:
            matches, unmatched_high = self._associate_in_image(detections, det_groups)
        else:
            matches, unmatched_high = self._associate_on_ground(detections, det_groups)

        # Plain strings from a converter become the enum here, so identity checks downstream hold.
        labels = [RoadUserType(road_user) for road_user in detections.road_user]
        det_xy = detections.ground_xy_m
        boxes = detections.boxes_px
        self._matched = {self._states[t].track_id: d for t, d in matches}
        self._newly_confirmed = []
        matched_tracks = {t for t, _ in matches}
        for track_index, det_index in matches:
            box = None if boxes is None else boxes[det_index]
            self._apply_detection(self._states[track_index], det_xy[det_index], labels[det_index], box)
        for track_index, state in enumerate(self._states):
            if track_index not in matched_tracks:
                state.missed = True

        self._drop_lost_tracks(time_s)
        for det_index in unmatched_high:
            self._start_track(det_xy[det_index], labels[det_index], time_s, None if boxes is None else boxes[det_index])

        for state in self._states:
            state.update_heading()
        self._tracks = [state.snapshot(time_s) for state in self._states]
        return list(self._tracks)

    @property
    def newly_confirmed_boxes(self) -> list[tuple[int, float, tuple[float, float, float, float]]]:
        """(track id, capture time, box) of the earlier hits of the tracks confirmed by the last update()
        (a track is published only once confirmed; these are the boxes it had before, oldest first)."""
        return list(self._newly_confirmed)

    def _associate_on_ground(
        self, detections: Detections, det_groups: IntArray
    ) -> tuple[list[tuple[int, int]], IntArray]:
        det_xy = detections.ground_xy_m
        high = detections.confidence >= HIGH_CONFIDENCE
        high_indices = np.flatnonzero(high)
        low_indices = np.flatnonzero(~high)
        predictions = _Predictions(self._states, self.config.gate_m)

        # Stage 1: confident detections against every track.
        matches, unmatched_tracks, unmatched_high = _associate(
            predictions, np.arange(len(self._states)), high_indices, det_xy, det_groups
        )
        # Stage 2: weak detections only continue confirmed tracks (weak clutter must not confirm).
        if len(low_indices) and len(unmatched_tracks):
            candidates = unmatched_tracks[predictions.confirmed[unmatched_tracks]]
            low_matches, _, _ = _associate(
                predictions, candidates, low_indices, det_xy, det_groups, LOW_CONFIDENCE_GATE_FACTOR
            )
            matches.extend(low_matches)
        return matches, unmatched_high

    def _associate_in_image(
        self, detections: Detections, det_groups: IntArray
    ) -> tuple[list[tuple[int, int]], IntArray]:
        """Three-stage IoU association of the tracks that have a box (see the module docstring)."""
        assert detections.boxes_px is not None
        det_boxes = detections.boxes_px
        confidence = detections.confidence
        high_indices = np.flatnonzero(confidence >= IMAGE_HIGH_CONFIDENCE)
        low_indices = np.flatnonzero(confidence < IMAGE_HIGH_CONFIDENCE)
        boxed = np.array([i for i, s in enumerate(self._states) if s.box is not None], dtype=np.int64)
        if not len(boxed) or not len(detections):
            return [], high_indices
        states = [self._states[i] for i in boxed]
        predicted = np.array([s.box.box_px for s in states if s.box is not None]).reshape(-1, 4)
        last_real = np.array([s.last_box for s in states if s.last_box is not None]).reshape(-1, 4)
        groups = np.array([s.group for s in states], dtype=np.int64)
        confirmed = np.array([s.confirmed for s in states], dtype=bool)
        same_group = groups[:, None] == det_groups[None, :]
        penalty = np.where(confirmed, 0.0, IMAGE_TENTATIVE_PENALTY)

        matches: list[tuple[int, int]] = []
        # Stage 1: confident detections against every track, the detection score fused into the cost.
        pairs, rows_left, cols_left = associate_iou(
            predicted,
            det_boxes[high_indices],
            same_group[:, high_indices],
            IMAGE_MIN_IOU,
            det_confidence=confidence[high_indices],
            track_penalty=penalty,
        )
        matches.extend((int(boxed[r]), int(high_indices[c])) for r, c in pairs)
        high_left = high_indices[cols_left]
        # Stage 2: weak detections continue confirmed tracks only, at a stricter overlap.
        rows_confirmed = rows_left[confirmed[rows_left]]
        if len(low_indices) and len(rows_confirmed):
            pairs, left, _ = associate_iou(
                predicted[rows_confirmed],
                det_boxes[low_indices],
                same_group[np.ix_(rows_confirmed, low_indices)],
                IMAGE_LOW_MIN_IOU,
            )
            matches.extend((int(boxed[rows_confirmed[r]]), int(low_indices[c])) for r, c in pairs)
            taken = np.ones(len(rows_confirmed), dtype=bool)
            taken[left] = False
            rows_left = np.setdiff1d(rows_left, rows_confirmed[taken])
        # Stage 3: observation-centric recovery, the last real box against the confident detections left.
        if len(rows_left) and len(high_left):
            pairs, _, cols_left = associate_iou(
                last_real[rows_left],
                det_boxes[high_left],
                same_group[np.ix_(rows_left, high_left)],
                IMAGE_RECOVERY_MIN_IOU,
                det_confidence=confidence[high_left],
                track_penalty=penalty[rows_left],
            )
            matches.extend((int(boxed[rows_left[r]]), int(high_left[c])) for r, c in pairs)
            high_left = high_left[cols_left]
        return matches, high_left

    def _apply_detection(
        self,
        state: _TrackState,
        xy: npt.NDArray[np.float64],
        road_user: RoadUserType,
        box_px: npt.NDArray[np.float64] | None = None,
    ) -> None:
        if box_px is not None:
            if state.box is None:
                state.box = BoxKalman(box_px, state.kalman.time_s)
            elif state.missed and state.last_box is not None:
                state.box.restart_from(state.last_box, state.last_seen_s, box_px)
            else:
                state.box.update(box_px)
            state.last_box = np.asarray(box_px, dtype=np.float64).copy()
            if not state.confirmed:
                state.early_boxes.append((state.kalman.time_s, _box_tuple(box_px)))
        state.missed = False
        kalman = state.kalman
        kalman.update(float(xy[0]), float(xy[1]))
        state.posterior_pos_var = kalman.p_pos
        state.hits += 1
        state.last_seen_s = kalman.time_s
        state.vote(road_user)
        if state.hits == ACCELERATION_AFTER_HITS:
            kalman.start_acceleration_estimate()
        if not state.confirmed and state.hits >= self.config.confirm_hits:
            state.confirmed = True
            # The earlier hits (not this one: it is in this update's snapshot).
            self._newly_confirmed.extend((state.track_id, t, box) for t, box in state.early_boxes[:-1])
            state.early_boxes = []

    def _drop_lost_tracks(self, time_s: float) -> None:
        max_coast = self.config.max_coast_s
        tentative_coast = min(TENTATIVE_MAX_COAST_S, max_coast)
        self._states = [
            s for s in self._states if time_s - s.last_seen_s <= (max_coast if s.confirmed else tentative_coast)
        ]

    def _start_track(
        self,
        xy: npt.NDArray[np.float64],
        road_user: RoadUserType,
        time_s: float,
        box_px: npt.NDArray[np.float64] | None = None,
    ) -> None:
        if len(self._states) >= self.config.max_tracks and not self._evict_one(time_s):
            return
        state = _TrackState(self._next_id, float(xy[0]), float(xy[1]), road_user, time_s, box_px)
        self._next_id += 1
        if self.config.confirm_hits <= 1:
            state.confirmed = True
        self._states.append(state)

    def _evict_one(self, time_s: float) -> bool:
        """Make room: the oldest tentative track goes first, then the longest-coasting confirmed one."""
        tentative = [s for s in self._states if not s.confirmed]
        if tentative:
            victim = min(tentative, key=lambda s: s.first_seen_s)
        else:
            coasting = [s for s in self._states if s.last_seen_s < time_s]
            if not coasting:
                return False  # every slot holds a confirmed, currently detected road user
            victim = min(coasting, key=lambda s: s.last_seen_s)
        self._states.remove(victim)
        return True


class _Predictions:
    """The tracks' predicted states as arrays, built once per frame for both association stages."""

    __slots__ = ("confirmed", "direction", "gate_m", "group", "penalty_m", "xy")

    def __init__(self, states: list[_TrackState], base_gate_m: float) -> None:
        self.xy = np.array([(s.kalman.x, s.kalman.y) for s in states], dtype=np.float64).reshape(-1, 2)
        velocity = np.array([(s.kalman.vx, s.kalman.vy) for s in states], dtype=np.float64).reshape(-1, 2)
        speed = np.hypot(velocity[:, 0], velocity[:, 1])
        # Unit direction of travel of the moving tracks (zero for slow ones: their gate stays round).
        moving = speed >= GATE_PATH_MIN_SPEED_MPS
        self.direction = np.zeros_like(velocity)
        self.direction[moving] = velocity[moving] / speed[moving, None]
        self.gate_m = np.array([s.gate_m(base_gate_m) for s in states], dtype=np.float64)
        self.group = np.array([s.group for s in states], dtype=np.int64)
        self.confirmed = np.array([s.confirmed for s in states], dtype=bool)
        self.penalty_m = np.where(self.confirmed, 0.0, TENTATIVE_COST_PENALTY_M)


def _associate(
    predictions: _Predictions,
    track_indices: IntArray,
    det_indices: IntArray,
    det_xy: npt.NDArray[np.float64],
    det_groups: IntArray,
    gate_factor: float = 1.0,
) -> tuple[list[tuple[int, int]], IntArray, IntArray]:
    """Hungarian assignment of the given detections to the given tracks within each track's gate (times gate_factor).

    Returns the (track, detection) index pairs, the unmatched track indices and the unmatched
    detection indices.
    """
    if not len(track_indices) or not len(det_indices):
        return [], track_indices, det_indices
    offsets = det_xy[det_indices][None, :, :] - predictions.xy[track_indices][:, None, :]
    distance = np.hypot(offsets[..., 0], offsets[..., 1])
    direction = predictions.direction[track_indices]
    sideways = offsets[..., 0] * direction[:, None, 1] - offsets[..., 1] * direction[:, None, 0]
    gate_distance_sq = distance**2 + (GATE_SIDEWAYS_WEIGHT**2 - 1.0) * sideways**2
    gates = gate_factor * predictions.gate_m[track_indices]
    allowed = (gate_distance_sq <= (gates**2)[:, None]) & (
        predictions.group[track_indices][:, None] == det_groups[det_indices][None, :]
    )
    if not allowed.any():
        return [], track_indices, det_indices
    # Only rows and columns with at least one admissible pair enter the (cubic) solver.
    rows_in = np.flatnonzero(allowed.any(axis=1))
    cols_in = np.flatnonzero(allowed.any(axis=0))
    sub_allowed = allowed[np.ix_(rows_in, cols_in)]
    penalty = predictions.penalty_m[track_indices[rows_in]]
    cost = np.where(sub_allowed, distance[np.ix_(rows_in, cols_in)] + penalty[:, None], _UNASSIGNABLE)
    rows, cols = linear_sum_assignment(cost)
    keep = sub_allowed[rows, cols]
    matched_rows = rows_in[rows[keep]]
    matched_cols = cols_in[cols[keep]]
    matches = list(zip(track_indices[matched_rows].tolist(), det_indices[matched_cols].tolist(), strict=True))
    track_left = np.ones(len(track_indices), dtype=bool)
    track_left[matched_rows] = False
    det_left = np.ones(len(det_indices), dtype=bool)
    det_left[matched_cols] = False
    return matches, track_indices[track_left], det_indices[det_left]
