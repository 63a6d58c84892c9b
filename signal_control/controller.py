"""The stage-based signal controller: detector observations in, signal group states out.

One `step` per decision tick. Time comes only from the caller's `now_s`, so the same code runs
on simulated and wall-clock time. Per step the controller

1. takes in the detector data (or notes its absence, `signal_control.detector_inputs`) and
   registers calls (`signal_control.calls`),
2. runs the interval timers (walk, pedestrian clearance, yellow, all-red, start-up;
   `signal_control.intervals`),
3. serves an emergency preemption or transit priority call if one is on
   (`signal_control.priority_service`, consulted before the strategy and overriding it), else asks
   the active strategy whether the current stage should end and what comes next,
4. computes SPaT timing for every group and adds the flashing yellow arrows of protected/permissive
   lefts whose opposing through is green (`signal_control.spat_windows`), and
5. passes the output through the independent conflict monitor, which can only make it safer
   (a violation turns the whole junction to flash until `reset`).

`SignalController` coordinates these parts and owns them; it holds the phase plan, which it passes
to each part on every call.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages.perception import CrosswalkObservation, LaneObservation
from rsu_contracts.messages.priority import PriorityService
from rsu_contracts.messages.signal import ControllerMode, Indication, SignalEvent, SignalGroupState
from signal_control import calls, spat_windows
from signal_control.detector_inputs import DetectorInputs
from signal_control.events import AtspmEvent
from signal_control.intervals import IntervalMachine, Phase
from signal_control.phasing import PhasePlan
from signal_control.priority import PriorityCall, PriorityLimits
from signal_control.priority_service import PriorityServer
from signal_control.safety import ConflictMonitor
from signal_control.strategies import (
    Action,
    ActuatedStrategy,
    AdaptiveStrategy,
    Decision,
    DecisionContext,
    FixedTimeStrategy,
    ScheduleStrategy,
    Strategy,
)

RECALL_STRATEGY_NAME = "recall"

# Events about detector inputs, which stay true even when the signal output is rejected.
_INPUT_EVENT_CODES = frozenset(
    {
        AtspmEvent.PHASE_CALL_REGISTERED,
        AtspmEvent.PEDESTRIAN_CALL_REGISTERED,
        AtspmEvent.DETECTOR_OFF,
        AtspmEvent.DETECTOR_ON,
        AtspmEvent.PREEMPT_CALL_INPUT_ON,
        AtspmEvent.PREEMPT_CALL_INPUT_OFF,
        AtspmEvent.TSP_CHECK_IN,
        AtspmEvent.TSP_CHECK_OUT,
    }
)


@dataclass(frozen=True)
class ControllerOutput:
    mode: ControllerMode
    # The selected strategy; in RECALL the recall plan runs in its place until data returns.
    strategy: str
    groups: list[SignalGroupState]
    events: list[SignalEvent]
    reason: str
    time_s: float
    # The stage being served, or being cleared to; None in flash.
    stage_id: str | None
    # Priority calls being served (preemption entry / dwell, transit priority), empty otherwise.
    priority: tuple[PriorityService, ...] = ()
    # Calls the controller will not serve again (preemption held for its max dwell): end them.
    exhausted_calls: tuple[str, ...] = ()


class SignalController:
    """Coordinates detector intake, call latching, the interval machine, priority service, the
    strategy and SPaT timing for one junction; see the module docstring for the order per step."""

    def __init__(self, site: SiteConfig) -> None:
        self._plan = PhasePlan.from_site(site)
        self._monitor = ConflictMonitor(self._plan)
        self.detector_stale_after_s = self._plan.detector_stale_after_s
        # The strategies' parameter blocks (controller.<strategy>), given to each strategy it builds.
        self._strategy_config = site.controller
        self._strategies: dict[str, Strategy] = {}
        self._recall: Strategy = FixedTimeStrategy(self._plan, self._plan.fixed_green_s, name=RECALL_STRATEGY_NAME)
        self._strategy: Strategy = self._resolve_strategy(self._plan.default_strategy)
        self._intervals = IntervalMachine(self._plan.groups)
        # The groups' runtime state (indication, since when, call), shared with the interval machine.
        self._groups = self._intervals.groups
        self._inputs = DetectorInputs()
        self._priority = PriorityServer(PriorityLimits.from_config(site.priority))
        self._last_time_s: float | None = None
        self._fault: str | None = None
        self._restart_pending = True
        # What each group showed at the last step, and since when: a permissive left's flashing
        # yellow arrow and permissive yellow are derived from its partner (signal_control.permissive).
        self._shown: dict[str, Indication] = {}
        self._shown_since_s: dict[str, float] = {}

    # -- public API -----------------------------------------------------------------------------

    @property
    def plan(self) -> PhasePlan:
        return self._plan

    @property
    def strategy(self) -> str:
        return self._strategy.name

    @property
    def fault(self) -> str | None:
        return self._fault

    @property
    def last_time_s(self) -> float | None:
        """Time of the newest step, None before the first."""
        return self._last_time_s

    def shut_down(self, now_s: float, reason: str = "the unit is stopping") -> ControllerOutput:
        """Leave control in the safe state: every head flashing red (an all-way stop), as a
        conflict-monitor fault does, and return that output so it can be published last."""
        self._check_time(now_s)
        self._enter_flash(now_s, reason)
        self._last_time_s = None  # step() checks the time again
        output = self.step(now_s, None)
        return output

    def set_strategy(self, strategy: str | Strategy) -> None:
        """Switch strategy at run time; the current stage keeps its green and the new strategy
        decides from the next step on. Accepts a registered name ("actuated", "adaptive", "fixed_time",
        "schedule"; built with the site's parameter block of that name) or a Strategy instance, which
        is registered under its name (replacing one of the same name)."""
        self._strategy = self._resolve_strategy(strategy) if isinstance(strategy, str) else strategy
        if not isinstance(strategy, str):
            self._strategies[strategy.name] = strategy

    def reset(self) -> None:
        """Leave flash (after the cause is fixed): the next step restarts with the start-up all-red.

        Does nothing unless flashing: a restart cuts greens short, which is only safe from flash.
        """
        if self._intervals.phase is not Phase.FLASH:
            return
        self._monitor.reset()
        self._fault = None
        self._restart_pending = True

    def step(
        self,
        now_s: float,
        lanes: Sequence[LaneObservation] | None,
        crosswalks: Sequence[CrosswalkObservation] = (),
        observed_at_s: float | None = None,
        arrivals_s: Mapping[str, Sequence[float]] | None = None,
        priority: Sequence[PriorityCall] = (),
        pushbuttons: Collection[str] = (),
    ) -> ControllerOutput:
        """Advance the controller to `now_s` (seconds, strictly increasing).

        `lanes` is the newest detector state, None when detectors are unavailable (the controller
        then recalls every stage); `observed_at_s` is its capture time if older than `now_s`.
        `arrivals_s` optionally adds the camera's lookahead from the same capture: per lane, the
        seconds until each moving vehicle reaches the stop line (from the lane observations with
        `signal_control.lookahead.arrivals_by_lane`); the adaptive strategy uses it, the others
        ignore it.
        `priority` lists the emergency and transit priority calls that are on now (already
        authenticated and validated, see `signal_control.priority`); a call stays on while listed.
        `pushbuttons` names the crosswalks whose pedestrian pushbutton was pressed since the last
        step: a call for their pedestrian group, kept until served, even while camera data is stale.
        """
        plan, intervals, inputs = self._plan, self._intervals, self._inputs
        self._check_time(now_s)
        PriorityServer.check_calls(plan, priority)
        calls.check_pushbuttons(plan, pushbuttons)
        events: list[SignalEvent] = []
        if self._restart_pending:
            self._restart(now_s)
        fresh, data_problem = inputs.take(
            plan, now_s, lanes, crosswalks, observed_at_s, self.detector_stale_after_s, events
        )
        if fresh and lanes is not None:
            inputs.take_arrivals(plan, arrivals_s)
        strategy = self._strategy if fresh else self._recall
        if fresh:
            calls.register_detector_calls(self._groups, inputs.lanes, inputs.crosswalks, self._shown, now_s, events)
        calls.register_pushbuttons(plan, self._groups, now_s, pushbuttons, events)
        self._priority.take_calls(now_s, priority, self._groups, events)
        stage_calls = calls.stage_calls(plan, self._groups, strategy.serves_every_stage)

        decision: Decision | None = None
        self._priority.hold_until_s = None
        if intervals.phase is not Phase.FLASH:
            intervals.run_timers(now_s, events)
            self._priority.select(plan, intervals, now_s, events)
            if self._priority.preempt is not None:
                self._priority.redirect_to_preemption(plan, intervals)
            if intervals.ready_for_target_stage(plan, now_s):
                intervals.begin_stage(plan, now_s, intervals.target_stage, strategy.serves_every_stage, events)
            if intervals.phase is Phase.SERVING:
                decision = self._serve(now_s, strategy, stage_calls, events)

        groups = self._group_states(now_s, strategy, stage_calls, decision)
        if intervals.phase is not Phase.FLASH:
            fault = self._monitor.check(now_s, {state.signal_group: state.indication for state in groups})
            if fault is not None:
                self._enter_flash(now_s, fault)
                groups = self._group_states(now_s, strategy, stage_calls, None)
                # The rejected indications were never shown: log only what the detectors saw.
                events = [event for event in events if event.code in _INPUT_EVENT_CODES]
        self._shown = {state.signal_group: state.indication for state in groups}
        self._shown_since_s = {state.signal_group: state.since_s for state in groups}
        mode = self._mode(fresh)
        return ControllerOutput(
            mode=mode,
            strategy=self._strategy.name,
            groups=groups,
            events=events,
            reason=self._reason(now_s, mode, data_problem, decision),
            time_s=now_s,
            stage_id=None if intervals.phase is Phase.FLASH else plan.stages[intervals.current_or_target()].stage_id,
            priority=self._priority.services(plan, intervals),
            exhausted_calls=tuple(sorted(self._priority.exhausted_calls)),
        )

    # -- time --------------------------------------------------------------------------------------

    def _check_time(self, now_s: float) -> None:
        if not math.isfinite(now_s):
            raise ValueError(f"now_s must be a finite number of seconds, got {now_s}")
        if self._last_time_s is not None and now_s <= self._last_time_s:
            raise ValueError(
                f"now_s must increase from step to step: got {now_s} s after {self._last_time_s} s "
                "(the controller is driven by time in seconds, never by frame counts)"
            )
        self._last_time_s = now_s

    def _restart(self, now_s: float) -> None:
        """All groups red for the longest all-red of the site, then the first stage."""
        self._intervals.restart(now_s, self._plan.max_all_red_s)
        self._restart_pending = False

    # -- serving a stage ---------------------------------------------------------------------------

    def _serve(
        self, now_s: float, strategy: Strategy, stage_calls: tuple[bool, ...], events: list[SignalEvent]
    ) -> Decision:
        plan, intervals, priority = self._plan, self._intervals, self._priority
        stage = plan.stages[intervals.stage]
        if priority.preempt is not None:
            preempting = priority.serve_preemption(plan, intervals, now_s, priority.preempt, strategy, events)
            if preempting is not None:
                return preempting
        others_called = any(called for index, called in enumerate(stage_calls) if index != intervals.stage)
        if not strategy.serves_every_stage and not others_called:
            # Resting with nobody else waiting: a pedestrian who arrives now can walk at once
            # instead of waiting a whole cycle. Never while another stage waits (starvation).
            for group_id in stage.pedestrian_group_ids:
                group = self._groups[group_id]
                # A steady don't walk of at least the all-red keeps two walks visibly apart.
                shown_dont_walk = group.indication is Indication.RED and now_s - group.since_s >= group.timing.all_red_s
                if group.called and shown_dont_walk and intervals.may_turn_green(plan, group_id, now_s):
                    intervals.begin_walk(now_s, group_id, events)
        min_end_s = intervals.stage_min_end_s(plan)
        # The strategy may ask for a change as soon as any next stage could begin.
        earliest_change_s = intervals.earliest_change_s(plan)
        context = DecisionContext(
            now_s=now_s,
            stage_index=intervals.stage,
            time_in_green_s=now_s - intervals.stage_start_s,
            min_green_s=earliest_change_s - intervals.stage_start_s,
            max_green_s=max(stage.max_green_s, min_end_s - intervals.stage_start_s),
            stage_calls=stage_calls,
            lanes=self._inputs.lanes if strategy is self._strategy else {},
            arrivals_s=self._inputs.arrivals_s if strategy is self._strategy else {},
            pedestrian_calls=frozenset(
                g for g, group in self._groups.items() if group.called and group.timing.is_pedestrian
            ),
        )
        decision = strategy.decide(context)
        if priority.transit is not None:
            decision = priority.adjust_for_transit(
                plan, intervals, now_s, priority.transit, strategy, context, decision, events
            )
        if decision.action is not Action.TERMINATE:
            return decision
        target = decision.next_stage
        if target is None or not 0 <= target < len(plan.stages) or target == intervals.stage:
            return Decision.hold(f"{decision.reason}; ignored: invalid next stage {target!r}", 0.0)
        target_min_end_s = intervals.stage_min_end_s(plan, target)
        if now_s < target_min_end_s:
            return Decision.hold(
                f"stage {stage.stage_id}: minimum green/pedestrian service until t={target_min_end_s:.1f} s",
                target_min_end_s - now_s,
            )
        intervals.terminate(plan, now_s, decision.termination, target, events)
        if intervals.clearance_complete(plan, now_s, target):
            intervals.begin_stage(plan, now_s, target, strategy.serves_every_stage, events)
        return decision

    def _enter_flash(self, now_s: float, fault: str) -> None:
        self._fault = fault
        self._priority.stop_serving()
        self._intervals.enter_flash(now_s)

    # -- output ------------------------------------------------------------------------------------

    def _mode(self, fresh: bool) -> ControllerMode:
        if self._intervals.phase is Phase.FLASH:
            return ControllerMode.FLASH
        if self._intervals.phase is Phase.STARTUP:
            return ControllerMode.STARTUP
        return ControllerMode.NORMAL if fresh else ControllerMode.RECALL

    def _reason(self, now_s: float, mode: ControllerMode, data_problem: str, decision: Decision | None) -> str:
        if mode is ControllerMode.FLASH:
            return f"{self._fault}; flashing until reset()"
        if mode is ControllerMode.STARTUP:
            return f"start-up all-red until t={self._intervals.startup_until_s:.1f} s"
        if decision is not None:
            activity = decision.reason
        else:
            activity = f"clearing to stage {self._plan.stages[self._intervals.target_stage].stage_id}"
        if self._priority.preempt is not None and decision is None:
            activity = f"preemption {self._priority.preempt.call_id}: {activity}"
        if mode is ControllerMode.RECALL:
            return f"recall: {data_problem}; {activity}"
        return activity

    def _group_states(
        self, now_s: float, strategy: Strategy, stage_calls: tuple[bool, ...], decision: Decision | None
    ) -> list[SignalGroupState]:
        if self._intervals.phase is Phase.FLASH:
            return spat_windows.flash_states(now_s, self._groups)
        states = spat_windows.group_states(
            self._plan, self._intervals, now_s, strategy, stage_calls, decision, self._priority.hold_until_s
        )
        return spat_windows.with_permissive_display(self._plan, now_s, states, self._shown, self._shown_since_s)

    def _resolve_strategy(self, name: str) -> Strategy:
        if name not in self._strategies:
            config = self._strategy_config
            if name == "actuated":
                self._strategies[name] = ActuatedStrategy(self._plan, config.actuated)
            elif name == "adaptive":
                self._strategies[name] = AdaptiveStrategy(self._plan, config.adaptive)
            elif name == "fixed_time":
                self._strategies[name] = FixedTimeStrategy.from_plan(self._plan, config.fixed_time)
            elif name == "schedule":
                self._strategies[name] = ScheduleStrategy(self._plan, config.schedule)
            else:
                available = sorted({"actuated", "adaptive", "fixed_time", "schedule", *self._strategies})
                raise ValueError(f"unknown signal control strategy {name!r}; available: {', '.join(available)}")
        return self._strategies[name]
