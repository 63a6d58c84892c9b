"""SPaT timing: the earliest, latest and most likely end of every group's current indication.

From the interval machine's state and the strategy's expectations, `group_states` projects the
stage being served (or cleared to) and the next start of every stage in serving order, and gives
each group its `SignalGroupState` with min / max / likely end times. `with_permissive_display`
then adds the permissive lefts' flashing yellow arrows, timed like the partner they follow.
Pure reads: nothing here changes the controller's state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rsu_contracts.messages.signal import Indication, SignalGroupState
from signal_control.intervals import GroupRuntime, IntervalMachine, Phase
from signal_control.permissive import displayed as permissive_display
from signal_control.phasing import PhasePlan
from signal_control.strategies import Decision, Strategy


@dataclass(frozen=True)
class Window:
    """Earliest, latest and most likely time of one future change."""

    earliest_s: float
    latest_s: float
    likely_s: float


def fixed_window(time_s: float) -> Window:
    return Window(time_s, time_s, time_s)


def flash_states(now_s: float, groups: Mapping[str, GroupRuntime]) -> list[SignalGroupState]:
    """Flash lasts until an operator resets it: no change is scheduled."""
    return [
        SignalGroupState(
            signal_group=group_id,
            indication=group.indication,
            since_s=group.since_s,
            min_end_time_s=now_s,
            max_end_time_s=now_s,
            likely_time_s=now_s,
        )
        for group_id, group in groups.items()
    ]


def group_states(
    plan: PhasePlan,
    intervals: IntervalMachine,
    now_s: float,
    strategy: Strategy,
    stage_calls: tuple[bool, ...],
    decision: Decision | None,
    hold_until_s: float | None,
) -> list[SignalGroupState]:
    """Every group's protected indication with its end window (outside flash).

    `hold_until_s` is a priority hold of the served stage beyond its max green."""
    # While serving, a group may end before the stage's full minimum when the next stage keeps
    # the others green (dual ring): each green group's earliest end is its own.
    min_end_by_target = intervals.min_end_by_target(plan) if intervals.phase is Phase.SERVING else None
    served_end, upcoming = _timeline(
        plan, intervals, now_s, strategy, stage_calls, decision, min_end_by_target, hold_until_s
    )
    states = []
    for group_id, group in intervals.groups.items():
        window = _group_window(plan, now_s, group_id, group, served_end, upcoming)
        if group.indication is Indication.GREEN and not group.timing.is_pedestrian:
            if min_end_by_target is not None:
                earliest_s = max(window.earliest_s, intervals.group_earliest_end_s(plan, group_id, min_end_by_target))
            else:
                # Green on into the stage being cleared to: it may end once that stage has
                # begun and its own minimum has run.
                earliest_s = max(upcoming[0][1].earliest_s, group.since_s + group.timing.min_green_s)
            window = Window(earliest_s, window.latest_s, window.likely_s)
        earliest = max(now_s, window.earliest_s)
        latest = max(earliest, window.latest_s)
        likely = min(latest, max(earliest, window.likely_s))
        states.append(
            SignalGroupState(
                signal_group=group_id,
                indication=group.indication,
                since_s=group.since_s,
                min_end_time_s=earliest,
                max_end_time_s=latest,
                likely_time_s=likely,
            )
        )
    return states


def with_permissive_display(
    plan: PhasePlan,
    now_s: float,
    states: list[SignalGroupState],
    shown: Mapping[str, Indication],
    shown_since_s: Mapping[str, float],
) -> list[SignalGroupState]:
    """The states as shown: permissive lefts get their flashing yellow arrow or permissive yellow,
    timed like the partner whose green or yellow they follow. `shown` / `shown_since_s` are what
    each group showed at the last step, and since when."""
    protected = {state.signal_group: state.indication for state in states}
    displayed = permissive_display(plan, protected, shown)
    if displayed == protected:
        return states
    by_group = {state.signal_group: state for state in states}
    result = []
    for state in states:
        indication = displayed[state.signal_group]
        partner_id = plan.groups[state.signal_group].permissive_with
        if indication is state.indication or partner_id is None:
            result.append(state)
            continue
        partner = by_group[partner_id]
        unchanged = shown.get(state.signal_group) is indication
        result.append(
            state.model_copy(
                update={
                    "indication": indication,
                    "since_s": shown_since_s.get(state.signal_group, now_s) if unchanged else now_s,
                    "min_end_time_s": partner.min_end_time_s,
                    "max_end_time_s": partner.max_end_time_s,
                    "likely_time_s": partner.likely_time_s,
                }
            )
        )
    return result


def _group_window(
    plan: PhasePlan,
    now_s: float,
    group_id: str,
    group: GroupRuntime,
    served_end: Window,
    upcoming: list[tuple[int, Window]],
) -> Window:
    timing = group.timing
    if group.indication is Indication.GREEN:
        if timing.is_pedestrian:
            return fixed_window(group.since_s + timing.min_green_s)
        return served_end
    if group.indication in (Indication.YELLOW, Indication.PED_CLEARANCE):
        return fixed_window(group.since_s + timing.change_interval_s)
    # Red: the next start of a stage that serves this group.
    for stage_index, start in upcoming:
        if group_id in plan.stages[stage_index].group_ids:
            return start
    return fixed_window(now_s)  # unreachable: the site validator makes every group served


def _timeline(
    plan: PhasePlan,
    intervals: IntervalMachine,
    now_s: float,
    strategy: Strategy,
    stage_calls: tuple[bool, ...],
    decision: Decision | None,
    min_end_by_target: Mapping[int, float] | None,
    hold_until_s: float | None,
) -> tuple[Window, list[tuple[int, Window]]]:
    """The end of the stage being served (or cleared to), and the next start of every stage
    in serving order. Earliest: only called stages, at min green; latest: every stage at max
    green; likely: called stages at the strategy's expected green."""
    stages = plan.stages
    count = len(stages)
    serving = intervals.phase is Phase.SERVING
    upcoming: list[tuple[int, Window]] = []
    if serving:
        anchor = intervals.stage
        min_end = max(now_s, intervals.earliest_change_s(plan, min_end_by_target))
        max_end = max(min_end, intervals.stage_start_s + stages[anchor].max_green_s, hold_until_s or 0.0)
        likely_remaining_s = decision.likely_remaining_s if decision is not None else 0.0
        served_end = Window(min_end, max_end, now_s + likely_remaining_s)
    else:
        anchor = intervals.target_stage
        start_s = (
            intervals.startup_until_s if intervals.phase is Phase.STARTUP else intervals.clearance_end_s(plan, anchor)
        )
        start_s = max(now_s, start_s)
        upcoming.append((anchor, fixed_window(start_s)))
        min_green = _min_green_when_served(plan, intervals.groups, anchor, strategy)
        served_end = Window(
            start_s + min_green,
            start_s + max(min_green, stages[anchor].max_green_s),
            start_s + max(min_green, strategy.expected_green_s(anchor)),
        )
    earliest, latest, likely = served_end.earliest_s, served_end.latest_s, served_end.likely_s
    earliest_from = likely_from = latest_from = anchor
    for offset in range(1, count + 1 if serving else count):
        index = (anchor + offset) % count
        start = Window(
            earliest + plan.transition_clearance_s(earliest_from, index),
            latest + plan.transition_clearance_s(latest_from, index),
            likely + plan.transition_clearance_s(likely_from, index),
        )
        upcoming.append((index, start))
        latest = start.latest_s + stages[index].max_green_s
        latest_from = index
        if stage_calls[index]:
            min_green = _min_green_when_served(plan, intervals.groups, index, strategy)
            earliest = start.earliest_s + min_green
            likely = start.likely_s + max(min_green, strategy.expected_green_s(index))
            earliest_from = likely_from = index
    return served_end, upcoming


def _min_green_when_served(
    plan: PhasePlan, groups: Mapping[str, GroupRuntime], index: int, strategy: Strategy
) -> float:
    stage = plan.stages[index]
    pedestrians_called = any(groups[g].called for g in stage.pedestrian_group_ids)
    pedestrians_served = strategy.serves_every_stage or pedestrians_called
    return stage.min_green_with_pedestrians_s if pedestrians_served else stage.vehicle_min_green_s
