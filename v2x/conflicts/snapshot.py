"""All conflicts in one snapshot of tracks: the signal's say per road user first, then each
candidate pair goes to the rear-end or the crossing test by how their directions relate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from rsu_contracts.config.model import SiteConfig, WarningConfig
from rsu_contracts.messages.perception import TrackedObject
from rsu_contracts.messages.signal import SignalState
from v2x.conflicts.candidates import candidate_pairs
from v2x.conflicts.crossing import closing_and_overlapping, crossing_conflict, may_cross
from v2x.conflicts.limits import SearchCounters, nearest_pairs, nearest_to_junction
from v2x.conflicts.rear_end import may_close, rear_end_conflict
from v2x.conflicts.scene import build_scene
from v2x.conflicts.shared import SAME_DIRECTION_MAX_DEG, STATIONARY_SPEED_MPS, is_vehicle
from v2x.conflicts.signal_context import signal_contexts
from v2x.conflicts.types import Conflict, MotionHint, PairIndices, SignalContext
from v2x.junction import JunctionGeometry
from v2x.prediction import MotionModel


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
    counters: SearchCounters | None = None,
) -> list[Conflict]:
    """All conflicts in one snapshot of tracks taken at now_s, sorted by kind and participants.

    hints (per track id) carry the yaw rate and signal history that a single snapshot lacks; the
    turn-rate model uses the yaw rates and equals constant acceleration without them.

    At most config.max_objects road users (the nearest to the junction), config.max_candidate_pairs
    candidate pairs and config.max_pair_tests exact pair tests (the nearest pairs) are searched;
    what is left out is added to counters.
    """
    geometry = geometry or JunctionGeometry(site)
    hints = hints or {}
    counters = counters if counters is not None else SearchCounters()
    considered = nearest_to_junction(tracks, geometry.centre, config.max_objects)
    if len(considered) < len(tracks):
        counters.count_objects(len(tracks) - len(considered))
        tracks = [tracks[i] for i in considered.tolist()]
    groups = {group.signal_group: group for group in signal.groups} if signal is not None else {}
    signal_say = signal_contexts(tracks, groups, geometry, config, now_s, hints, site.tracking.queue_speed_mps)
    conflicts = signal_say.red_light_conflicts
    conflicts.extend(_pair_conflicts(tracks, signal_say.contexts, geometry, site, config, model, hints, counters))
    return sorted(conflicts, key=lambda c: (c.kind.value, c.key[1]))


def _pair_conflicts(
    tracks: Sequence[TrackedObject],
    contexts: Sequence[SignalContext],
    geometry: JunctionGeometry,
    site: SiteConfig,
    config: WarningConfig,
    model: MotionModel,
    hints: Mapping[int, MotionHint],
    counters: SearchCounters,
) -> list[Conflict]:
    active = [i for i, context in enumerate(contexts) if context.in_road]
    if len(active) < 2:
        return []
    tracks = [tracks[i] for i in active]
    contexts = [contexts[i] for i in active]
    scene = build_scene(tracks, contexts, geometry, site, config, model, hints)
    headings, speeds = scene.headings, scene.speeds

    first, second, left_out = candidate_pairs(tracks, scene.distance[:, -1], config, config.max_candidate_pairs)
    counters.count_pairs(len(first), left_out)
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
    longitudinal[longitudinal] = may_close(scene, geometry, first[longitudinal], second[longitudinal])
    rear_end = PairIndices(first[longitudinal], second[longitudinal])
    keep = ~same_direction & may_cross(scene, geometry, first, second, heading_gap)
    crossing = closing_and_overlapping(scene, first[keep], second[keep])
    # The exact tests are per pair (about a millisecond each): at most max_pair_tests of them.
    (rear_end, crossing), left_out = nearest_pairs(scene.paths[:, 0, :], (rear_end, crossing), config.max_pair_tests)
    counters.count_pair_tests(len(rear_end.first) + len(crossing.first), left_out)
    for i, j in zip(rear_end.first.tolist(), rear_end.second.tolist(), strict=True):
        rear_end_conflict(scene, i, j)
    for i, j in zip(crossing.first.tolist(), crossing.second.tolist(), strict=True):
        crossing_conflict(scene, i, j)
    return scene.conflicts
