"""Crossing conflicts (two vehicles) and vulnerable road user conflicts (a vehicle and a pedestrian
or cyclist) between road users whose predicted paths cross: closest approach, post-encroachment
time (PET) and the deceleration the one who gives way needs.

Warned when the pair is on a collision course (same-time separation below collision_radius_m
within the horizon) and the road user who has to give way (the vehicle in a VRU conflict, else the
later arrival) needs more than drac_threshold_mps2 to let the other clear the crossing area and is
not already creeping; or, when one of them violates its signal, also on a near miss: each occupies
the crossing area for a while (its half-length plus the other's half-width, stretched for shallow
angles), and PET, the gap between the two occupations, is below pet_threshold_s. So a right turner
yielding to pedestrians on a walk signal never warns; a jaywalker in front of a vehicle with green
does, as does a red-light runner crossing the path of traffic that just got green. Never between
lanes of one approach, between vehicles released by signal groups that may be green together (not
a pair in the site's conflicts) on protected movements, or between opposite directions on opposite
sides of one road; the pair must be closing now (min_closing_speed_mps).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from rsu_contracts.messages.perception import TrackedObject
from rsu_contracts.messages.warnings import WarningKind
from v2x.conflicts.scene import Scene
from v2x.conflicts.severity import severity_for_ttc_and_deceleration
from v2x.conflicts.shared import (
    LATERAL_MARGIN_M,
    PATH_EXTENSION_M,
    SAME_DIRECTION_MAX_DEG,
    is_vehicle,
    on_opposite_sides_pairs,
    vehicle_first,
)
from v2x.conflicts.types import ClosestApproach, Conflict, ExtendedPath, Occupation, PairIndices, PathCrossing
from v2x.junction import JunctionGeometry
from v2x.prediction import FloatArray, deceleration_to_stop, deceleration_to_yield, heading_unit_vector

# Pairs heading more against each other than this are kept apart by the road when they drive on
# opposite sides of one leg; beyond HEAD_ON_MIN_DEG also when side by side and not turning.
# Tracked headings (a few degrees of noise) alone cannot separate adjacent opposing lanes.
OPPOSITE_MIN_DEG = 120.0
HEAD_ON_MIN_DEG = 160.0
# Pairs per vectorised block in the pair pre-filter.
PAIR_CHUNK = 4096


def may_cross(
    scene: Scene,
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
    # Vehicle pairs without a signal violator: the signal plan's say (vectorised, no per-pair Python).
    violating = np.array([context.violates_signal for context in scene.contexts], dtype=bool)
    vehicles = np.array([is_vehicle(t) for t in tracks], dtype=bool)
    by_plan = result & vehicles[first] & vehicles[second] & ~(violating[first] | violating[second])
    if by_plan.any():
        released = geometry.released_together_pairs(scene.origin_lanes, first[by_plan], second[by_plan])
        result[by_plan] = ~released
    opposite = np.flatnonzero(result & (heading_gap >= OPPOSITE_MIN_DEG))
    if len(opposite) == 0:
        return result
    sides = geometry.road_sides(np.array([[t.x_m, t.y_m] for t in tracks]))
    result[opposite[on_opposite_sides_pairs(sides, first[opposite], second[opposite])]] = False
    # Side by side and head on: a per-pair test, over at most max_candidate_pairs pairs.
    head_on = opposite[result[opposite] & (heading_gap[opposite] >= HEAD_ON_MIN_DEG)]
    for n in head_on.tolist():
        i, j = int(first[n]), int(second[n])
        if not (scene.turning[i] or scene.turning[j]):
            a, b = tracks[i], tracks[j]
            axis = np.array(heading_unit_vector(scene.headings[i])) - np.array(heading_unit_vector(scene.headings[j]))
            axis /= max(float(np.linalg.norm(axis)), 1e-9)
            dx, dy = b.x_m - a.x_m, b.y_m - a.y_m
            if abs(dx * axis[1] - dy * axis[0]) > (a.width_m + b.width_m) / 2 + LATERAL_MARGIN_M:
                result[n] = False
    return result


def closing_and_overlapping(scene: Scene, first: npt.NDArray[np.intp], second: npt.NDArray[np.intp]) -> PairIndices:
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
    return PairIndices(first[keep], second[keep])


def crossing_conflict(scene: Scene, i: int, j: int) -> None:
    """Test the pair (i, j) for a crossing or VRU conflict; a warning is appended to scene.conflicts."""
    a, b = scene.tracks[i], scene.tracks[j]
    config = scene.config
    if math.hypot(b.x_m - a.x_m, b.y_m - a.y_m) < (a.width_m + b.width_m) / 2:
        return  # overlapping now: a tracker duplicate or split, and too late to warn anyway
    violation = scene.contexts[i].violates_signal or scene.contexts[j].violates_signal
    approach = _closest_approach(scene, i, j)
    collision = approach.time_s > 0 and approach.distance_m <= config.collision_radius_m
    hit = _path_crossing(scene, i, j)
    pet: float | None = None
    if hit is not None:
        along_a, along_b = hit.along_first_m, hit.along_second_m
        sin_angle = max(abs(math.sin(hit.angle_rad)), math.sin(math.radians(SAME_DIRECTION_MAX_DEG)))
        cot_angle = abs(math.cos(hit.angle_rad)) / sin_angle
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
        stop_within = float(np.interp(approach.time_s, scene.times, scene.distance[yielder]))
        drac = deceleration_to_stop(stop_within, scene.tracks[yielder].speed_mps)
        ttc, where = approach.time_s, approach.midpoint_m
    else:
        # Who has to give way: the vehicle against a vulnerable road user, else the later arrival.
        a_yields = is_vehicle(a) if is_vehicle(a) != is_vehicle(b) else (enter_a, centre_a) > (enter_b, centre_b)
        if a_yields:
            drac = deceleration_to_yield(along_a - extent_a, a.speed_mps, leave_b)
        else:
            drac = deceleration_to_yield(along_b - extent_b, b.speed_mps, leave_a)
        ttc = approach.time_s if collision else max(centre_a, centre_b)
        where = hit.point_m
    if not violation:
        yielder_speed = a.speed_mps if a_yields else b.speed_mps
        if drac <= config.drac_threshold_mps2 or yielder_speed < scene.queue_speed_mps:
            return  # the one who gives way can do so comfortably, or is creeping: it is giving way
    severity = severity_for_ttc_and_deceleration(ttc, drac, config)
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


def _closest_approach(scene: Scene, i: int, j: int) -> ClosestApproach:
    """The smallest same-time separation of two predicted centres, when and where it happens."""
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
    return ClosestApproach(best_time, best_distance, midpoint)


def _position_at(path: FloatArray, times: FloatArray, time_s: float) -> FloatArray:
    return np.array([np.interp(time_s, times, path[:, 0]), np.interp(time_s, times, path[:, 1])])


def _kind_and_participants(a: TrackedObject, b: TrackedObject) -> tuple[WarningKind, tuple[TrackedObject, ...]]:
    if is_vehicle(a) and is_vehicle(b):
        return WarningKind.CROSSING, ((a, b) if a.track_id <= b.track_id else (b, a))
    return WarningKind.VULNERABLE_ROAD_USER, vehicle_first(a, b)


def _extended_path(scene: Scene, index: int) -> ExtendedPath:
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
    return ExtendedPath(points, along)


def _path_crossing(scene: Scene, i: int, j: int) -> PathCrossing | None:
    """First point (along i's path) where the two extended paths cross; None if they do not."""
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
    return PathCrossing(point, float(distance_a), float(distance_b), angle)


def _occupation(distance: FloatArray, times: FloatArray, along_m: float, extent_m: float) -> Occupation | None:
    """When a body whose centre covers `distance` (per time) occupies a point `along_m` ahead, i.e. is
    within `extent_m` of it; None if it does not get there in the horizon."""
    enter = _time_to_reach(distance, times, along_m - extent_m)
    if enter is None:
        return None
    leave = _time_to_reach(distance, times, along_m + extent_m)
    centre = _time_to_reach(distance, times, along_m)
    return Occupation(enter, math.inf if leave is None else leave, enter if centre is None else centre)


def _time_to_reach(distance: FloatArray, times: FloatArray, target_m: float) -> float | None:
    if target_m <= 0:
        return 0.0
    k = int(np.searchsorted(distance, target_m, side="left"))
    if k >= len(distance):
        return None
    d0, d1 = distance[k - 1], distance[k]
    return float(times[k - 1] + (times[k] - times[k - 1]) * (target_m - d0) / (d1 - d0))
