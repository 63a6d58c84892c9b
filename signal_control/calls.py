"""Call latching: which signal groups have a call, from detector demand and pedestrian pushbuttons.

A call is latched on a group that is not being served and kept until the group is served (locking
memory), so a road user seen once is served even if the detector loses it. The calls live on the
interval machine's `GroupRuntime.called`; these functions only set them (the interval machine
clears a call when it serves the group) and say which stages are called.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from rsu_contracts.messages.perception import CrosswalkObservation, LaneObservation
from rsu_contracts.messages.signal import Indication, SignalEvent
from signal_control.events import AtspmEvent, signal_event
from signal_control.intervals import GroupRuntime
from signal_control.phasing import PhasePlan


def lane_has_demand(observation: LaneObservation | None) -> bool:
    if observation is None:
        return False
    return (
        observation.stop_bar_occupied
        or observation.queued_vehicles > 0
        or observation.queue_length_m > 0
        or observation.approaching_vehicles > 0
    )


def latch_call(
    groups: Mapping[str, GroupRuntime], now_s: float, group_id: str, code: AtspmEvent, events: list[SignalEvent]
) -> None:
    """A call for a group not being served, kept until it is (locking memory)."""
    group = groups[group_id]
    if group.called or group.indication is Indication.GREEN:
        return
    group.called = True
    events.append(signal_event(now_s, code, group_id))


def register_detector_calls(
    groups: Mapping[str, GroupRuntime],
    lanes: Mapping[str, LaneObservation],
    crosswalks: Mapping[str, CrosswalkObservation],
    shown: Mapping[str, Indication],
    now_s: float,
    events: list[SignalEvent],
) -> None:
    """Latch a call for each group with demand that is not being served.

    `shown` is what each group displayed at the last step (a permissive left's flashing arrow is
    not one of its own intervals)."""
    for group_id, group in groups.items():
        if shown.get(group_id) is Indication.FLASHING_YELLOW:
            # Turning permissively: a call is left only by vehicles still waiting when the arrow
            # ends (call on red); once the lanes are empty the waiting ones have been served.
            if not any(lane_has_demand(lanes.get(lane)) for lane in group.timing.lane_ids):
                group.called = False
            continue
        if group.called or group.indication is Indication.GREEN:
            continue
        if group.timing.is_pedestrian:
            demand = any(
                (obs := crosswalks.get(cw)) is not None and obs.waiting_pedestrians > 0
                for cw in group.timing.crosswalk_ids
            )
            code = AtspmEvent.PEDESTRIAN_CALL_REGISTERED
        else:
            demand = any(lane_has_demand(lanes.get(lane)) for lane in group.timing.lane_ids)
            code = AtspmEvent.PHASE_CALL_REGISTERED
        if demand:
            latch_call(groups, now_s, group_id, code, events)


def check_pushbuttons(plan: PhasePlan, crosswalk_ids: Collection[str]) -> None:
    unknown = sorted(set(crosswalk_ids) - set(plan.group_of_crosswalk))
    if unknown:
        known = sorted(plan.group_of_crosswalk)
        raise ValueError(f"pushbuttons: unknown crosswalk ids {unknown} (the site has {known})")


def register_pushbuttons(
    plan: PhasePlan,
    groups: Mapping[str, GroupRuntime],
    now_s: float,
    crosswalk_ids: Collection[str],
    events: list[SignalEvent],
) -> None:
    """A pedestrian call for the group of each pressed crosswalk, even while camera data is stale."""
    for crosswalk_id in sorted(set(crosswalk_ids)):
        events.append(signal_event(now_s, AtspmEvent.PEDESTRIAN_DETECTOR_ON, crosswalk_id))
        latch_call(groups, now_s, plan.group_of_crosswalk[crosswalk_id], AtspmEvent.PEDESTRIAN_CALL_REGISTERED, events)


def stage_calls(plan: PhasePlan, groups: Mapping[str, GroupRuntime], serves_every_stage: bool) -> tuple[bool, ...]:
    """Per stage, whether it is called: any of its groups is, or always under a strategy that
    serves every stage."""
    if serves_every_stage:
        return (True,) * len(plan.stages)
    return tuple(any(groups[g].called for g in stage.group_ids) for stage in plan.stages)
