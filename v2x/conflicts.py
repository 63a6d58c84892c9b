"""Conflict detection between tracked road users, red-light violations and blocked junctions.

A warning is only worth sending when a road user has to act: each pair test therefore asks both
"will they meet?" (time to collision, TTC, or post-encroachment time, PET) and "can the one who
should give way still do so comfortably?" (the deceleration required to avoid the crash, DRAC).
Thresholds live in WarningConfig (TTC < 3.0 s as SUMO's SSM device; DRAC > 3.4 m/s², the
comfortable limit, where SSM uses 3.0).

Before any pair is tested, the map and the signal state shape each prediction:

- a vehicle or bicycle before its stop line travels along its lane (its noisy tracked heading is
  replaced by the lane's direction); at a red (or red-yellow) it is predicted to stop at the line;
  at a yellow too if it can stop comfortably, while one that would need more than
  red_light_deceleration_mps2 and is not braking is a predicted red-light violator;
- in the junction, a vehicle follows the turn its lane allows (ConflictDetector: a left-only lane
  turns left, a through-and-right lane turns right once the vehicle has swung to the right,
  otherwise it goes straight on along the lane), and one that crossed its stop line on red is a
  violator (red_light_violation, critical) while it is in the junction;
- a pedestrian on a crosswalk walks along it, and violates its signal (jaywalks) when the
  crosswalk shows don't-walk; one in the road outside any crosswalk is a violator too; one on a
  footway or corner is expected to stay there and takes part in no conflict.

Conflicts, per snapshot of tracks at now_s:

- rear-end (and a vehicle closing on a cyclist or pedestrian ahead in its path): two road users
  heading the same way (within 35°), or one standing still (or two vehicles one of which creeps
  below tracking.queue_speed_mps), in the same lane or overlapping laterally, not on opposite
  sides of one road. TTC is the first predicted time the bumper gap closes (constant
  acceleration; a turning follower's predicted arc against a standing obstacle). Warned only
  when the follower also needs more than drac_threshold_mps2 to keep the gap open (DRAC follows
  a braking leader to its stop), so approaching a stopped queue that can still brake
  comfortably, following at equal speed, braking in time and queue discharge never warn. A
  vehicle running up to a pedestrian standing in its lane against the signal always warns.
- crossing (two vehicles) and vulnerable road user (a vehicle and a pedestrian or cyclist):
  predicted paths that cross. Warned when the pair is on a collision course (same-time
  separation below collision_radius_m within the horizon) and the road user who has to give way
  (the vehicle in a VRU conflict, else the later arrival) needs more than drac_threshold_mps2
  to let the other clear the crossing area and is not already creeping; or, when one of them
  violates its signal, also on a near miss: each occupies the crossing area for a while (its
  half-length plus the other's half-width, stretched for shallow angles), and PET, the gap
  between the two occupations, is below pet_threshold_s. So a right turner yielding to
  pedestrians on a walk signal never warns; a jaywalker in front of a vehicle with green does,
  as does a red-light runner crossing the path of traffic that just got green. Never between
  lanes of one approach, between vehicles released by signal groups that may be green together
  (not a pair in the site's conflicts) on protected movements, or between opposite directions
  on opposite sides of one road; the pair must be closing now (min_closing_speed_mps).
- red-light violation: predicted at a yellow (above), confirmed at the line on a red. On a
  steady red nothing is predicted: tracked speed lags a late-braking vehicle by a few tenths of
  a second, which makes ordinary stops look like violations (measured on the simulated junction:
  about 300 stopping vehicles an hour against 4 real runners); crossing the line at speed is
  certain. TTC is the time to the stop line (0 once across).
- stopped in junction: a vehicle standing (below queue_speed_mps) inside the junction box, the
  area between the stop lines, for stopped_in_junction_s or longer (ConflictDetector only).

Severity: TTC < ttc_critical_s or DRAC >= drac_critical_mps2 is critical, otherwise warning.
A predicted red-light violation within the horizon is at least a warning.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rsu.config.model import VEHICLE_TYPES, Movement, RoadUserType, SiteConfig, WarningConfig
from rsu.messages.perception import TrackedObject
from rsu.messages.signal import Indication, SignalGroupState, SignalState
from rsu.messages.warnings import Severity, WarningKind
from v2x.junction import JunctionGeometry, StopLine
from v2x.prediction import (
    FloatArray,
    KinematicState,
    MotionModel,
    deceleration_to_stop,
    deceleration_to_yield,
    heading_difference_deg,
    heading_unit_vector,
    predict_paths,
    prediction_times,
    rear_end_drac,
    time_to_travel,
    travelled_distance,
)

# Pairs heading the same way within this angle are checked for rear-end, not crossing, conflicts:
# at shallow angles one is behind the other (a vehicle following a turning one) rather than
# crossing its path.
SAME_DIRECTION_MAX_DEG = 35.0
# Pairs heading more against each other than this are kept apart by the road when they drive on
# opposite sides of one leg; beyond HEAD_ON_MIN_DEG also when side by side and not turning.
# Tracked headings (a few degrees of noise) alone cannot separate adjacent opposing lanes.
OPPOSITE_MIN_DEG = 120.0
HEAD_ON_MIN_DEG = 160.0
# A vehicle counts as approaching its stop line when heading this close to the lane direction.
APPROACH_MAX_HEADING_DEG = 45.0
# Maximum comfortable deceleration (GUIDE §3): a driver who can stop with this at a yellow does.
COMFORTABLE_DECELERATION_MPS2 = 3.4
# A vehicle decelerating at half of what it needs to stop, or at this rate, counts as stopping:
# tracked acceleration lags the brake lights by a few tenths of a second.
BRAKING_SHARE = 0.5
BRAKING_MPS2 = 2.0
# Below this speed a road user's heading says nothing about where it is going.
STATIONARY_SPEED_MPS = 0.5
# Extra lateral tolerance beyond the half-widths for "same lane" when no lane id is known.
LATERAL_MARGIN_M = 0.2
PREDICTION_STEP_S = 0.1
# Pairs per vectorised block in the pair pre-filter.
PAIR_CHUNK = 4096
# Predicted paths are extended by this much beyond the body's half-length (front and back) when
# looking for where two paths cross, so a body reaching over the other's path counts.
PATH_EXTENSION_M = 3.0
# Turn intent (ConflictDetector): a vehicle in the junction from a lane that allows a turn is
# turning once it has swung this far from the lane direction; it follows an arc of a typical
# urban corner radius until it has turned a right angle.
TURN_INTENT_DEG = 10.0
LEFT_TURN_RADIUS_M = 14.0
RIGHT_TURN_RADIUS_M = 8.0
TURNING_LEFT = frozenset({Movement.LEFT, Movement.UTURN})
# A vehicle from a through lane swung less than this (and not turning) goes straight on along it.
THROUGH_MAX_SWING_DEG = 30.0
# Yaw-rate estimation from tracked headings, for road users without a known lane: heading noise
# of a tracked vehicle going straight is a few degrees per second, a turning vehicle turns at
# 15-40°/s.
YAW_WINDOW_S = 1.0
YAW_MIN_SPEED_MPS = 2.0
YAW_DEADBAND_DPS = 8.0
YAW_MAX_DPS = 45.0
# A turn at a junction ends after about a right angle (left, right); a U-turn is not predicted.
MAX_TURN_DEG = 100.0

RED_INDICATIONS = frozenset({Indication.RED, Indication.RED_YELLOW})
VULNERABLE_TYPES = frozenset({RoadUserType.PEDESTRIAN, RoadUserType.BICYCLE})


@dataclass(frozen=True)
class Conflict:
    kind: WarningKind
    severity: Severity
    # Time to collision (rear-end, crossing) or to the stop line (red light); None: stopped in junction.
    ttc_s: float | None
    conflict_x_m: float
    conflict_y_m: float
    # Rear-end: (follower, leader); VRU: (vehicle, vulnerable road user); red light / stopped: (vehicle,).
    participants: tuple[TrackedObject, ...]
    # Deceleration the road user who has to act needs to avoid the conflict (math.inf: cannot).
    required_deceleration_mps2: float | None = None
    # Predicted post-encroachment time of a crossing conflict (negative: both in the area together).
    pet_s: float | None = None
    # One of the participants ignores its signal (red-light runner, jaywalker).
    signal_violation: bool = False

    @property
    def key(self) -> tuple[WarningKind, tuple[int, ...]]:
        """Identity of the conflict across snapshots: kind and the sorted participant track ids."""
        return self.kind, tuple(sorted(p.track_id for p in self.participants))


@dataclass(frozen=True)
class MotionHint:
    """What ConflictDetector knows about a track beyond one snapshot."""

    yaw_rate_dps: float = 0.0
    # Heading change left before the current turn ends (degrees).
    max_turn_deg: float = math.inf
    # Crossed its stop line while the lane's signal group showed red.
    entered_on_red: bool = False
    # Direction of travel to predict with instead of the tracked heading (noisy at low speed).
    heading_deg: float | None = None
    # The lane it came from, while it crosses the junction.
    origin_lane_id: str | None = None


@dataclass(frozen=True)
class _SignalContext:
    """How the signal state shapes one road user's prediction in this snapshot."""

    stop_within_m: float = math.inf
    violates_signal: bool = False
    # False for a pedestrian on a footway: expected to stay out of the road.
    in_road: bool = True
    # Direction it travels whatever its noisy tracked heading: along its lane before the stop line,
    # along the crosswalk for a pedestrian on one.
    path_heading_deg: float | None = None


_NO_HINT = MotionHint()
_STRAIGHT_ON: tuple[float, float, float | None] = (0.0, math.inf, None)
_FREE = _SignalContext()


def severity_for_ttc(ttc_s: float, config: WarningConfig) -> Severity | None:
    if ttc_s < config.ttc_critical_s:
        return Severity.CRITICAL
    if ttc_s < config.ttc_warning_s:
        return Severity.WARNING
    return None


def _severity(ttc_s: float, required_deceleration_mps2: float, config: WarningConfig) -> Severity | None:
    severity = severity_for_ttc(ttc_s, config)
    if severity is Severity.WARNING and required_deceleration_mps2 >= config.drac_critical_mps2:
        return Severity.CRITICAL
    return severity


def is_vehicle(track: TrackedObject) -> bool:
    return track.road_user in VEHICLE_TYPES


def find_conflicts(
    tracks: Sequence[TrackedObject],
    signal: SignalState | None,
    site: SiteConfig,
    config: WarningConfig,
    now_s: float,
    model: MotionModel = MotionModel.CONSTANT_TURN_RATE,
    *,
    geometry: JunctionGeometry | None = None,
    hints: Mapping[int, MotionHint] | None = None,
) -> list[Conflict]:
    """All conflicts in one snapshot of tracks taken at now_s, sorted by kind and participants.

    hints (per track id) carry the yaw rate and signal history that a single snapshot lacks; the
    turn-rate model uses the yaw rates and equals constant acceleration without them.
    """
    geometry = geometry or JunctionGeometry(site)
    hints = hints or {}
    groups = {group.signal_group: group for group in signal.groups} if signal is not None else {}
    contexts, conflicts = _signal_contexts(
        tracks, groups, geometry, config, now_s, hints, site.tracking.queue_speed_mps
    )
    conflicts.extend(_pair_conflicts(tracks, contexts, geometry, site, config, model, hints))
    return sorted(conflicts, key=lambda c: (c.kind.value, c.key[1]))


# --- the signal's say -------------------------------------------------------------------------


def _signal_contexts(
    tracks: Sequence[TrackedObject],
    groups: Mapping[str, SignalGroupState],
    geometry: JunctionGeometry,
    config: WarningConfig,
    now_s: float,
    hints: Mapping[int, MotionHint],
    queue_speed_mps: float,
) -> tuple[list[_SignalContext], list[Conflict]]:
    """Per track: where its path ends and whether it violates its signal; plus red-light conflicts."""
    contexts = [_FREE] * len(tracks)
    conflicts: list[Conflict] = []
    pedestrians = [i for i, t in enumerate(tracks) if t.road_user is RoadUserType.PEDESTRIAN]
    if pedestrians:
        points = np.array([[tracks[i].x_m, tracks[i].y_m] for i in pedestrians])
        in_road = geometry.in_road(points)
        crosswalks = geometry.crosswalk_of(points, in_road)
        for index, crosswalk, road in zip(pedestrians, crosswalks, in_road.tolist(), strict=True):
            if crosswalk is not None:
                group = groups.get(crosswalk.signal_group) if crosswalk.signal_group else None
                jaywalking = group is not None and group.indication in RED_INDICATIONS
                walking = crosswalk.walking_heading_deg(tracks[index].heading_deg)
                contexts[index] = _SignalContext(violates_signal=jaywalking, path_heading_deg=walking)
            elif road:
                contexts[index] = _SignalContext(violates_signal=True)  # in the road, off the crosswalk
            else:
                contexts[index] = _SignalContext(in_road=False)
    for index, track in enumerate(tracks):
        if track.road_user is RoadUserType.PEDESTRIAN:
            continue
        line = geometry.stop_lines.get(track.lane_id) if track.lane_id is not None else None
        if line is None:
            if hints.get(track.track_id, _NO_HINT).entered_on_red and is_vehicle(track):
                contexts[index] = _SignalContext(violates_signal=True)
            continue
        # Perception placed it in the lane: it travels along it (not against it, a wrong-way driver).
        along_lane = heading_difference_deg(track.heading_deg, line.heading_deg) < 90.0
        lane_heading = line.heading_deg if along_lane else None
        group = groups.get(line.signal_group)
        if group is None:
            contexts[index] = _SignalContext(path_heading_deg=lane_heading)
            continue
        context, conflict = _approach(track, line, group, config, now_s, queue_speed_mps)
        contexts[index] = _SignalContext(context.stop_within_m, context.violates_signal, True, lane_heading)
        if conflict is not None:
            conflicts.append(conflict)
    return contexts, conflicts


def _approach(
    track: TrackedObject,
    line: StopLine,
    group: SignalGroupState,
    config: WarningConfig,
    now_s: float,
    queue_speed_mps: float,
) -> tuple[_SignalContext, Conflict | None]:
    """A road user in a lane before its stop line: will it stop there, pass legally, or run the red?"""
    red = group.indication in RED_INDICATIONS
    if not red and group.indication is not Indication.YELLOW:
        return _FREE, None
    if heading_difference_deg(track.heading_deg, line.heading_deg) > APPROACH_MAX_HEADING_DEG:
        return _FREE, None
    to_stop_line = line.distance_ahead_m(track.x_m, track.y_m) - track.length_m / 2
    if to_stop_line <= 0:
        return _FREE, None  # front already across the line
    hold = _SignalContext(stop_within_m=to_stop_line)
    if track.speed_mps < queue_speed_mps:
        return hold, None  # creeping up to the line
    arrival = time_to_travel(to_stop_line, track.speed_mps, track.acceleration_mps2)
    if arrival is None:
        return hold, None  # braking to a stop before the line
    time_left = group.likely_time_s - now_s
    if red:
        # Predicted to stop: tracked speed lags a late-braking vehicle by a few tenths of a second,
        # which on a steady red makes ordinary stops look like violations. A vehicle that does
        # cross on red is caught at the line (ConflictDetector, entered_on_red).
        return (hold, None) if arrival < time_left else (_FREE, None)
    if arrival <= time_left:
        return _FREE, None  # through on yellow
    required = deceleration_to_stop(to_stop_line, track.speed_mps)
    if required <= COMFORTABLE_DECELERATION_MPS2:
        return hold, None  # a driver who can stop comfortably at a yellow does
    braking = -track.acceleration_mps2 >= min(BRAKING_SHARE * required, BRAKING_MPS2)
    if required <= config.red_light_deceleration_mps2 or braking:
        return _FREE, None  # dilemma zone, or braking hard already: no call either way
    if not is_vehicle(track) or arrival > config.horizon_s:
        return _SignalContext(violates_signal=True), None
    severity = severity_for_ttc(arrival, config) or Severity.WARNING
    conflict = Conflict(
        WarningKind.RED_LIGHT_VIOLATION,
        severity,
        arrival,
        line.x_m,
        line.y_m,
        (track,),
        required_deceleration_mps2=required,
        signal_violation=True,
    )
    return _SignalContext(violates_signal=True), conflict


# --- pairs -----------------------------------------------------------------------------------


@dataclass
class _Scene:
    """Predictions for the road users taking part in pair tests (arrays indexed like `tracks`)."""

    tracks: Sequence[TrackedObject]
    contexts: Sequence[_SignalContext]
    geometry: JunctionGeometry
    # Direction of travel used for prediction: lane direction, turn intent, else the tracked heading.
    headings: FloatArray
    # Lane each road user is in or, crossing the junction, came from (None: unknown).
    origin_lanes: Sequence[str | None]
    times: FloatArray
    paths: FloatArray
    # Distance along the path and speed, (road users, times).
    distance: FloatArray
    speed_profile: FloatArray
    speeds: FloatArray
    accelerations: FloatArray
    # Road users with a turn rate (their straight heading is not where they go).
    turning: npt.NDArray[np.bool_]
    config: WarningConfig
    # Slower than this a vehicle creeps (a queue, a turner giving way).
    queue_speed_mps: float
    conflicts: list[Conflict] = field(default_factory=list)


def _pair_conflicts(
    tracks: Sequence[TrackedObject],
    contexts: Sequence[_SignalContext],
    geometry: JunctionGeometry,
    site: SiteConfig,
    config: WarningConfig,
    model: MotionModel,
    hints: Mapping[int, MotionHint],
) -> list[Conflict]:
    active = [i for i, context in enumerate(contexts) if context.in_road]
    if len(active) < 2:
        return []
    tracks = [tracks[i] for i in active]
    contexts = [contexts[i] for i in active]
    times = prediction_times(config.horizon_s, PREDICTION_STEP_S)
    # Pedestrian accelerations are tracker noise, not intent.
    accelerations = np.array(
        [0.0 if t.road_user is RoadUserType.PEDESTRIAN else t.acceleration_mps2 for t in tracks], dtype=float
    )
    if model is MotionModel.CONSTANT_VELOCITY:
        accelerations = np.zeros(len(tracks))
    states = []
    turning = np.zeros(len(tracks), dtype=bool)
    headings = np.zeros(len(tracks))
    origin_lanes: list[str | None] = []
    for index, (track, context) in enumerate(zip(tracks, contexts, strict=True)):
        hint = hints.get(track.track_id, _NO_HINT)
        origin_lanes.append(track.lane_id if track.lane_id is not None else hint.origin_lane_id)
        turning[index] = hint.yaw_rate_dps != 0.0
        heading = context.path_heading_deg if context.path_heading_deg is not None else hint.heading_deg
        headings[index] = track.heading_deg if heading is None else heading
        states.append(
            KinematicState(
                track.x_m,
                track.y_m,
                track.speed_mps,
                float(headings[index]),
                float(accelerations[index]),
                hint.yaw_rate_dps,
                context.stop_within_m,
                hint.max_turn_deg,
            )
        )
    paths = predict_paths(states, times, model)
    speeds = np.array([t.speed_mps for t in tracks])
    limits = np.array([c.stop_within_m for c in contexts])
    distance, speed_profile = travelled_distance(speeds, accelerations, times, limits)
    scene = _Scene(
        tracks,
        contexts,
        geometry,
        headings,
        origin_lanes,
        times,
        paths,
        distance,
        speed_profile,
        speeds,
        accelerations,
        turning & (model is MotionModel.CONSTANT_TURN_RATE),
        config,
        site.tracking.queue_speed_mps,
    )

    first, second = _candidate_pairs(tracks, distance[:, -1], config)
    vehicles = np.array([is_vehicle(t) for t in tracks])
    with_vehicle = vehicles[first] | vehicles[second]  # two pedestrians / cyclists: no vehicle to warn
    first, second = first[with_vehicle], second[with_vehicle]
    heading_gap = np.abs((headings[first] - headings[second] + 180.0) % 360.0 - 180.0)
    # A standing object's heading is stale or noise: pairs with one are judged along the mover's path.
    # So are two vehicles one of which creeps (a queue, a turner waiting for pedestrians), unless a
    # signal violator is involved: it crosses the creeper's path rather than running into it.
    slowest = np.minimum(speeds[first], speeds[second])
    violating = np.array([context.violates_signal for context in contexts], dtype=bool)
    creeping = (slowest < scene.queue_speed_mps) & vehicles[first] & vehicles[second]
    creeping &= ~(violating[first] | violating[second])
    standing = (slowest < STATIONARY_SPEED_MPS) | creeping
    same_direction = (heading_gap <= SAME_DIRECTION_MAX_DEG) | standing
    moving = np.maximum(speeds[first], speeds[second]) >= scene.queue_speed_mps
    longitudinal = same_direction & moving
    longitudinal[longitudinal] = _may_close(scene, geometry, first[longitudinal], second[longitudinal])
    for i, j in zip(first[longitudinal].tolist(), second[longitudinal].tolist(), strict=True):
        _rear_end(scene, i, j)
    keep = ~same_direction & _may_cross(scene, geometry, first, second, heading_gap)
    crossing_first, crossing_second = _closing_and_overlapping(scene, first[keep], second[keep])
    for i, j in zip(crossing_first.tolist(), crossing_second.tolist(), strict=True):
        _crossing(scene, i, j)
    return scene.conflicts


def _may_close(
    scene: _Scene, geometry: JunctionGeometry, first: npt.NDArray[np.intp], second: npt.NDArray[np.intp]
) -> npt.NDArray[np.bool_]:
    """Pre-filter for the rear-end test: not in different lanes nor on opposite sides of one road leg
    (a vehicle swinging out of a turn does not cross into the queue waiting on the other side), and
    the bumper gap now within what the difference of their predicted travel (plus the heading slack)
    could close."""
    tracks = scene.tracks
    lane_ids = {lane: n for n, lane in enumerate({t.lane_id for t in tracks if t.lane_id is not None})}
    lane_index = np.array([-1 if t.lane_id is None else lane_ids[t.lane_id] for t in tracks])
    other_lane = (lane_index[first] >= 0) & (lane_index[second] >= 0) & (lane_index[first] != lane_index[second])
    positions = scene.paths[:, 0, :]
    half_lengths = np.array([t.length_m / 2 for t in tracks])
    gap = np.linalg.norm(positions[first] - positions[second], axis=-1) - half_lengths[first] - half_lengths[second]
    travel = scene.distance
    slack = 1.0 - math.cos(math.radians(SAME_DIRECTION_MAX_DEG))
    closable = np.abs(travel[first] - travel[second]).max(axis=1) + slack * np.maximum(
        travel[first, -1], travel[second, -1]
    )
    keep = np.asarray(~other_lane & (gap <= closable))
    if keep.any():
        sides = geometry.road_sides(positions)
        for n in np.flatnonzero(keep).tolist():
            side_i, side_j = sides[int(first[n])], sides[int(second[n])]
            if side_i is not None and side_j is not None and side_i[0] == side_j[0] and side_i[1] != side_j[1]:
                keep[n] = False
    return keep


def _may_cross(
    scene: _Scene,
    geometry: JunctionGeometry,
    first: npt.NDArray[np.intp],
    second: npt.NDArray[np.intp],
    heading_gap: FloatArray,
) -> npt.NDArray[np.bool_]:
    """False for pairs whose paths the road layout keeps apart, whatever their noisy headings say:

    - two lanes of one approach (lane discipline before the stop line);
    - two vehicles released by signal groups that may be green together (not a conflicting pair in
      the site config), neither on a permissive turn and neither violating its signal: the signal
      plan keeps their movements apart;
    - opposite directions on opposite sides of one road leg;
    - opposite directions side by side (laterally apart now) when neither is turning.
    """
    tracks = scene.tracks
    approaches = {approach: n for n, approach in enumerate(sorted(set(geometry.approach_of_lane.values())))}
    approach_index = np.array(
        [-1 if t.lane_id is None else approaches.get(geometry.approach_of_lane.get(t.lane_id, ""), -1) for t in tracks]
    )
    one_approach = (approach_index[first] >= 0) & (approach_index[first] == approach_index[second])
    result = np.asarray(~one_approach)
    for n in np.flatnonzero(result).tolist():
        i, j = int(first[n]), int(second[n])
        if scene.contexts[i].violates_signal or scene.contexts[j].violates_signal:
            continue
        if is_vehicle(tracks[i]) and is_vehicle(tracks[j]):
            result[n] = not geometry.released_together(scene.origin_lanes[i], scene.origin_lanes[j])
    opposite = np.flatnonzero(result & (heading_gap >= OPPOSITE_MIN_DEG))
    if len(opposite) == 0:
        return result
    sides = geometry.road_sides(np.array([[t.x_m, t.y_m] for t in tracks]))
    for n in opposite.tolist():
        i, j = int(first[n]), int(second[n])
        side_i, side_j = sides[i], sides[j]
        if side_i is not None and side_j is not None and side_i[0] == side_j[0] and side_i[1] != side_j[1]:
            result[n] = False
            continue
        if heading_gap[n] >= HEAD_ON_MIN_DEG and not (scene.turning[i] or scene.turning[j]):
            a, b = tracks[i], tracks[j]
            axis = np.array(heading_unit_vector(scene.headings[i])) - np.array(heading_unit_vector(scene.headings[j]))
            axis /= max(float(np.linalg.norm(axis)), 1e-9)
            dx, dy = b.x_m - a.x_m, b.y_m - a.y_m
            if abs(dx * axis[1] - dy * axis[0]) > (a.width_m + b.width_m) / 2 + LATERAL_MARGIN_M:
                result[n] = False
    return result


def _candidate_pairs(
    tracks: Sequence[TrackedObject], reach_m: FloatArray, config: WarningConfig
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Pairs (i < j) that could meet within the horizon: current distance below the sum of reaches."""
    positions = np.array([[t.x_m, t.y_m] for t in tracks])
    half_lengths = np.array([t.length_m / 2 for t in tracks])
    separation = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    limit = reach_m[:, None] + reach_m[None, :] + half_lengths[:, None] + half_lengths[None, :]
    limit = limit + config.collision_radius_m + PATH_EXTENSION_M
    first, second = np.nonzero(np.triu(separation <= limit, k=1))
    return first, second


def _closing_and_overlapping(
    scene: _Scene, first: npt.NDArray[np.intp], second: npt.NDArray[np.intp]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Vectorised pre-filter for the crossing test: pairs closing now whose paths come together.

    Without a signal violation only a predicted collision can warn, so the pair's same-time
    separation must dip to the collision radius; with one, a near miss can, so their path boxes
    must overlap. Only these go through the exact per-pair test, which keeps crowded scenes cheap.
    """
    tracks, paths = scene.tracks, scene.paths
    positions = paths[:, 0, :]
    radians = np.radians(scene.headings)
    velocities = np.stack([scene.speeds * np.sin(radians), scene.speeds * np.cos(radians)], axis=-1)
    relative_position = positions[second] - positions[first]
    relative_velocity = velocities[second] - velocities[first]
    range_now = np.linalg.norm(relative_position, axis=-1)
    closing_speed = -np.einsum("ij,ij->i", relative_position, relative_velocity) / np.maximum(range_now, 1e-9)
    closing = closing_speed >= scene.config.min_closing_speed_mps
    first, second = first[closing], second[closing]
    reach = np.array([t.length_m / 2 + PATH_EXTENSION_M for t in tracks])
    low = paths.min(axis=1) - reach[:, None]
    high = paths.max(axis=1) + reach[:, None]
    overlap = np.all((low[first] <= high[second]) & (low[second] <= high[first]), axis=-1)
    first, second = first[overlap], second[overlap]
    violating = np.array([context.violates_signal for context in scene.contexts], dtype=bool)
    keep = violating[first] | violating[second]
    for start in range(0, len(first), PAIR_CHUNK):  # chunks bound the (pairs, times, 2) temporary
        chunk = slice(start, start + PAIR_CHUNK)
        separation = paths[second[chunk]] - paths[first[chunk]]
        sampled_min = np.linalg.norm(separation, axis=-1).min(axis=1)
        # Between samples the true distance can dip below the sampled one by up to half a step.
        largest_step = np.linalg.norm(np.diff(separation, axis=1), axis=-1).max(axis=1)
        keep[chunk] |= sampled_min <= scene.config.collision_radius_m + largest_step / 2
    return first[keep], second[keep]


def _rear_end(scene: _Scene, i: int, j: int) -> None:
    a, b = scene.tracks[i], scene.tracks[j]
    config = scene.config
    if a.lane_id is not None and b.lane_id is not None and a.lane_id != b.lane_id:
        return  # parallel lanes
    if b.speed_mps < STATIONARY_SPEED_MPS <= a.speed_mps:
        a_follows = True  # only the moving one can run into the other
    elif a.speed_mps < STATIONARY_SPEED_MPS <= b.speed_mps:
        a_follows = False
    else:
        ux, uy = heading_unit_vector(scene.headings[i])
        a_follows = (b.x_m - a.x_m) * ux + (b.y_m - a.y_m) * uy >= 0
    order = [i, j] if a_follows else [j, i]  # index 0 is the follower
    follower, leader = scene.tracks[order[0]], scene.tracks[order[1]]
    leader_line = scene.geometry.stop_lines.get(leader.lane_id) if leader.lane_id is not None else None
    past_leader_line = leader_line is not None and leader_line.distance_ahead_m(follower.x_m, follower.y_m) < 0
    if follower.lane_id is None and past_leader_line:
        return  # past the leader's stop line (crossing the junction): it cannot come from behind
    if leader.speed_mps < STATIONARY_SPEED_MPS and scene.turning[order[0]]:
        contact = _sweep_onto_standing(scene, order[0], order[1])
    else:
        contact = _straight_contact(scene, order)
    if contact is None:
        return
    ttc, gap0, cos_angle = contact
    violation = scene.contexts[order[0]].violates_signal or scene.contexts[order[1]].violates_signal
    drac = rear_end_drac(
        gap0, follower.speed_mps, leader.speed_mps * cos_angle, scene.accelerations[order[1]] * cos_angle
    )
    vulnerable_ahead = leader.road_user in VULNERABLE_TYPES and is_vehicle(follower)
    if drac <= config.drac_threshold_mps2 and not (violation and vulnerable_ahead):
        return  # the follower can still brake comfortably: no reason to alarm anyone
    severity = _severity(ttc, drac, config)
    if severity is None:
        return
    # Where the follower's front meets the leader's rear.
    travel = float(np.interp(ttc, scene.times, scene.distance[order[1]]))
    lx, ly = heading_unit_vector(scene.headings[order[1]])
    rear = travel - leader.length_m / 2
    kind = WarningKind.REAR_END if is_vehicle(follower) and is_vehicle(leader) else WarningKind.VULNERABLE_ROAD_USER
    participants = (follower, leader) if kind is WarningKind.REAR_END else _vehicle_first(follower, leader)
    scene.conflicts.append(
        Conflict(
            kind,
            severity,
            ttc,
            leader.x_m + lx * rear,
            leader.y_m + ly * rear,
            participants,
            required_deceleration_mps2=drac,
            signal_violation=violation,
        )
    )


def _straight_contact(scene: _Scene, order: list[int]) -> tuple[float, float, float] | None:
    """(TTC, bumper gap now, cos of the heading difference) of a follower closing on a leader ahead in
    its lane or overlapping it laterally, or None if the gap stays open within the horizon."""
    follower, leader = scene.tracks[order[0]], scene.tracks[order[1]]
    fx, fy = heading_unit_vector(scene.headings[order[0]])
    dx, dy = leader.x_m - follower.x_m, leader.y_m - follower.y_m
    along = dx * fx + dy * fy
    lateral = abs(dx * fy - dy * fx)
    same_lane = follower.lane_id is not None and follower.lane_id == leader.lane_id
    if not same_lane and lateral > (follower.width_m + leader.width_m) / 2 + LATERAL_MARGIN_M:
        return None  # side by side
    gap0 = along - (follower.length_m + leader.length_m) / 2
    if gap0 <= 0:
        return None  # overlapping boxes: a tracker duplicate or merge, and too late to warn anyway
    cos_angle = float(np.cos(np.radians(heading_difference_deg(scene.headings[order[0]], scene.headings[order[1]]))))
    distance, speed = scene.distance[order], scene.speed_profile[order]
    times = scene.times
    gap = gap0 + distance[1] * cos_angle - distance[0]
    closed = np.nonzero(gap <= 0)[0]
    if len(closed) == 0:
        return None  # the follower stops or keeps its distance within the horizon
    k = int(closed[0])
    # Linear interpolation between the last open and the first closed sample.
    ttc = float(times[k - 1] + (times[k] - times[k - 1]) * gap[k - 1] / (gap[k - 1] - gap[k]))
    closing_at_contact = float(speed[0, k] - speed[1, k] * cos_angle)
    if closing_at_contact < max(scene.config.min_closing_speed_mps, 1e-6):
        return None
    return ttc, gap0, cos_angle


def _sweep_onto_standing(scene: _Scene, mover: int, standing: int) -> tuple[float, float, float] | None:
    """A turning road user's predicted path against a standing one: (TTC, path distance to contact, 0).

    A turning vehicle is not heading where it will go, so the straight test would put the cars
    queued on the leg it turns past in its way; this follows its predicted arc instead.
    """
    track, obstacle = scene.tracks[mover], scene.tracks[standing]
    path = scene.paths[mover]
    steps = np.diff(path, axis=0)
    step_length = np.linalg.norm(steps, axis=1)
    tangent = steps / np.maximum(step_length, 1e-9)[:, None]
    ux, uy = heading_unit_vector(scene.headings[mover])
    tangent = np.vstack([[ux, uy], tangent])
    # Samples where the path stands still keep the last direction of travel.
    for k in range(1, len(tangent)):
        if step_length[k - 1] < 1e-9:
            tangent[k] = tangent[k - 1]
    offset = np.array([obstacle.x_m, obstacle.y_m]) - path
    along = offset[:, 0] * tangent[:, 0] + offset[:, 1] * tangent[:, 1]
    lateral = np.abs(offset[:, 0] * tangent[:, 1] - offset[:, 1] * tangent[:, 0])
    reach = (track.length_m + obstacle.length_m) / 2
    gap = along - reach
    beside = lateral <= (track.width_m + obstacle.width_m) / 2 + LATERAL_MARGIN_M
    if gap[0] <= 0:
        return None  # already overlapping (duplicate track) or beside it
    touching = np.flatnonzero(beside & (gap <= 0) & (along > -reach))
    if len(touching) == 0:
        return None
    k = int(touching[0])
    times = scene.times
    ttc = float(times[k - 1] + (times[k] - times[k - 1]) * gap[k - 1] / (gap[k - 1] - gap[k]))
    path_gap = float(np.interp(ttc, times, scene.distance[mover]))
    if path_gap <= 0 or track.speed_mps < scene.config.min_closing_speed_mps:
        return None
    return ttc, path_gap, 0.0


def _crossing(scene: _Scene, i: int, j: int) -> None:
    a, b = scene.tracks[i], scene.tracks[j]
    config = scene.config
    if math.hypot(b.x_m - a.x_m, b.y_m - a.y_m) < (a.width_m + b.width_m) / 2:
        return  # overlapping now: a tracker duplicate or split, and too late to warn anyway
    violation = scene.contexts[i].violates_signal or scene.contexts[j].violates_signal
    approach_s, approach_m, approach_point = _closest_approach(scene, i, j)
    collision = approach_s > 0 and approach_m <= config.collision_radius_m
    hit = _path_crossing(scene, i, j)
    pet: float | None = None
    if hit is not None:
        point, along_a, along_b, angle = hit
        sin_angle = max(abs(math.sin(angle)), math.sin(math.radians(SAME_DIRECTION_MAX_DEG)))
        cot_angle = abs(math.cos(angle)) / sin_angle
        # How far along its own path each body's centre is from the crossing point while the bodies overlap.
        extent_a = a.length_m / 2 + b.width_m / 2 / sin_angle + a.width_m / 2 * cot_angle
        extent_b = b.length_m / 2 + a.width_m / 2 / sin_angle + b.width_m / 2 * cot_angle
        occupy_a = _occupation(scene.distance[i], scene.times, along_a, extent_a)
        occupy_b = _occupation(scene.distance[j], scene.times, along_b, extent_b)
        if occupy_a is not None and occupy_b is not None:
            (enter_a, leave_a, centre_a), (enter_b, leave_b, centre_b) = occupy_a, occupy_b
            pet = max(enter_b - leave_a, enter_a - leave_b)
    near_miss = violation and pet is not None and pet < config.pet_threshold_s
    if not (collision or near_miss):
        return
    if hit is None or pet is None:
        # Same-time closest approach without crossing paths (converging or opposite): the one that
        # gives way has to stop short of the meeting point.
        a_yields = is_vehicle(a) if is_vehicle(a) != is_vehicle(b) else a.speed_mps <= b.speed_mps
        yielder = i if a_yields else j
        stop_within = float(np.interp(approach_s, scene.times, scene.distance[yielder]))
        drac = deceleration_to_stop(stop_within, scene.tracks[yielder].speed_mps)
        ttc, where = approach_s, approach_point
    else:
        # Who has to give way: the vehicle against a vulnerable road user, else the later arrival.
        a_yields = is_vehicle(a) if is_vehicle(a) != is_vehicle(b) else (enter_a, centre_a) > (enter_b, centre_b)
        if a_yields:
            drac = deceleration_to_yield(along_a - extent_a, a.speed_mps, leave_b)
        else:
            drac = deceleration_to_yield(along_b - extent_b, b.speed_mps, leave_a)
        ttc = approach_s if collision else max(centre_a, centre_b)
        where = point
    if not violation:
        yielder_speed = a.speed_mps if a_yields else b.speed_mps
        if drac <= config.drac_threshold_mps2 or yielder_speed < scene.queue_speed_mps:
            return  # the one who gives way can do so comfortably, or is creeping: it is giving way
    severity = _severity(ttc, drac, config)
    if severity is None:
        return
    kind, participants = _kind_and_participants(a, b)
    scene.conflicts.append(
        Conflict(
            kind,
            severity,
            ttc,
            float(where[0]),
            float(where[1]),
            participants,
            required_deceleration_mps2=drac,
            pet_s=pet,
            signal_violation=violation,
        )
    )


def _closest_approach(scene: _Scene, i: int, j: int) -> tuple[float, float, FloatArray]:
    """(time, distance, midpoint) of the smallest same-time separation of two predicted centres."""
    times = scene.times
    separation = scene.paths[j] - scene.paths[i]
    distances = np.linalg.norm(separation, axis=1)
    k = int(np.argmin(distances))
    best_time, best_distance = float(times[k]), float(distances[k])
    for start in (k - 1, k):  # straight motion between samples
        if start < 0 or start + 1 >= len(times):
            continue
        p0, p1 = separation[start], separation[start + 1]
        step = p1 - p0
        length_sq = float(step @ step)
        fraction = 0.0 if length_sq == 0 else float(np.clip(-(p0 @ step) / length_sq, 0.0, 1.0))
        distance = float(np.linalg.norm(p0 + fraction * step))
        if distance < best_distance:
            best_distance = distance
            best_time = float(times[start] + fraction * (times[start + 1] - times[start]))
    midpoint = (_position_at(scene.paths[i], times, best_time) + _position_at(scene.paths[j], times, best_time)) / 2
    return best_time, best_distance, midpoint


def _position_at(path: FloatArray, times: FloatArray, time_s: float) -> FloatArray:
    return np.array([np.interp(time_s, times, path[:, 0]), np.interp(time_s, times, path[:, 1])])


def _kind_and_participants(a: TrackedObject, b: TrackedObject) -> tuple[WarningKind, tuple[TrackedObject, ...]]:
    if is_vehicle(a) and is_vehicle(b):
        return WarningKind.CROSSING, ((a, b) if a.track_id <= b.track_id else (b, a))
    return WarningKind.VULNERABLE_ROAD_USER, _vehicle_first(a, b)


def _extended_path(scene: _Scene, index: int) -> tuple[FloatArray, FloatArray]:
    """Predicted centre path with a stub behind and ahead for the body, and the distance of each point.

    Distances are along the path from the current position (negative behind it); consecutive
    duplicate points (a stopped road user) are dropped.
    """
    track = scene.tracks[index]
    path, distance = scene.paths[index], scene.distance[index]
    keep = np.concatenate([[True], np.diff(distance) > 1e-6])
    path, distance = path[keep], distance[keep]
    stub = track.length_m / 2 + PATH_EXTENSION_M
    back = np.array(heading_unit_vector(scene.headings[index]))
    if len(path) >= 2:
        step = path[-1] - path[-2]
        ahead = step / max(float(np.linalg.norm(step)), 1e-9)
    else:
        ahead = back
    points = np.vstack([path[0] - back * stub, path, path[-1] + ahead * stub])
    along = np.concatenate([[-stub], distance, [distance[-1] + stub]])
    return points, along


def _path_crossing(scene: _Scene, i: int, j: int) -> tuple[FloatArray, float, float, float] | None:
    """First point where the two extended paths cross: (point, distance along a, along b, angle)."""
    points_a, along_a = _extended_path(scene, i)
    points_b, along_b = _extended_path(scene, j)
    start_a, step_a = points_a[:-1], np.diff(points_a, axis=0)
    start_b, step_b = points_b[:-1], np.diff(points_b, axis=0)
    # Segment-segment intersection: start_a + u step_a = start_b + v step_b for all pairs at once.
    denominator = step_a[:, None, 0] * step_b[None, :, 1] - step_a[:, None, 1] * step_b[None, :, 0]
    offset = start_b[None, :, :] - start_a[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (offset[..., 0] * step_b[None, :, 1] - offset[..., 1] * step_b[None, :, 0]) / denominator
        v = (offset[..., 0] * step_a[:, None, 1] - offset[..., 1] * step_a[:, None, 0]) / denominator
    hits = (np.abs(denominator) > 1e-12) & (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
    if not hits.any():
        return None
    segment_a, segment_b = (int(n) for n in np.argwhere(hits)[0])  # first along a's path
    fraction_a, fraction_b = float(u[segment_a, segment_b]), float(v[segment_a, segment_b])
    point = start_a[segment_a] + fraction_a * step_a[segment_a]
    distance_a = along_a[segment_a] + fraction_a * (along_a[segment_a + 1] - along_a[segment_a])
    distance_b = along_b[segment_b] + fraction_b * (along_b[segment_b + 1] - along_b[segment_b])
    direction_a, direction_b = step_a[segment_a], step_b[segment_b]
    angle = math.atan2(
        float(direction_a[0] * direction_b[1] - direction_a[1] * direction_b[0]), float(direction_a @ direction_b)
    )
    return point, float(distance_a), float(distance_b), angle


def _occupation(
    distance: FloatArray, times: FloatArray, along_m: float, extent_m: float
) -> tuple[float, float, float] | None:
    """(enter, leave, centre) times of a body whose centre covers `distance` (per time) and passes a
    point `along_m` ahead, occupying it while within `extent_m` of it; None if it does not get there
    in the horizon. leave is math.inf when it is still there at the end (e.g. stopped on it)."""
    enter = _time_to_reach(distance, times, along_m - extent_m)
    if enter is None:
        return None
    leave = _time_to_reach(distance, times, along_m + extent_m)
    centre = _time_to_reach(distance, times, along_m)
    return enter, math.inf if leave is None else leave, enter if centre is None else centre


def _time_to_reach(distance: FloatArray, times: FloatArray, target_m: float) -> float | None:
    if target_m <= 0:
        return 0.0
    k = int(np.searchsorted(distance, target_m, side="left"))
    if k >= len(distance):
        return None
    d0, d1 = distance[k - 1], distance[k]
    return float(times[k - 1] + (times[k] - times[k - 1]) * (target_m - d0) / (d1 - d0))


def _vehicle_first(a: TrackedObject, b: TrackedObject) -> tuple[TrackedObject, TrackedObject]:
    return (a, b) if is_vehicle(a) else (b, a)


# --- over time: turn rates, red-light entries, blocked junctions -------------------------------


@dataclass
class _TrackMemory:
    headings: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=32))
    turn_start_heading_deg: float | None = None
    previous_lane_id: str | None = None
    origin_lane_id: str | None = None
    previous_lane_red: bool = False
    # The stop line it crossed on red, while it is in the junction.
    ran_red_at: StopLine | None = None
    stopped_in_box_since_s: float | None = None


class ConflictDetector:
    """find_conflicts over successive snapshots, plus what needs history.

    Per live track it keeps a short heading history (for the turn rate of the turning-vehicle
    prediction), whether it crossed its stop line on red, and since when it stands in the
    junction box. Memory is dropped for tracks that are gone, so state is bounded by the tracker.
    """

    def __init__(
        self,
        site: SiteConfig,
        config: WarningConfig,
        model: MotionModel = MotionModel.CONSTANT_TURN_RATE,
    ) -> None:
        self.site = site
        self.config = config
        self.model = model
        self.geometry = JunctionGeometry(site)
        self._memory: dict[int, _TrackMemory] = {}
        self._last_now_s: float | None = None
        # Lanes of protected/permissive lefts and their group: such a left waits in the box for a
        # gap under its flashing yellow arrow (a "sneaker"), which is not a blocked junction.
        permissive = {group.id for group in site.signal_groups if group.permissive_with is not None}
        self._permissive_group_of_lane = {
            lane.id: lane.signal_group for lane in site.lanes if lane.signal_group in permissive
        }

    @property
    def remembered_tracks(self) -> int:
        return len(self._memory)

    def update(self, tracks: Sequence[TrackedObject], signal: SignalState | None, now_s: float) -> list[Conflict]:
        if self._last_now_s is not None and now_s < self._last_now_s:
            self._memory.clear()  # the clock went back (replay restart): history is meaningless
        self._last_now_s = now_s
        groups = {group.signal_group: group for group in signal.groups} if signal is not None else {}
        live = {track.track_id for track in tracks}
        for track_id in [track_id for track_id in self._memory if track_id not in live]:
            del self._memory[track_id]
        in_box = self.geometry.in_box(np.array([[t.x_m, t.y_m] for t in tracks]).reshape(-1, 2))
        hints: dict[int, MotionHint] = {}
        history: list[Conflict] = []
        for track, inside in zip(tracks, in_box.tolist(), strict=True):
            memory = self._memory.setdefault(track.track_id, _TrackMemory())
            hints[track.track_id] = self._hint(track, memory, groups, inside, now_s)
            if memory.ran_red_at is not None:
                history.append(_ran_red(track, memory.ran_red_at))
            conflict = self._stopped_in_junction(track, memory, groups, inside, now_s)
            if conflict is not None:
                history.append(conflict)
        conflicts = find_conflicts(
            tracks, signal, self.site, self.config, now_s, self.model, geometry=self.geometry, hints=hints
        )
        return sorted([*conflicts, *history], key=lambda c: (c.kind.value, c.key[1]))

    def _hint(
        self,
        track: TrackedObject,
        memory: _TrackMemory,
        groups: Mapping[str, SignalGroupState],
        inside_box: bool,
        now_s: float,
    ) -> MotionHint:
        # Red-light entry: the lane id disappears when the track passes its stop line.
        previous_lane = memory.previous_lane_id
        if track.lane_id is None and previous_lane is not None and memory.previous_lane_red and is_vehicle(track):
            if track.speed_mps >= self.site.tracking.queue_speed_mps:  # not a stopped car's jitter at the line
                memory.ran_red_at = self.geometry.stop_lines.get(previous_lane)
        elif track.lane_id is not None or not inside_box:
            memory.ran_red_at = None
        memory.previous_lane_red = False
        if track.lane_id is not None:
            line = self.geometry.stop_lines.get(track.lane_id)
            group = groups.get(line.signal_group) if line is not None else None
            memory.previous_lane_red = group is not None and group.indication in RED_INDICATIONS
            memory.origin_lane_id = track.lane_id
        elif not inside_box:
            memory.origin_lane_id = None  # through the junction and out on a leg
        memory.previous_lane_id = track.lane_id
        estimated = self._estimated_turn(track, memory, now_s)
        origin = memory.origin_lane_id if track.lane_id is None else None
        # The lane says where it is going; an ambiguous swing is a lane change or tracker noise.
        intent = (self._turn_intent(track, origin) or _STRAIGHT_ON) if origin is not None else (*estimated, None)
        yaw_rate, remaining_turn, heading = intent
        return MotionHint(yaw_rate, remaining_turn, memory.ran_red_at is not None, heading, memory.origin_lane_id)

    def _turn_intent(self, track: TrackedObject, origin_lane_id: str) -> tuple[float, float, float | None] | None:
        """(yaw rate °/s, turn left °, heading °) of a vehicle in the junction from the lane it came from.

        A left-only lane turns left; a through-and-right lane turns right once the vehicle has swung
        TURN_INTENT_DEG to the right, else it goes straight along the lane. None: no idea (fall back
        to the tracked turn rate).
        """
        line = self.geometry.stop_lines.get(origin_lane_id)
        movements = self.geometry.movements_of_lane.get(origin_lane_id)
        if line is None or movements is None or not (is_vehicle(track) or track.road_user is RoadUserType.BICYCLE):
            return None
        swung = (track.heading_deg - line.heading_deg + 180.0) % 360.0 - 180.0  # > 0: to the right
        turns_left = Movement.LEFT in movements and (movements <= TURNING_LEFT or swung < -TURN_INTENT_DEG)
        turns_right = Movement.RIGHT in movements and (movements == {Movement.RIGHT} or swung > TURN_INTENT_DEG)
        if turns_left or turns_right:
            sign, radius = (-1.0, LEFT_TURN_RADIUS_M) if turns_left else (1.0, RIGHT_TURN_RADIUS_M)
            turned = float(np.clip(sign * swung, 0.0, 90.0))
            remaining = 90.0 - turned
            heading = (line.heading_deg + sign * turned) % 360.0
            if remaining < TURN_INTENT_DEG:
                return 0.0, math.inf, (line.heading_deg + sign * 90.0) % 360.0  # on its way out
            return sign * math.degrees(track.speed_mps / radius), remaining, heading
        if Movement.THROUGH in movements and abs(swung) <= THROUGH_MAX_SWING_DEG:
            return 0.0, math.inf, line.heading_deg
        return None

    def _estimated_turn(self, track: TrackedObject, memory: _TrackMemory, now_s: float) -> tuple[float, float]:
        """(yaw rate °/s, heading change left in this turn °) from the tracked heading history."""
        turns_like_a_vehicle = is_vehicle(track) or track.road_user is RoadUserType.BICYCLE
        if track.speed_mps < YAW_MIN_SPEED_MPS or not turns_like_a_vehicle:
            memory.headings.clear()
            memory.turn_start_heading_deg = None
            return 0.0, math.inf
        memory.headings.append((now_s, track.heading_deg))
        while len(memory.headings) > 1 and now_s - memory.headings[1][0] >= YAW_WINDOW_S:
            memory.headings.popleft()
        then_s, then_deg = memory.headings[0]
        if now_s - then_s < YAW_WINDOW_S - 1e-6:
            return 0.0, math.inf
        change = (track.heading_deg - then_deg + 180.0) % 360.0 - 180.0
        yaw_rate = change / (now_s - then_s)
        if abs(yaw_rate) < YAW_DEADBAND_DPS:
            memory.turn_start_heading_deg = None
            return 0.0, math.inf
        if memory.turn_start_heading_deg is None:
            memory.turn_start_heading_deg = then_deg
        turned = abs((track.heading_deg - memory.turn_start_heading_deg + 180.0) % 360.0 - 180.0)
        return float(np.clip(yaw_rate, -YAW_MAX_DPS, YAW_MAX_DPS)), max(0.0, MAX_TURN_DEG - turned)

    def _stopped_in_junction(
        self,
        track: TrackedObject,
        memory: _TrackMemory,
        groups: Mapping[str, SignalGroupState],
        inside: bool,
        now_s: float,
    ) -> Conflict | None:
        standing = is_vehicle(track) and track.lane_id is None and inside
        if (
            not standing
            or track.speed_mps >= self.site.tracking.queue_speed_mps
            or self._waiting_to_turn(memory, groups)
        ):
            memory.stopped_in_box_since_s = None
            return None
        if memory.stopped_in_box_since_s is None:
            memory.stopped_in_box_since_s = now_s
        if now_s - memory.stopped_in_box_since_s < self.config.stopped_in_junction_s:
            return None
        return Conflict(WarningKind.STOPPED_IN_JUNCTION, Severity.WARNING, None, track.x_m, track.y_m, (track,))

    def _waiting_to_turn(self, memory: _TrackMemory, groups: Mapping[str, SignalGroupState]) -> bool:
        """A permissive left in the box while its arrow (or the yellow after it) still shows."""
        group_id = self._permissive_group_of_lane.get(memory.origin_lane_id or "")
        group = groups.get(group_id) if group_id is not None else None
        return group is not None and group.indication in (Indication.FLASHING_YELLOW, Indication.YELLOW)


def _ran_red(track: TrackedObject, line: StopLine) -> Conflict:
    """A vehicle in the junction that crossed its stop line on red: a violation happening now."""
    return Conflict(
        WarningKind.RED_LIGHT_VIOLATION,
        Severity.CRITICAL,
        0.0,
        line.x_m,
        line.y_m,
        (track,),
        signal_violation=True,
    )
