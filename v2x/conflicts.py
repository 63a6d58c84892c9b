"""Conflict detection between tracked road users, and red-light violation prediction.

One call looks at a single snapshot of tracks (all at now_s) and returns the conflicts whose
time to collision (TTC) is below the warning threshold:

- rear-end: two vehicles heading the same way (within 20°), or one standing still (its heading is
  then meaningless), in the same lane or, when a lane is unknown, overlapping laterally. TTC is the
  first predicted time the bumper-to-bumper gap closes; with zero accelerations that is exactly
  gap / closing speed. A follower braking hard enough to stop behind the leader gets no warning,
  nor do two slow vehicles in a queue (both below site.tracking.queue_speed_mps).
- crossing: two vehicles on different headings whose predicted centres come within
  collision_radius_m. TTC is the time to the predicted closest approach; the pair must be closing
  now at min_closing_speed_mps or more, so diverging pairs never warn.
- vulnerable road user: a vehicle against a pedestrian or bicycle, with the rear-end test when they
  head the same way and the crossing test otherwise. Pairs of VRUs never warn.
- red-light violation: a vehicle approaching its lane's stop line (last centre-line point) that
  needs more than 3.4 m/s² to stop there and is not already braking that hard, and that will cross
  the line while its signal group shows red (or red-yellow) or after its yellow has ended. TTC is
  the time to the stop line.

Severity: TTC < ttc_critical_s is critical, < ttc_warning_s is warning. A predicted red-light
violation within the horizon is at least a warning even when the stop line is further away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rsu.config.model import VEHICLE_TYPES, Lane, SiteConfig, WarningConfig
from rsu.messages.perception import TrackedObject
from rsu.messages.signal import Indication, SignalGroupState, SignalState
from rsu.messages.warnings import Severity, WarningKind
from v2x.prediction import (
    FloatArray,
    KinematicState,
    MotionModel,
    heading_difference_deg,
    heading_unit_vector,
    predict_paths,
    prediction_times,
    time_to_travel,
    travelled_distance,
)

# Pairs heading the same way within this angle are checked for rear-end, not crossing, conflicts.
SAME_DIRECTION_MAX_DEG = 20.0
# A vehicle counts as approaching its stop line when heading this close to the lane direction.
APPROACH_MAX_HEADING_DEG = 45.0
# Maximum comfortable deceleration used to decide whether a vehicle can still stop (GUIDE §3).
COMFORTABLE_DECELERATION_MPS2 = 3.4
# Below this speed a road user's heading says nothing about where it is going.
STATIONARY_SPEED_MPS = 0.5
# Extra lateral tolerance beyond the half-widths for "same lane" when no lane id is known.
LATERAL_MARGIN_M = 0.2
PREDICTION_STEP_S = 0.1
# Pairs per vectorised block in the crossing pre-filter.
PAIR_CHUNK = 4096

RED_INDICATIONS = frozenset({Indication.RED, Indication.RED_YELLOW})


@dataclass(frozen=True)
class Conflict:
    kind: WarningKind
    severity: Severity
    ttc_s: float
    conflict_x_m: float
    conflict_y_m: float
    # Rear-end: (follower, leader); VRU: (vehicle, vulnerable road user); red light: (vehicle,).
    participants: tuple[TrackedObject, ...]

    @property
    def key(self) -> tuple[WarningKind, tuple[int, ...]]:
        """Identity of the conflict across snapshots: kind and the sorted participant track ids."""
        return self.kind, tuple(sorted(p.track_id for p in self.participants))


def severity_for_ttc(ttc_s: float, config: WarningConfig) -> Severity | None:
    if ttc_s < config.ttc_critical_s:
        return Severity.CRITICAL
    if ttc_s < config.ttc_warning_s:
        return Severity.WARNING
    return None


def is_vehicle(track: TrackedObject) -> bool:
    return track.road_user in VEHICLE_TYPES


def find_conflicts(
    tracks: Sequence[TrackedObject],
    signal: SignalState | None,
    site: SiteConfig,
    config: WarningConfig,
    now_s: float,
    model: MotionModel = MotionModel.CONSTANT_ACCELERATION,
) -> list[Conflict]:
    """All conflicts in one snapshot of tracks taken at now_s, sorted by kind and participants."""
    conflicts: list[Conflict] = []
    if signal is not None:
        conflicts.extend(_red_light_violations(tracks, signal, site, config, now_s))
    conflicts.extend(_pair_conflicts(tracks, site, config, model))
    return sorted(conflicts, key=lambda c: (c.kind.value, c.key[1]))


# --- pairs -----------------------------------------------------------------------------------


def _pair_conflicts(
    tracks: Sequence[TrackedObject], site: SiteConfig, config: WarningConfig, model: MotionModel
) -> list[Conflict]:
    if len(tracks) < 2:
        return []
    times = prediction_times(config.horizon_s, PREDICTION_STEP_S)
    paths = predict_paths([KinematicState.from_track(t) for t in tracks], times, model)
    speeds = np.array([t.speed_mps for t in tracks])
    if model is MotionModel.CONSTANT_VELOCITY:
        accelerations = np.zeros(len(tracks))
    else:
        accelerations = np.array([t.acceleration_mps2 for t in tracks])
    distance, _ = travelled_distance(speeds, accelerations, times)
    first, second = _candidate_pairs(tracks, distance[:, -1], config)
    vehicles = np.array([is_vehicle(t) for t in tracks])
    with_vehicle = vehicles[first] | vehicles[second]  # two pedestrians / cyclists: no vehicle to warn
    first, second = first[with_vehicle], second[with_vehicle]
    headings = np.array([t.heading_deg for t in tracks])
    heading_gap = np.abs((headings[first] - headings[second] + 180.0) % 360.0 - 180.0)
    # A standing object's heading is stale or noise: pairs with one are judged along the mover's path.
    standing = np.minimum(speeds[first], speeds[second]) < STATIONARY_SPEED_MPS
    same_direction = (heading_gap <= SAME_DIRECTION_MAX_DEG) | standing

    conflicts: list[Conflict] = []
    queue_speed = site.tracking.queue_speed_mps
    # Both slow: a queue creeping up, never a rear-end warning.
    moving = np.maximum(speeds[first], speeds[second]) >= queue_speed
    for i, j in zip(first[same_direction & moving].tolist(), second[same_direction & moving].tolist(), strict=True):
        conflict = _rear_end(tracks[i], tracks[j], speeds[[i, j]], accelerations[[i, j]], times, config)
        if conflict is not None:
            conflicts.append(conflict)
    crossing_first, crossing_second = _closing_and_near(
        tracks, paths, first[~same_direction], second[~same_direction], config
    )
    for i, j in zip(crossing_first.tolist(), crossing_second.tolist(), strict=True):
        conflict = _crossing(tracks[i], tracks[j], paths[i], paths[j], times, config)
        if conflict is not None:
            conflicts.append(conflict)
    return conflicts


def _candidate_pairs(
    tracks: Sequence[TrackedObject], reach_m: FloatArray, config: WarningConfig
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Pairs (i < j) that could meet within the horizon: current distance below the sum of reaches."""
    positions = np.array([[t.x_m, t.y_m] for t in tracks])
    half_lengths = np.array([t.length_m / 2 for t in tracks])
    separation = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    limit = reach_m[:, None] + reach_m[None, :] + half_lengths[:, None] + half_lengths[None, :]
    limit = limit + config.collision_radius_m
    first, second = np.nonzero(np.triu(separation <= limit, k=1))
    return first, second


def _closing_and_near(
    tracks: Sequence[TrackedObject],
    paths: FloatArray,
    first: npt.NDArray[np.intp],
    second: npt.NDArray[np.intp],
    config: WarningConfig,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Vectorised pre-filter for the crossing test: pairs closing now whose sampled paths come near.

    Only these go through the exact per-pair test, which keeps crowded scenes cheap.
    """
    positions = paths[:, 0, :]
    radians = np.radians([t.heading_deg for t in tracks])
    speeds = np.array([t.speed_mps for t in tracks])
    velocities = np.stack([speeds * np.sin(radians), speeds * np.cos(radians)], axis=-1)
    relative_position = positions[second] - positions[first]
    relative_velocity = velocities[second] - velocities[first]
    range_now = np.linalg.norm(relative_position, axis=-1)
    closing_speed = -np.einsum("ij,ij->i", relative_position, relative_velocity) / np.maximum(range_now, 1e-9)
    closing = closing_speed >= config.min_closing_speed_mps
    first, second = first[closing], second[closing]
    keep = np.zeros(len(first), dtype=bool)
    for start in range(0, len(first), PAIR_CHUNK):  # chunks bound the (pairs, times, 2) temporary
        chunk = slice(start, start + PAIR_CHUNK)
        separation = paths[second[chunk]] - paths[first[chunk]]
        sampled_min = np.linalg.norm(separation, axis=-1).min(axis=1)
        # Between samples the true distance can dip below the sampled one by up to half a step.
        largest_step = np.linalg.norm(np.diff(separation, axis=1), axis=-1).max(axis=1)
        keep[chunk] = sampled_min <= config.collision_radius_m + largest_step / 2
    return first[keep], second[keep]


def _rear_end(
    a: TrackedObject,
    b: TrackedObject,
    speeds: FloatArray,
    accelerations: FloatArray,
    times: FloatArray,
    config: WarningConfig,
) -> Conflict | None:
    if a.lane_id is not None and b.lane_id is not None and a.lane_id != b.lane_id:
        return None  # parallel lanes
    if b.speed_mps < STATIONARY_SPEED_MPS <= a.speed_mps:
        a_follows = True  # only the moving one can run into the other
    elif a.speed_mps < STATIONARY_SPEED_MPS <= b.speed_mps:
        a_follows = False
    else:
        ux, uy = heading_unit_vector(a.heading_deg)
        a_follows = (b.x_m - a.x_m) * ux + (b.y_m - a.y_m) * uy >= 0
    order = (0, 1) if a_follows else (1, 0)  # index 0 of speeds / accelerations is the follower
    follower, leader = (a, b) if a_follows else (b, a)
    fx, fy = heading_unit_vector(follower.heading_deg)
    dx, dy = leader.x_m - follower.x_m, leader.y_m - follower.y_m
    along = dx * fx + dy * fy
    lateral = abs(dx * fy - dy * fx)
    same_lane = follower.lane_id is not None and follower.lane_id == leader.lane_id
    if not same_lane and lateral > (follower.width_m + leader.width_m) / 2 + LATERAL_MARGIN_M:
        return None  # side by side
    gap0 = along - (follower.length_m + leader.length_m) / 2
    if gap0 <= 0:
        return None  # overlapping boxes: a tracker duplicate or merge, and too late to warn anyway
    cos_angle = float(np.cos(np.radians(heading_difference_deg(follower.heading_deg, leader.heading_deg))))

    distance, speed = travelled_distance(speeds[list(order)], accelerations[list(order)], times)
    gap = gap0 + distance[1] * cos_angle - distance[0]
    closed = np.nonzero(gap <= 0)[0]
    if len(closed) == 0:
        return None  # the follower stops or keeps its distance within the horizon
    k = int(closed[0])
    # Linear interpolation between the last open and the first closed sample.
    ttc = float(times[k - 1] + (times[k] - times[k - 1]) * gap[k - 1] / (gap[k - 1] - gap[k]))
    closing_at_contact = float(speed[0, k] - speed[1, k] * cos_angle)
    if closing_at_contact < max(config.min_closing_speed_mps, 1e-6):
        return None
    severity = severity_for_ttc(ttc, config)
    if severity is None:
        return None
    # Where the follower's front meets the leader's rear.
    travel = float(np.interp(ttc, times, distance[1]))
    lx, ly = heading_unit_vector(leader.heading_deg)
    rear = travel - leader.length_m / 2
    kind = WarningKind.REAR_END if is_vehicle(follower) and is_vehicle(leader) else WarningKind.VULNERABLE_ROAD_USER
    participants = (follower, leader) if kind is WarningKind.REAR_END else _vehicle_first(follower, leader)
    return Conflict(kind, severity, ttc, leader.x_m + lx * rear, leader.y_m + ly * rear, participants)


def _crossing(
    a: TrackedObject, b: TrackedObject, path_a: FloatArray, path_b: FloatArray, times: FloatArray, config: WarningConfig
) -> Conflict | None:
    relative_position = np.array([b.x_m - a.x_m, b.y_m - a.y_m])
    range_now = float(np.linalg.norm(relative_position))
    if range_now > 0:
        va, vb = np.array(heading_unit_vector(a.heading_deg)), np.array(heading_unit_vector(b.heading_deg))
        relative_velocity = vb * b.speed_mps - va * a.speed_mps
        range_rate = float(relative_position @ relative_velocity) / range_now
        if -range_rate < config.min_closing_speed_mps:
            return None  # not closing (diverging, parallel or both stopped)

    separation = path_b - path_a
    distances = np.linalg.norm(separation, axis=1)
    k = int(np.argmin(distances))
    if k == 0:
        return None
    t_closest, min_distance = _refine_closest_approach(separation, times, k)
    if min_distance > config.collision_radius_m:
        return None
    severity = severity_for_ttc(t_closest, config)
    if severity is None:
        return None
    pa, pb = _lerp_rows(path_a, times, t_closest), _lerp_rows(path_b, times, t_closest)
    point = (pa + pb) / 2
    if is_vehicle(a) and is_vehicle(b):
        kind = WarningKind.CROSSING
        participants = (a, b) if a.track_id <= b.track_id else (b, a)
    else:
        kind = WarningKind.VULNERABLE_ROAD_USER
        participants = _vehicle_first(a, b)
    return Conflict(kind, severity, t_closest, float(point[0]), float(point[1]), participants)


def _refine_closest_approach(separation: FloatArray, times: FloatArray, k: int) -> tuple[float, float]:
    """(time, distance) of minimum separation near sample k, assuming straight motion between samples."""
    best_time, best_distance = float(times[k]), float(np.linalg.norm(separation[k]))
    for start in (k - 1, k):
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
    return best_time, best_distance


def _lerp_rows(rows: FloatArray, times: FloatArray, t: float) -> FloatArray:
    return np.array([np.interp(t, times, rows[:, 0]), np.interp(t, times, rows[:, 1])])


def _vehicle_first(a: TrackedObject, b: TrackedObject) -> tuple[TrackedObject, TrackedObject]:
    return (a, b) if is_vehicle(a) else (b, a)


# --- red light -------------------------------------------------------------------------------


def _red_light_violations(
    tracks: Sequence[TrackedObject], signal: SignalState, site: SiteConfig, config: WarningConfig, now_s: float
) -> list[Conflict]:
    lanes = {lane.id: lane for lane in site.lanes}
    groups = {group.signal_group: group for group in signal.groups}
    conflicts = []
    for track in tracks:
        if not is_vehicle(track) or track.lane_id not in lanes:
            continue
        lane = lanes[track.lane_id]
        group = groups.get(lane.signal_group)
        if group is None:
            continue
        conflict = _red_light_violation(track, lane, group, config, now_s)
        if conflict is not None:
            conflicts.append(conflict)
    return conflicts


def _red_light_violation(
    track: TrackedObject, lane: Lane, group: SignalGroupState, config: WarningConfig, now_s: float
) -> Conflict | None:
    if group.indication not in RED_INDICATIONS and group.indication is not Indication.YELLOW:
        return None
    (x0, y0), (x1, y1) = lane.centerline_m[-2], lane.centerline_m[-1]
    segment = np.hypot(x1 - x0, y1 - y0)
    ux, uy = (x1 - x0) / segment, (y1 - y0) / segment
    lane_heading = float(np.degrees(np.arctan2(ux, uy))) % 360.0
    if heading_difference_deg(track.heading_deg, lane_heading) > APPROACH_MAX_HEADING_DEG:
        return None
    to_stop_line = (x1 - track.x_m) * ux + (y1 - track.y_m) * uy - track.length_m / 2
    if to_stop_line <= 0 or track.speed_mps <= 0:
        return None  # already across the line (or stopped)
    required_deceleration = track.speed_mps**2 / (2 * to_stop_line)
    if required_deceleration <= COMFORTABLE_DECELERATION_MPS2:
        return None  # can still stop comfortably
    if -track.acceleration_mps2 >= required_deceleration:
        return None  # already braking hard enough to stop at the line
    arrival = time_to_travel(to_stop_line, track.speed_mps, track.acceleration_mps2)
    if arrival is None or arrival > config.horizon_s:
        return None
    time_left = group.likely_time_s - now_s
    # Red: it arrives before the red ends. Yellow: the yellow ends before it arrives.
    arrives_on_red = arrival < time_left if group.indication in RED_INDICATIONS else arrival > time_left
    if not arrives_on_red:
        return None
    severity = severity_for_ttc(arrival, config) or Severity.WARNING
    return Conflict(WarningKind.RED_LIGHT_VIOLATION, severity, arrival, x1, y1, (track,))
