"""The interval state machine: per group green, yellow, all-red, walk and pedestrian clearance timing.

`IntervalMachine` holds every group's indication and since when (`GroupRuntime`), which stage is
served or cleared to (`Phase`), and moves the groups through their intervals: it runs the timers,
begins and terminates stages, and knows the earliest time the served stage may end (minimum green
and pedestrian service) and when a clearance is complete. It decides nothing: when a stage ends and
what comes next is the strategy's and the priority service's choice, made by the controller.

The phase plan is passed to every call instead of being held, so the controller's plan is the only
one in use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from rsu_contracts.messages.signal import Indication, SignalEvent
from signal_control.events import AtspmEvent, signal_event
from signal_control.phasing import GroupTiming, PhasePlan
from signal_control.strategies import Termination

_TERMINATION_EVENT = {
    Termination.GAP_OUT: AtspmEvent.PHASE_GAP_OUT,
    Termination.MAX_OUT: AtspmEvent.PHASE_MAX_OUT,
    Termination.FORCE_OFF: AtspmEvent.PHASE_FORCE_OFF,
}


class Phase(Enum):
    STARTUP = "startup"
    SERVING = "serving"
    CLEARING = "clearing"  # leaving groups run their change and all-red intervals
    FLASH = "flash"


@dataclass
class GroupRuntime:
    timing: GroupTiming
    indication: Indication
    since_s: float
    called: bool = False
    # True between the end of yellow and the end of the group's all-red (ATSPM 10 -> 11).
    in_red_clearance: bool = False


def set_indication(group: GroupRuntime, indication: Indication, now_s: float) -> None:
    group.indication = indication
    group.since_s = now_s


class IntervalMachine:
    """The groups' intervals and which stage is served, started, or cleared to."""

    def __init__(self, timings: Mapping[str, GroupTiming]) -> None:
        self.groups = {group_id: GroupRuntime(timing, Indication.RED, 0.0) for group_id, timing in timings.items()}
        self.phase = Phase.STARTUP
        self.startup_until_s = 0.0
        self.stage = 0  # the stage being served, or being left while clearing
        self.target_stage = 0  # the stage the controller is clearing to
        self.stage_start_s = 0.0
        # Counts rotations through the stages (transit priority adjusts at most once per cycle).
        self.cycle = 0

    def current_or_target(self) -> int:
        return self.stage if self.phase is Phase.SERVING else self.target_stage

    # -- phase changes -----------------------------------------------------------------------------

    def restart(self, now_s: float, startup_all_red_s: float) -> None:
        """All groups red for the start-up all-red, then the first stage."""
        for group in self.groups.values():
            group.indication = Indication.RED
            group.since_s = now_s
            group.in_red_clearance = False
        self.phase = Phase.STARTUP
        self.startup_until_s = now_s + startup_all_red_s
        self.stage = 0
        self.target_stage = 0

    def enter_flash(self, now_s: float) -> None:
        self.phase = Phase.FLASH
        for group in self.groups.values():
            set_indication(group, Indication.FLASHING_RED, now_s)
            group.in_red_clearance = False

    def run_timers(self, now_s: float, events: list[SignalEvent]) -> None:
        """End the walks, pedestrian clearances, yellows and all-reds whose time has run out."""
        for group_id, group in self.groups.items():
            timing = group.timing
            elapsed_s = now_s - group.since_s
            if timing.is_pedestrian:
                if group.indication is Indication.GREEN and elapsed_s >= timing.min_green_s:
                    set_indication(group, Indication.PED_CLEARANCE, now_s)
                    events.append(signal_event(now_s, AtspmEvent.PEDESTRIAN_BEGIN_CLEARANCE, group_id))
                elif group.indication is Indication.PED_CLEARANCE and elapsed_s >= timing.change_interval_s:
                    set_indication(group, Indication.RED, now_s)
                    events.append(signal_event(now_s, AtspmEvent.PEDESTRIAN_BEGIN_SOLID_DONT_WALK, group_id))
            elif group.indication is Indication.YELLOW and elapsed_s >= timing.change_interval_s:
                set_indication(group, Indication.RED, now_s)
                group.in_red_clearance = True
                events.append(signal_event(now_s, AtspmEvent.PHASE_END_YELLOW_CLEARANCE, group_id))
                events.append(signal_event(now_s, AtspmEvent.PHASE_BEGIN_RED_CLEARANCE, group_id))
            elif group.in_red_clearance and elapsed_s >= timing.all_red_s:
                group.in_red_clearance = False
                events.append(signal_event(now_s, AtspmEvent.PHASE_END_RED_CLEARANCE, group_id))

    def ready_for_target_stage(self, plan: PhasePlan, now_s: float) -> bool:
        if self.phase is Phase.STARTUP:
            return now_s >= self.startup_until_s
        return self.phase is Phase.CLEARING and self.clearance_complete(plan, now_s, self.target_stage)

    def clearance_complete(self, plan: PhasePlan, now_s: float, target: int) -> bool:
        """Every group outside the target stage is red and has been for its all-red time.

        Conflicting groups are never in the same stage, so this covers every conflict of every
        group about to turn green.
        """
        staying = plan.stages[target].group_ids
        return all(
            group.indication is Indication.RED and now_s - group.since_s >= group.timing.all_red_s
            for group_id, group in self.groups.items()
            if group_id not in staying
        )

    def begin_stage(
        self, plan: PhasePlan, now_s: float, index: int, serves_every_stage: bool, events: list[SignalEvent]
    ) -> None:
        """Green for the stage's vehicle groups; walk for its pedestrian groups that are called
        (or all of them when the strategy serves every stage regardless of calls)."""
        for group_id in plan.stages[index].group_ids:
            group = self.groups[group_id]
            if group.indication is not Indication.RED:
                continue  # served by the previous stage too: it stays green
            if group.timing.is_pedestrian:
                if group.called or serves_every_stage:
                    self.begin_walk(now_s, group_id, events)
            else:
                set_indication(group, Indication.GREEN, now_s)
                group.called = False
                group.in_red_clearance = False
                events.append(signal_event(now_s, AtspmEvent.PHASE_BEGIN_GREEN, group_id))
        if index <= self.stage:
            self.cycle += 1  # the rotation wrapped round: a new cycle
        self.phase = Phase.SERVING
        self.stage = index
        self.target_stage = index
        self.stage_start_s = now_s

    def begin_walk(self, now_s: float, group_id: str, events: list[SignalEvent]) -> None:
        group = self.groups[group_id]
        set_indication(group, Indication.GREEN, now_s)
        group.called = False
        events.append(signal_event(now_s, AtspmEvent.PEDESTRIAN_BEGIN_WALK, group_id))

    def may_turn_green(self, plan: PhasePlan, group_id: str, now_s: float) -> bool:
        for other in plan.conflicts_of[group_id]:
            group = self.groups[other]
            if group.indication is not Indication.RED or now_s - group.since_s < group.timing.all_red_s:
                return False
        return True

    def terminate(
        self,
        plan: PhasePlan,
        now_s: float,
        termination: Termination | None,
        target: int,
        events: list[SignalEvent],
    ) -> None:
        """End the served stage towards `target`: its leaving groups begin their change interval."""
        staying = plan.stages[target].group_ids
        for group_id in plan.stages[self.stage].group_ids:
            group = self.groups[group_id]
            if group_id in staying or group.indication is not Indication.GREEN:
                continue
            if group.timing.is_pedestrian:
                # Unreachable while the min-end rule holds; kept so a walk can never end abruptly.
                set_indication(group, Indication.PED_CLEARANCE, now_s)
                events.append(signal_event(now_s, AtspmEvent.PEDESTRIAN_BEGIN_CLEARANCE, group_id))
                continue
            if termination is not None:
                events.append(signal_event(now_s, _TERMINATION_EVENT[termination], group_id))
            events.append(signal_event(now_s, AtspmEvent.PHASE_GREEN_TERMINATION, group_id))
            events.append(signal_event(now_s, AtspmEvent.PHASE_BEGIN_YELLOW_CLEARANCE, group_id))
            set_indication(group, Indication.YELLOW, now_s)
        self.phase = Phase.CLEARING
        self.target_stage = target

    # -- timing of the served stage ----------------------------------------------------------------

    def stage_min_end_s(self, plan: PhasePlan, target: int | None = None) -> float:
        """Earliest end of the current stage: every vehicle min green and every pedestrian walk
        and clearance of the stage must have run out. Towards ``target``, only the groups that
        leave count: a group the target keeps green runs its minimum out there (dual ring)."""
        end_s = self.stage_start_s
        staying = plan.stages[target].group_ids if target is not None else frozenset()
        for group_id in plan.stages[self.stage].group_ids:
            if group_id in staying:
                continue
            group = self.groups[group_id]
            timing = group.timing
            if group.indication is not Indication.GREEN and group.indication is not Indication.PED_CLEARANCE:
                continue
            if not timing.is_pedestrian:
                end_s = max(end_s, group.since_s + timing.min_green_s)
            elif group.indication is Indication.GREEN:
                end_s = max(end_s, group.since_s + timing.min_green_s + timing.change_interval_s)
            else:
                end_s = max(end_s, group.since_s + timing.change_interval_s)
        return end_s

    def min_end_by_target(self, plan: PhasePlan) -> dict[int, float]:
        """Earliest end of the current stage towards each other stage."""
        return {index: self.stage_min_end_s(plan, index) for index in range(len(plan.stages)) if index != self.stage}

    def earliest_change_s(self, plan: PhasePlan, min_end_by_target: Mapping[int, float] | None = None) -> float:
        """Earliest time the current stage can change to any other stage."""
        ends = self.min_end_by_target(plan) if min_end_by_target is None else min_end_by_target
        return min(ends.values(), default=self.stage_min_end_s(plan))

    def group_earliest_end_s(self, plan: PhasePlan, group_id: str, min_end_by_target: Mapping[int, float]) -> float:
        """Earliest end of one green group: the earliest change to a stage without it."""
        return min(
            (end_s for index, end_s in min_end_by_target.items() if group_id not in plan.stages[index].group_ids),
            default=self.stage_min_end_s(plan),
        )

    def clearance_end_s(self, plan: PhasePlan, target: int) -> float:
        """When every group outside the target stage will have run its change and all-red."""
        staying = plan.stages[target].group_ids
        end_s = 0.0
        for group_id, group in self.groups.items():
            if group_id in staying:
                continue
            timing = group.timing
            if group.indication is Indication.RED:
                end_s = max(end_s, group.since_s + timing.all_red_s)
            elif group.indication in (Indication.YELLOW, Indication.PED_CLEARANCE):
                end_s = max(end_s, group.since_s + timing.change_interval_s + timing.all_red_s)
            elif timing.is_pedestrian:  # walking: walk, clearance and all-red still to run
                end_s = max(end_s, group.since_s + timing.min_green_s + timing.change_interval_s + timing.all_red_s)
        return end_s

    def stage_for_group(self, plan: PhasePlan, group_id: str) -> int:
        """The stage being served if it contains the group, else the next one in rotation that does."""
        count = len(plan.stages)
        start = self.stage if self.phase is Phase.SERVING else self.target_stage
        for offset in range(count):
            index = (start + offset) % count
            if group_id in plan.stages[index].group_ids:
                return index
        raise ValueError(f"no stage serves signal group {group_id!r}")  # the site validator prevents this
