"""The signal's say over each road user's prediction in one snapshot, and the red-light violations
it predicts at a yellow.

- a vehicle or bicycle before its stop line travels along its lane (its noisy tracked heading is
  replaced by the lane's direction); at a red (or red-yellow) it is predicted to stop at the line;
  at a yellow too if it can stop comfortably, while one that would need more than
  red_light_deceleration_mps2 and is not braking is a predicted red-light violator;
- a vehicle past its stop line that crossed it on red (MotionHint.entered_on_red) violates its
  signal;
- a pedestrian on a crosswalk walks along it, and violates its signal (jaywalks) when the
  crosswalk shows don't-walk; one in the road outside any crosswalk is a violator too; one on a
  footway or corner is expected to stay there and takes part in no conflict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from rsu_contracts.config.model import WarningConfig
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages.perception import TrackedObject
from rsu_contracts.messages.signal import Indication, SignalGroupState
from rsu_contracts.messages.warnings import Severity, WarningKind
from v2x.conflicts.severity import severity_for_ttc
from v2x.conflicts.shared import RED_INDICATIONS, is_vehicle
from v2x.conflicts.types import (
    NO_HINT,
    ApproachOutcome,
    Conflict,
    MotionHint,
    SignalContext,
    SignalContexts,
)
from v2x.junction import JunctionGeometry, StopLine
from v2x.prediction import deceleration_to_stop, heading_difference_deg, time_to_travel

# A vehicle counts as approaching its stop line when heading this close to the lane direction.
APPROACH_MAX_HEADING_DEG = 45.0
# Maximum comfortable deceleration (GUIDE §3): a driver who can stop with this at a yellow does.
COMFORTABLE_DECELERATION_MPS2 = 3.4
# A vehicle decelerating at half of what it needs to stop, or at this rate, counts as stopping:
# tracked acceleration lags the brake lights by a few tenths of a second.
BRAKING_SHARE = 0.5
BRAKING_MPS2 = 2.0

# No say: travels where it is heading, without a stop.
_FREE = SignalContext()


def signal_contexts(
    tracks: Sequence[TrackedObject],
    groups: Mapping[str, SignalGroupState],
    geometry: JunctionGeometry,
    config: WarningConfig,
    now_s: float,
    hints: Mapping[int, MotionHint],
    queue_speed_mps: float,
) -> SignalContexts:
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
                contexts[index] = SignalContext(violates_signal=jaywalking, path_heading_deg=walking)
            elif road:
                contexts[index] = SignalContext(violates_signal=True)  # in the road, off the crosswalk
            else:
                contexts[index] = SignalContext(in_road=False)
    for index, track in enumerate(tracks):
        if track.road_user is RoadUserType.PEDESTRIAN:
            continue
        line = geometry.stop_lines.get(track.lane_id) if track.lane_id is not None else None
        if line is None:
            if hints.get(track.track_id, NO_HINT).entered_on_red and is_vehicle(track):
                contexts[index] = SignalContext(violates_signal=True)
            continue
        # Perception placed it in the lane: it travels along it (not against it, a wrong-way driver).
        along_lane = heading_difference_deg(track.heading_deg, line.heading_deg) < 90.0
        lane_heading = line.heading_deg if along_lane else None
        group = groups.get(line.signal_group)
        if group is None:
            contexts[index] = SignalContext(path_heading_deg=lane_heading)
            continue
        outcome = _approach(track, line, group, config, now_s, queue_speed_mps)
        context = outcome.context
        contexts[index] = SignalContext(context.stop_within_m, context.violates_signal, True, lane_heading)
        if outcome.conflict is not None:
            conflicts.append(outcome.conflict)
    return SignalContexts(contexts, conflicts)


def _approach(
    track: TrackedObject,
    line: StopLine,
    group: SignalGroupState,
    config: WarningConfig,
    now_s: float,
    queue_speed_mps: float,
) -> ApproachOutcome:
    """A road user in a lane before its stop line: will it stop there, pass legally, or run the red?"""
    free = ApproachOutcome(_FREE, None)
    red = group.indication in RED_INDICATIONS
    if not red and group.indication is not Indication.YELLOW:
        return free
    if heading_difference_deg(track.heading_deg, line.heading_deg) > APPROACH_MAX_HEADING_DEG:
        return free
    to_stop_line = line.distance_ahead_m(track.x_m, track.y_m) - track.length_m / 2
    if to_stop_line <= 0:
        return free  # front already across the line
    hold = ApproachOutcome(SignalContext(stop_within_m=to_stop_line), None)
    if track.speed_mps < queue_speed_mps:
        return hold  # creeping up to the line
    arrival = time_to_travel(to_stop_line, track.speed_mps, track.acceleration_mps2)
    if arrival is None:
        return hold  # braking to a stop before the line
    time_left = group.likely_time_s - now_s
    if red:
        # Predicted to stop: tracked speed lags a late-braking vehicle by a few tenths of a second,
        # which on a steady red makes ordinary stops look like violations. A vehicle that does
        # cross on red is caught at the line (ConflictDetector, entered_on_red).
        return hold if arrival < time_left else free
    if arrival <= time_left:
        return free  # through on yellow
    required = deceleration_to_stop(to_stop_line, track.speed_mps)
    if required <= COMFORTABLE_DECELERATION_MPS2:
        return hold  # a driver who can stop comfortably at a yellow does
    braking = -track.acceleration_mps2 >= min(BRAKING_SHARE * required, BRAKING_MPS2)
    if required <= config.red_light_deceleration_mps2 or braking:
        return free  # dilemma zone, or braking hard already: no call either way
    violator = SignalContext(violates_signal=True)
    if not is_vehicle(track) or arrival > config.horizon_s:
        return ApproachOutcome(violator, None)
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
    return ApproachOutcome(violator, conflict)
