"""Rear-end conflicts: a road user running into one ahead of it heading the same way or standing.

Two road users heading the same way (within SAME_DIRECTION_MAX_DEG), or one standing still (or
two vehicles one of which creeps below tracking.queue_speed_mps), in the same lane or overlapping
laterally, not on opposite sides of one road; this includes a vehicle closing on a cyclist or
pedestrian ahead in its path. TTC is the first predicted time the bumper gap closes (constant
acceleration; a turning follower's predicted arc against a standing obstacle). Warned only when
the follower also needs more than drac_threshold_mps2 to keep the gap open (DRAC follows a braking
leader to its stop), so approaching a stopped queue that can still brake comfortably, following
at equal speed, braking in time and queue discharge never warn. A vehicle running up to a
pedestrian standing in its lane against the signal always warns.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from rsu_contracts.messages.warnings import WarningKind
from v2x.conflicts.scene import Scene
from v2x.conflicts.severity import severity_for_ttc_and_deceleration
from v2x.conflicts.shared import (
    LATERAL_MARGIN_M,
    SAME_DIRECTION_MAX_DEG,
    STATIONARY_SPEED_MPS,
    VULNERABLE_TYPES,
    is_vehicle,
    on_opposite_sides_pairs,
    vehicle_first,
)
from v2x.conflicts.types import Conflict, RearEndContact
from v2x.junction import JunctionGeometry
from v2x.prediction import heading_difference_deg, heading_unit_vector, rear_end_drac


def may_close(
    scene: Scene, geometry: JunctionGeometry, first: npt.NDArray[np.intp], second: npt.NDArray[np.intp]
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
        keep &= ~on_opposite_sides_pairs(geometry.road_sides(positions), first, second)
    return keep


def rear_end_conflict(scene: Scene, i: int, j: int) -> None:
    """Test the pair (i, j) for a rear-end conflict; a warning is appended to scene.conflicts."""
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
    ttc = contact.ttc_s
    cos_angle = contact.heading_cosine
    violation = scene.contexts[order[0]].violates_signal or scene.contexts[order[1]].violates_signal
    drac = rear_end_drac(
        contact.gap_m, follower.speed_mps, leader.speed_mps * cos_angle, scene.accelerations[order[1]] * cos_angle
    )
    vulnerable_ahead = leader.road_user in VULNERABLE_TYPES and is_vehicle(follower)
    if drac <= config.drac_threshold_mps2 and not (violation and vulnerable_ahead):
        return  # the follower can still brake comfortably: no reason to alarm anyone
    severity = severity_for_ttc_and_deceleration(ttc, drac, config)
    if severity is None:
        return
    # Where the follower's front meets the leader's rear.
    travel = float(np.interp(ttc, scene.times, scene.distance[order[1]]))
    lx, ly = heading_unit_vector(scene.headings[order[1]])
    rear = travel - leader.length_m / 2
    kind = WarningKind.REAR_END if is_vehicle(follower) and is_vehicle(leader) else WarningKind.VULNERABLE_ROAD_USER
    participants = (follower, leader) if kind is WarningKind.REAR_END else vehicle_first(follower, leader)
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


def _straight_contact(scene: Scene, order: list[int]) -> RearEndContact | None:
    """A follower closing on a leader ahead in its lane or overlapping it laterally: the bumper gap
    now and the heading cosine, or None if the gap stays open within the horizon."""
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
    return RearEndContact(ttc, gap0, cos_angle)


def _sweep_onto_standing(scene: Scene, mover: int, standing: int) -> RearEndContact | None:
    """A turning road user's predicted path against a standing one: the gap is the path distance to
    the contact, the heading cosine 0 (a standing obstacle does not move away).

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
    return RearEndContact(ttc, path_gap, 0.0)
