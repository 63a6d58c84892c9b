"""Serving priority calls: emergency preemption and transit signal priority, step by step.

`PriorityServer` keeps the calls that are on, the preemption or transit call being served and the
once-per-cycle limit of transit priority, and turns them into holds and terminations of the served
stage, always through the interval machine's normal change and clearance intervals. What a call is
and the rules it is served by are described in `signal_control.priority`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from rsu_contracts.enums import PriorityKind
from rsu_contracts.messages.priority import PriorityPhase, PriorityService
from rsu_contracts.messages.signal import Indication, SignalEvent
from signal_control.calls import stage_calls
from signal_control.events import AtspmEvent, signal_event
from signal_control.intervals import GroupRuntime, IntervalMachine, Phase
from signal_control.phasing import PhasePlan
from signal_control.priority import MAX_PRIORITY_CALLS, PreemptRun, PriorityCall, PriorityLimits, TransitRun
from signal_control.strategies import Action, Decision, DecisionContext, Strategy, Termination, next_called_stage


class PriorityServer:
    """The priority calls that are on and the one being served, and how serving it changes the stage."""

    def __init__(self, limits: PriorityLimits) -> None:
        self.limits = limits
        self.calls: dict[str, PriorityCall] = {}
        # Calls the controller will not serve again (preemption held for its max dwell).
        self.exhausted_calls: set[str] = set()
        self.preempt: PreemptRun | None = None
        self.transit: TransitRun | None = None
        # The cycle of the last transit adjustment: one adjustment per cycle.
        self._transit_adjusted_cycle = -1
        # A priority hold of the served stage beyond its max green (for SPaT max end times); set
        # afresh every step.
        self.hold_until_s: float | None = None

    @staticmethod
    def check_calls(plan: PhasePlan, calls: Sequence[PriorityCall]) -> None:
        for call in calls:
            timing = plan.groups.get(call.signal_group)
            if timing is None or timing.is_pedestrian:
                raise ValueError(
                    f"priority call {call.call_id!r}: {call.signal_group!r} is not a vehicle signal group of this site"
                )
            if not math.isfinite(call.arrival_time_s):
                raise ValueError(f"priority call {call.call_id!r}: arrival_time_s must be finite")

    def stop_serving(self) -> None:
        """Flash serves nobody; calls still on are served again after reset."""
        self.preempt = None
        self.transit = None

    def take_calls(
        self,
        now_s: float,
        calls: Sequence[PriorityCall],
        groups: Mapping[str, GroupRuntime],
        events: list[SignalEvent],
    ) -> None:
        """Note calls going on and off (ATSPM 102/104, 112/115) and latch a call on their groups."""
        current = {call.call_id: call for call in sorted(calls, key=PriorityCall.sort_key)[:MAX_PRIORITY_CALLS]}
        for call_id, call in self.calls.items():
            if call_id not in current:
                code = (
                    AtspmEvent.PREEMPT_CALL_INPUT_OFF
                    if call.kind is PriorityKind.EMERGENCY
                    else AtspmEvent.TSP_CHECK_OUT
                )
                events.append(signal_event(now_s, code, call.signal_group))
        for call_id, call in current.items():
            if call_id not in self.calls:
                code = (
                    AtspmEvent.PREEMPT_CALL_INPUT_ON if call.kind is PriorityKind.EMERGENCY else AtspmEvent.TSP_CHECK_IN
                )
                events.append(signal_event(now_s, code, call.signal_group))
        self.calls = current
        self.exhausted_calls &= set(current)
        for call_id, call in current.items():
            group = groups[call.signal_group]
            if call_id not in self.exhausted_calls and group.indication is not Indication.GREEN:
                group.called = True

    def select(self, plan: PhasePlan, intervals: IntervalMachine, now_s: float, events: list[SignalEvent]) -> None:
        """Choose the emergency call to preempt for (keeping the one being served while it is on),
        else the transit call to give priority; emit entry and exit events."""
        run = self.preempt
        if (
            run is not None
            and run.phase is PriorityPhase.PREEMPT_DWELL
            and now_s - run.since_s >= self.limits.max_dwell_s
        ):
            events.append(signal_event(now_s, AtspmEvent.PREEMPT_MAX_PRESENCE_EXCEEDED, run.signal_group))
            self.exhausted_calls.add(run.call_id)
        emergencies = [
            call
            for call in self.calls.values()
            if call.kind is PriorityKind.EMERGENCY and call.call_id not in self.exhausted_calls
        ]
        wanted: PriorityCall | None = None
        if run is not None and run.call_id in self.calls and run.call_id not in self.exhausted_calls:
            wanted = self.calls[run.call_id]
        elif emergencies:
            wanted = min(emergencies, key=PriorityCall.sort_key)
        if run is not None and (wanted is None or wanted.call_id != run.call_id):
            events.append(signal_event(now_s, AtspmEvent.PREEMPT_BEGIN_EXIT_INTERVAL, run.signal_group))
            self.preempt = None
        if wanted is not None and self.preempt is None:
            self.preempt = PreemptRun(
                wanted.call_id,
                wanted.signal_group,
                intervals.stage_for_group(plan, wanted.signal_group),
                PriorityPhase.PREEMPT_ENTRY,
                now_s,
            )
            events.append(signal_event(now_s, AtspmEvent.PREEMPT_ENTRY_STARTED, wanted.signal_group))
        transits = [call for call in self.calls.values() if call.kind is PriorityKind.TRANSIT]
        if self.preempt is not None or not transits:
            self.transit = None  # transit priority yields to preemption
            return
        if self.transit is None or self.transit.call_id not in self.calls:
            best = min(transits, key=PriorityCall.sort_key)
            self.transit = TransitRun(best.call_id, best.signal_group, PriorityPhase.TRANSIT_WAITING, now_s)

    def redirect_to_preemption(self, plan: PhasePlan, intervals: IntervalMachine) -> None:
        """Before any green: clear straight to the preemption stage instead of the planned one.

        Only when nothing outside that stage is green (what is yellow runs its yellow and all-red
        as usual) and the stage's own groups are at rest in red, so none of them flickers
        yellow-red-green.
        """
        run = self.preempt
        if (
            run is None
            or intervals.phase not in (Phase.STARTUP, Phase.CLEARING)
            or intervals.target_stage == run.stage_index
        ):
            return
        target = plan.stages[run.stage_index].group_ids
        for group_id, group in intervals.groups.items():
            if group_id in target:
                if group.indication is not Indication.RED or group.in_red_clearance:
                    return
            elif group.indication is Indication.GREEN:
                return
        intervals.target_stage = run.stage_index

    def serve_preemption(
        self,
        plan: PhasePlan,
        intervals: IntervalMachine,
        now_s: float,
        run: PreemptRun,
        strategy: Strategy,
        events: list[SignalEvent],
    ) -> Decision | None:
        """Entry: end the current stage (after its minimum) towards the preemption stage. Dwell:
        hold it. None when the stage being served cannot give the call green (the strategy runs)."""
        stage = plan.stages[intervals.stage]
        if run.signal_group in stage.group_ids:
            if intervals.groups[run.signal_group].indication is not Indication.GREEN:
                return None  # unreachable: a served stage's vehicle groups are green
            if run.phase is not PriorityPhase.PREEMPT_DWELL:
                run.phase = PriorityPhase.PREEMPT_DWELL
                run.since_s = now_s
                run.stage_index = intervals.stage
                events.append(signal_event(now_s, AtspmEvent.PREEMPT_BEGIN_DWELL_SERVICE, run.signal_group))
            dwell_end_s = run.since_s + self.limits.max_dwell_s
            self.hold_until_s = dwell_end_s
            return Decision.hold(
                f"preemption {run.call_id}: dwell in stage {stage.stage_id} while the call is on "
                f"(at most until t={dwell_end_s:.1f} s)",
                dwell_end_s - now_s,
            )
        min_end_s = intervals.stage_min_end_s(plan)
        target = plan.stages[run.stage_index]
        if now_s < min_end_s:
            return Decision.hold(
                f"preemption {run.call_id}: entry to stage {target.stage_id} after the minimum green/pedestrian "
                f"service of stage {stage.stage_id} (t={min_end_s:.1f} s)",
                min_end_s - now_s,
            )
        decision = Decision.terminate(
            Termination.FORCE_OFF, run.stage_index, f"preemption {run.call_id}: entry to stage {target.stage_id}"
        )
        intervals.terminate(plan, now_s, decision.termination, run.stage_index, events)
        if intervals.clearance_complete(plan, now_s, run.stage_index):
            intervals.begin_stage(plan, now_s, run.stage_index, strategy.serves_every_stage, events)
        return decision

    def adjust_for_transit(
        self,
        plan: PhasePlan,
        intervals: IntervalMachine,
        now_s: float,
        run: TransitRun,
        strategy: Strategy,
        context: DecisionContext,
        decision: Decision,
        events: list[SignalEvent],
    ) -> Decision:
        """At most one adjustment per cycle: extend the bus's green, or end a conflicting green early."""
        limits = self.limits
        call = self.calls[run.call_id]
        stage = plan.stages[intervals.stage]
        serving_bus = run.signal_group in stage.group_ids
        if run.phase is PriorityPhase.TRANSIT_EXTEND_GREEN:
            if serving_bus and now_s < run.hold_until_s:
                self.hold_until_s = run.hold_until_s
                return Decision.hold(
                    f"transit priority {run.call_id}: green extended until t={run.hold_until_s:.1f} s",
                    run.hold_until_s - now_s,
                )
            run.phase = PriorityPhase.TRANSIT_WAITING  # the extension has run out
            run.since_s = now_s
        if run.phase is PriorityPhase.TRANSIT_EARLY_GREEN:
            if serving_bus:
                run.early_green_served = True
            elif run.early_green_served:
                run.phase = PriorityPhase.TRANSIT_WAITING  # the bus's early green has been served
                run.since_s = now_s
                run.early_green_served = False
        if intervals.cycle <= self._transit_adjusted_cycle:
            return decision
        if serving_bus:
            bus_due = now_s < call.arrival_time_s <= now_s + limits.max_extension_s
            if decision.action is Action.TERMINATE and bus_due:
                passage_s = intervals.groups[run.signal_group].timing.passage_s
                run.hold_until_s = min(now_s + limits.max_extension_s, call.arrival_time_s + passage_s)
                run.phase = PriorityPhase.TRANSIT_EXTEND_GREEN
                run.since_s = now_s
                self._transit_adjusted_cycle = intervals.cycle
                self.hold_until_s = run.hold_until_s
                events.append(signal_event(now_s, AtspmEvent.TSP_ADJUSTMENT_TO_EXTEND_GREEN, run.signal_group))
                return Decision.hold(
                    f"transit priority {run.call_id}: green extended until t={run.hold_until_s:.1f} s "
                    f"({decision.reason})",
                    run.hold_until_s - now_s,
                )
            return decision
        if decision.action is Action.TERMINATE or limits.max_early_green_s <= 0:
            return decision
        # The stage's planned green: its fixed green under a fixed plan, else its max green.
        planned_s = strategy.expected_green_s(intervals.stage) if strategy.serves_every_stage else context.max_green_s
        cut_at_s = intervals.stage_start_s + max(context.min_green_s, planned_s - limits.max_early_green_s)
        if now_s < cut_at_s:
            return decision
        calls_with_bus = tuple(
            called or index == intervals.stage_for_group(plan, run.signal_group)
            for index, called in enumerate(stage_calls(plan, intervals.groups, strategy.serves_every_stage))
        )
        next_stage = next_called_stage(intervals.stage, calls_with_bus)
        if next_stage is None:
            return decision
        run.phase = PriorityPhase.TRANSIT_EARLY_GREEN
        run.since_s = now_s
        self._transit_adjusted_cycle = intervals.cycle
        events.append(signal_event(now_s, AtspmEvent.TSP_ADJUSTMENT_TO_EARLY_GREEN, run.signal_group))
        return Decision.terminate(
            Termination.FORCE_OFF,
            next_stage,
            f"transit priority {run.call_id}: stage {stage.stage_id} ends early towards group {run.signal_group}",
        )

    def services(self, plan: PhasePlan, intervals: IntervalMachine) -> tuple[PriorityService, ...]:
        """The calls being served, as published with the controller output."""
        services = []
        for run in (self.preempt, self.transit):
            if run is None:
                continue
            call = self.calls[run.call_id]
            stage_index = (
                run.stage_index if isinstance(run, PreemptRun) else intervals.stage_for_group(plan, run.signal_group)
            )
            services.append(
                PriorityService(
                    call_id=run.call_id,
                    kind=call.kind,
                    signal_group=run.signal_group,
                    stage_id=plan.stages[stage_index].stage_id,
                    phase=run.phase,
                    since_s=run.since_s,
                )
            )
        return tuple(services)
