"""The stage-based signal controller: detector observations in, signal group states out.

One `step` per decision tick. Time comes only from the caller's `now_s`, so the same code runs
on simulated and wall-clock time. Per step the controller

1. takes in the detector data (or notes its absence) and registers calls,
2. runs the interval timers (walk, pedestrian clearance, yellow, all-red, start-up),
3. serves an emergency preemption or transit priority call if one is on (`signal_control.priority`,
   consulted before the strategy and overriding it), else asks the active strategy whether the
   current stage should end and what comes next,
4. computes SPaT timing for every group and adds the flashing yellow arrows of protected/permissive
   lefts whose opposing through is green (`signal_control.permissive`), and
5. passes the output through the independent conflict monitor, which can only make it safer
   (a violation turns the whole junction to flash until `reset`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from rsu.config.model import PriorityKind, SiteConfig
from rsu.messages.perception import CrosswalkObservation, LaneObservation
from rsu.messages.priority import PriorityPhase, PriorityService
from rsu.messages.signal import ControllerMode, Indication, SignalEvent, SignalGroupState
from signal_control.events import AtspmEvent, signal_event
from signal_control.permissive import displayed as permissive_display
from signal_control.phasing import GroupTiming, PhasePlan
from signal_control.priority import MAX_PRIORITY_CALLS, PreemptRun, PriorityCall, PriorityLimits, TransitRun
from signal_control.safety import ConflictMonitor
from signal_control.strategies import (
    Action,
    ActuatedStrategy,
    AdaptiveStrategy,
    Decision,
    DecisionContext,
    FixedTimeStrategy,
    Strategy,
    Termination,
    next_called_stage,
)

RECALL_STRATEGY_NAME = "recall"
# Lookahead kept per lane: the nearest vehicles are all a green extension can wait for.
MAX_ARRIVALS_PER_LANE = 16

_TERMINATION_EVENT = {
    Termination.GAP_OUT: AtspmEvent.PHASE_GAP_OUT,
    Termination.MAX_OUT: AtspmEvent.PHASE_MAX_OUT,
    Termination.FORCE_OFF: AtspmEvent.PHASE_FORCE_OFF,
}

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


class _Phase(Enum):
    STARTUP = "startup"
    SERVING = "serving"
    CLEARING = "clearing"  # leaving groups run their change and all-red intervals
    FLASH = "flash"


@dataclass
class _GroupRuntime:
    timing: GroupTiming
    indication: Indication
    since_s: float
    called: bool = False
    # True between the end of yellow and the end of the group's all-red (ATSPM 10 -> 11).
    in_red_clearance: bool = False


@dataclass(frozen=True)
class _Window:
    """Earliest, latest and most likely time of one future change."""

    earliest_s: float
    latest_s: float
    likely_s: float


class SignalController:
    def __init__(self, site: SiteConfig) -> None:
        self._plan = PhasePlan.from_site(site)
        self._monitor = ConflictMonitor(self._plan)
        self.detector_stale_after_s = self._plan.detector_stale_after_s
        self._strategies: dict[str, Strategy] = {}
        self._recall: Strategy = FixedTimeStrategy(self._plan, self._plan.fixed_green_s, name=RECALL_STRATEGY_NAME)
        self._strategy: Strategy = self._resolve_strategy(self._plan.default_strategy)
        self._groups = {
            group_id: _GroupRuntime(timing, Indication.RED, 0.0) for group_id, timing in self._plan.groups.items()
        }
        self._lanes: dict[str, LaneObservation] = {}
        self._arrivals_s: dict[str, tuple[float, ...]] = {}
        self._crosswalks: dict[str, CrosswalkObservation] = {}
        self._stop_bar_occupied: dict[str, bool] = {}
        self._last_time_s: float | None = None
        self._last_valid_observation_s: float | None = None
        self._phase = _Phase.STARTUP
        self._startup_until_s = 0.0
        self._stage = 0  # the stage being served, or being left while clearing
        self._target_stage = 0  # the stage the controller is clearing to
        self._stage_start_s = 0.0
        self._fault: str | None = None
        self._restart_pending = True
        # Priority: the calls that are on, the preemption or transit call being served, and the
        # cycle count that limits transit priority to one adjustment per cycle.
        self._priority_limits = PriorityLimits.from_config(site.priority)
        self._priority_calls: dict[str, PriorityCall] = {}
        self._exhausted_calls: set[str] = set()
        self._preempt: PreemptRun | None = None
        self._transit: TransitRun | None = None
        self._cycle = 0
        self._transit_adjusted_cycle = -1
        # A priority hold of the served stage beyond its max green (for SPaT max end times).
        self._hold_until_s: float | None = None
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

    def set_strategy(self, strategy: str | Strategy) -> None:
        """Switch strategy at run time; the current stage keeps its green and the new strategy
        decides from the next step on. Accepts a registered name ("actuated", "adaptive", "fixed_time") or a
        Strategy instance, which is registered under its name (replacing one of the same name)."""
        self._strategy = self._resolve_strategy(strategy) if isinstance(strategy, str) else strategy
        if not isinstance(strategy, str):
            self._strategies[strategy.name] = strategy

    def reset(self) -> None:
        """Leave flash (after the cause is fixed): the next step restarts with the start-up all-red.

        Does nothing unless flashing: a restart cuts greens short, which is only safe from flash.
        """
        if self._phase is not _Phase.FLASH:
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
        self._check_time(now_s)
        self._check_priority_calls(priority)
        self._check_pushbuttons(pushbuttons)
        events: list[SignalEvent] = []
        if self._restart_pending:
            self._restart(now_s)
        fresh, data_problem = self._take_observations(now_s, lanes, crosswalks, observed_at_s, events)
        if fresh and lanes is not None:
            self._arrivals_s = _arrivals_of_site_lanes(arrivals_s, self._plan.group_of_lane)
        strategy = self._strategy if fresh else self._recall
        if fresh:
            self._register_calls(now_s, events)
        self._register_pushbuttons(now_s, pushbuttons, events)
        self._take_priority_calls(now_s, priority, events)
        stage_calls = self._stage_calls(strategy)

        decision: Decision | None = None
        self._hold_until_s = None
        if self._phase is not _Phase.FLASH:
            self._run_interval_timers(now_s, events)
            self._select_priority(now_s, events)
            if self._preempt is not None:
                self._redirect_to_preemption(now_s)
            if self._ready_for_target_stage(now_s):
                self._begin_stage(now_s, self._target_stage, strategy, events)
            if self._phase is _Phase.SERVING:
                decision = self._serve(now_s, strategy, stage_calls, events)

        groups = self._group_states(now_s, strategy, stage_calls, decision)
        if self._phase is not _Phase.FLASH:
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
            stage_id=None if self._phase is _Phase.FLASH else self._plan.stages[self._current_or_target()].stage_id,
            priority=self._priority_services(),
            exhausted_calls=tuple(sorted(self._exhausted_calls)),
        )

    # -- time and data ----------------------------------------------------------------------------

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
        for group in self._groups.values():
            group.indication = Indication.RED
            group.since_s = now_s
            group.in_red_clearance = False
        self._phase = _Phase.STARTUP
        self._startup_until_s = now_s + self._plan.max_all_red_s
        self._stage = 0
        self._target_stage = 0
        self._restart_pending = False

    def _take_observations(
        self,
        now_s: float,
        lanes: Sequence[LaneObservation] | None,
        crosswalks: Sequence[CrosswalkObservation],
        observed_at_s: float | None,
        events: list[SignalEvent],
    ) -> tuple[bool, str]:
        """Store fresh observations; returns (fresh, why not)."""
        if lanes is None:
            if self._last_valid_observation_s is None:
                return False, "no detector data received yet"
            age_s = now_s - self._last_valid_observation_s
            return False, f"detector data unavailable (last valid observation {age_s:.1f} s ago)"
        # A capture time in the future is clock skew; it cannot make data fresher than now.
        captured_s = now_s if observed_at_s is None else min(observed_at_s, now_s)
        age_s = now_s - captured_s
        if age_s > self.detector_stale_after_s:
            return False, f"detector data is {age_s:.1f} s old (limit {self.detector_stale_after_s:.1f} s)"
        if self._last_valid_observation_s is not None and captured_s < self._last_valid_observation_s:
            # Arrived out of order: what the controller already holds is newer, keep it.
            return True, ""
        self._last_valid_observation_s = captured_s
        # Only the site's own lanes and crosswalks are kept, which bounds this state.
        self._lanes = {obs.lane_id: obs for obs in lanes if obs.lane_id in self._plan.group_of_lane}
        self._crosswalks = {
            obs.crosswalk_id: obs for obs in crosswalks if obs.crosswalk_id in self._plan.group_of_crosswalk
        }
        for lane_id, observation in self._lanes.items():
            was_occupied = self._stop_bar_occupied.get(lane_id, False)
            if observation.stop_bar_occupied != was_occupied:
                code = AtspmEvent.DETECTOR_ON if observation.stop_bar_occupied else AtspmEvent.DETECTOR_OFF
                events.append(signal_event(now_s, code, lane_id))
                self._stop_bar_occupied[lane_id] = observation.stop_bar_occupied
        return True, ""

    def _register_calls(self, now_s: float, events: list[SignalEvent]) -> None:
        """Latch a call for each group with demand that is not being served (locking memory), so
        a road user seen once is served even if the detector loses it."""
        for group_id, group in self._groups.items():
            if self._shown.get(group_id) is Indication.FLASHING_YELLOW:
                # Turning permissively: a call is left only by vehicles still waiting when the arrow
                # ends (call on red); once the lanes are empty the waiting ones have been served.
                if not any(_lane_has_demand(self._lanes.get(lane)) for lane in group.timing.lane_ids):
                    group.called = False
                continue
            if group.called or group.indication is Indication.GREEN:
                continue
            if group.timing.is_pedestrian:
                demand = any(
                    (obs := self._crosswalks.get(cw)) is not None and obs.waiting_pedestrians > 0
                    for cw in group.timing.crosswalk_ids
                )
                code = AtspmEvent.PEDESTRIAN_CALL_REGISTERED
            else:
                demand = any(_lane_has_demand(self._lanes.get(lane)) for lane in group.timing.lane_ids)
                code = AtspmEvent.PHASE_CALL_REGISTERED
            if demand:
                self._latch_call(now_s, group_id, code, events)

    def _check_pushbuttons(self, crosswalk_ids: Collection[str]) -> None:
        unknown = sorted(set(crosswalk_ids) - set(self._plan.group_of_crosswalk))
        if unknown:
            known = sorted(self._plan.group_of_crosswalk)
            raise ValueError(f"pushbuttons: unknown crosswalk ids {unknown} (the site has {known})")

    def _register_pushbuttons(self, now_s: float, crosswalk_ids: Collection[str], events: list[SignalEvent]) -> None:
        for crosswalk_id in sorted(set(crosswalk_ids)):
            events.append(signal_event(now_s, AtspmEvent.PEDESTRIAN_DETECTOR_ON, crosswalk_id))
            self._latch_call(
                now_s, self._plan.group_of_crosswalk[crosswalk_id], AtspmEvent.PEDESTRIAN_CALL_REGISTERED, events
            )

    def _latch_call(self, now_s: float, group_id: str, code: AtspmEvent, events: list[SignalEvent]) -> None:
        """A call for a group not being served, kept until it is (locking memory)."""
        group = self._groups[group_id]
        if group.called or group.indication is Indication.GREEN:
            return
        group.called = True
        events.append(signal_event(now_s, code, group_id))

    def _stage_calls(self, strategy: Strategy) -> tuple[bool, ...]:
        if strategy.serves_every_stage:
            return (True,) * len(self._plan.stages)
        return tuple(any(self._groups[g].called for g in stage.group_ids) for stage in self._plan.stages)

    # -- intervals --------------------------------------------------------------------------------

    def _run_interval_timers(self, now_s: float, events: list[SignalEvent]) -> None:
        for group_id, group in self._groups.items():
            timing = group.timing
            elapsed_s = now_s - group.since_s
            if timing.is_pedestrian:
                if group.indication is Indication.GREEN and elapsed_s >= timing.min_green_s:
                    self._set(group, Indication.PED_CLEARANCE, now_s)
                    events.append(signal_event(now_s, AtspmEvent.PEDESTRIAN_BEGIN_CLEARANCE, group_id))
                elif group.indication is Indication.PED_CLEARANCE and elapsed_s >= timing.change_interval_s:
                    self._set(group, Indication.RED, now_s)
                    events.append(signal_event(now_s, AtspmEvent.PEDESTRIAN_BEGIN_SOLID_DONT_WALK, group_id))
            elif group.indication is Indication.YELLOW and elapsed_s >= timing.change_interval_s:
                self._set(group, Indication.RED, now_s)
                group.in_red_clearance = True
                events.append(signal_event(now_s, AtspmEvent.PHASE_END_YELLOW_CLEARANCE, group_id))
                events.append(signal_event(now_s, AtspmEvent.PHASE_BEGIN_RED_CLEARANCE, group_id))
            elif group.in_red_clearance and elapsed_s >= timing.all_red_s:
                group.in_red_clearance = False
                events.append(signal_event(now_s, AtspmEvent.PHASE_END_RED_CLEARANCE, group_id))

    @staticmethod
    def _set(group: _GroupRuntime, indication: Indication, now_s: float) -> None:
        group.indication = indication
        group.since_s = now_s

    def _ready_for_target_stage(self, now_s: float) -> bool:
        if self._phase is _Phase.STARTUP:
            return now_s >= self._startup_until_s
        return self._phase is _Phase.CLEARING and self._clearance_complete(now_s, self._target_stage)

    def _clearance_complete(self, now_s: float, target: int) -> bool:
        """Every group outside the target stage is red and has been for its all-red time.

        Conflicting groups are never in the same stage, so this covers every conflict of every
        group about to turn green.
        """
        staying = self._plan.stages[target].group_ids
        return all(
            group.indication is Indication.RED and now_s - group.since_s >= group.timing.all_red_s
            for group_id, group in self._groups.items()
            if group_id not in staying
        )

    def _begin_stage(self, now_s: float, index: int, strategy: Strategy, events: list[SignalEvent]) -> None:
        for group_id in self._plan.stages[index].group_ids:
            group = self._groups[group_id]
            if group.indication is not Indication.RED:
                continue  # served by the previous stage too: it stays green
            if group.timing.is_pedestrian:
                if group.called or strategy.serves_every_stage:
                    self._begin_walk(now_s, group_id, events)
            else:
                self._set(group, Indication.GREEN, now_s)
                group.called = False
                group.in_red_clearance = False
                events.append(signal_event(now_s, AtspmEvent.PHASE_BEGIN_GREEN, group_id))
        if index <= self._stage:
            self._cycle += 1  # the rotation wrapped round: a new cycle
        self._phase = _Phase.SERVING
        self._stage = index
        self._target_stage = index
        self._stage_start_s = now_s

    def _begin_walk(self, now_s: float, group_id: str, events: list[SignalEvent]) -> None:
        group = self._groups[group_id]
        self._set(group, Indication.GREEN, now_s)
        group.called = False
        events.append(signal_event(now_s, AtspmEvent.PEDESTRIAN_BEGIN_WALK, group_id))

    # -- serving a stage --------------------------------------------------------------------------

    def _stage_min_end_s(self, target: int | None = None) -> float:
        """Earliest end of the current stage: every vehicle min green and every pedestrian walk
        and clearance of the stage must have run out. Towards ``target``, only the groups that
        leave count: a group the target keeps green runs its minimum out there (dual ring)."""
        end_s = self._stage_start_s
        staying = self._plan.stages[target].group_ids if target is not None else frozenset()
        for group_id in self._plan.stages[self._stage].group_ids:
            if group_id in staying:
                continue
            group = self._groups[group_id]
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

    def _serve(
        self, now_s: float, strategy: Strategy, stage_calls: tuple[bool, ...], events: list[SignalEvent]
    ) -> Decision:
        stage = self._plan.stages[self._stage]
        if self._preempt is not None:
            preempting = self._serve_preemption(now_s, self._preempt, strategy, events)
            if preempting is not None:
                return preempting
        others_called = any(called for index, called in enumerate(stage_calls) if index != self._stage)
        if not strategy.serves_every_stage and not others_called:
            # Resting with nobody else waiting: a pedestrian who arrives now can walk at once
            # instead of waiting a whole cycle. Never while another stage waits (starvation).
            for group_id in stage.pedestrian_group_ids:
                group = self._groups[group_id]
                # A steady don't walk of at least the all-red keeps two walks visibly apart.
                shown_dont_walk = group.indication is Indication.RED and now_s - group.since_s >= group.timing.all_red_s
                if group.called and shown_dont_walk and self._may_turn_green(group_id, now_s):
                    self._begin_walk(now_s, group_id, events)
        min_end_s = self._stage_min_end_s()
        # The strategy may ask for a change as soon as any next stage could begin.
        earliest_change_s = self._earliest_change_s()
        context = DecisionContext(
            now_s=now_s,
            stage_index=self._stage,
            time_in_green_s=now_s - self._stage_start_s,
            min_green_s=earliest_change_s - self._stage_start_s,
            max_green_s=max(stage.max_green_s, min_end_s - self._stage_start_s),
            stage_calls=stage_calls,
            lanes=self._lanes if strategy is self._strategy else {},
            arrivals_s=self._arrivals_s if strategy is self._strategy else {},
            pedestrian_calls=frozenset(
                g for g, group in self._groups.items() if group.called and group.timing.is_pedestrian
            ),
        )
        decision = strategy.decide(context)
        if self._transit is not None:
            decision = self._adjust_for_transit(now_s, self._transit, strategy, context, decision, events)
        if decision.action is not Action.TERMINATE:
            return decision
        target = decision.next_stage
        if target is None or not 0 <= target < len(self._plan.stages) or target == self._stage:
            return Decision.hold(f"{decision.reason}; ignored: invalid next stage {target!r}", 0.0)
        target_min_end_s = self._stage_min_end_s(target)
        if now_s < target_min_end_s:
            return Decision.hold(
                f"stage {stage.stage_id}: minimum green/pedestrian service until t={target_min_end_s:.1f} s",
                target_min_end_s - now_s,
            )
        self._terminate(now_s, decision, target, events)
        if self._clearance_complete(now_s, target):
            self._begin_stage(now_s, target, strategy, events)
        return decision

    def _min_end_by_target(self) -> dict[int, float]:
        """Earliest end of the current stage towards each other stage."""
        return {index: self._stage_min_end_s(index) for index in range(len(self._plan.stages)) if index != self._stage}

    def _earliest_change_s(self, min_end_by_target: Mapping[int, float] | None = None) -> float:
        """Earliest time the current stage can change to any other stage."""
        ends = self._min_end_by_target() if min_end_by_target is None else min_end_by_target
        return min(ends.values(), default=self._stage_min_end_s())

    def _group_earliest_end_s(self, group_id: str, min_end_by_target: Mapping[int, float]) -> float:
        """Earliest end of one green group: the earliest change to a stage without it."""
        return min(
            (end_s for index, end_s in min_end_by_target.items() if group_id not in self._plan.stages[index].group_ids),
            default=self._stage_min_end_s(),
        )

    def _may_turn_green(self, group_id: str, now_s: float) -> bool:
        for other in self._plan.conflicts_of[group_id]:
            group = self._groups[other]
            if group.indication is not Indication.RED or now_s - group.since_s < group.timing.all_red_s:
                return False
        return True

    def _terminate(self, now_s: float, decision: Decision, target: int, events: list[SignalEvent]) -> None:
        staying = self._plan.stages[target].group_ids
        for group_id in self._plan.stages[self._stage].group_ids:
            group = self._groups[group_id]
            if group_id in staying or group.indication is not Indication.GREEN:
                continue
            if group.timing.is_pedestrian:
                # Unreachable while the min-end rule holds; kept so a walk can never end abruptly.
                self._set(group, Indication.PED_CLEARANCE, now_s)
                events.append(signal_event(now_s, AtspmEvent.PEDESTRIAN_BEGIN_CLEARANCE, group_id))
                continue
            if decision.termination is not None:
                events.append(signal_event(now_s, _TERMINATION_EVENT[decision.termination], group_id))
            events.append(signal_event(now_s, AtspmEvent.PHASE_GREEN_TERMINATION, group_id))
            events.append(signal_event(now_s, AtspmEvent.PHASE_BEGIN_YELLOW_CLEARANCE, group_id))
            self._set(group, Indication.YELLOW, now_s)
        self._phase = _Phase.CLEARING
        self._target_stage = target

    def _enter_flash(self, now_s: float, fault: str) -> None:
        self._fault = fault
        self._phase = _Phase.FLASH
        # Flash serves nobody; calls still on are served again after reset.
        self._preempt = None
        self._transit = None
        for group in self._groups.values():
            self._set(group, Indication.FLASHING_RED, now_s)
            group.in_red_clearance = False

    # -- priority (preemption and transit) --------------------------------------------------------

    def _check_priority_calls(self, calls: Sequence[PriorityCall]) -> None:
        for call in calls:
            timing = self._plan.groups.get(call.signal_group)
            if timing is None or timing.is_pedestrian:
                raise ValueError(
                    f"priority call {call.call_id!r}: {call.signal_group!r} is not a vehicle signal group of this site"
                )
            if not math.isfinite(call.arrival_time_s):
                raise ValueError(f"priority call {call.call_id!r}: arrival_time_s must be finite")

    def _take_priority_calls(self, now_s: float, calls: Sequence[PriorityCall], events: list[SignalEvent]) -> None:
        """Note calls going on and off (ATSPM 102/104, 112/115) and latch a call on their groups."""
        current = {call.call_id: call for call in sorted(calls, key=PriorityCall.sort_key)[:MAX_PRIORITY_CALLS]}
        for call_id, call in self._priority_calls.items():
            if call_id not in current:
                code = (
                    AtspmEvent.PREEMPT_CALL_INPUT_OFF
                    if call.kind is PriorityKind.EMERGENCY
                    else AtspmEvent.TSP_CHECK_OUT
                )
                events.append(signal_event(now_s, code, call.signal_group))
        for call_id, call in current.items():
            if call_id not in self._priority_calls:
                code = (
                    AtspmEvent.PREEMPT_CALL_INPUT_ON if call.kind is PriorityKind.EMERGENCY else AtspmEvent.TSP_CHECK_IN
                )
                events.append(signal_event(now_s, code, call.signal_group))
        self._priority_calls = current
        self._exhausted_calls &= set(current)
        for call_id, call in current.items():
            group = self._groups[call.signal_group]
            if call_id not in self._exhausted_calls and group.indication is not Indication.GREEN:
                group.called = True

    def _select_priority(self, now_s: float, events: list[SignalEvent]) -> None:
        """Choose the emergency call to preempt for (keeping the one being served while it is on),
        else the transit call to give priority; emit entry and exit events."""
        run = self._preempt
        if (
            run is not None
            and run.phase is PriorityPhase.PREEMPT_DWELL
            and now_s - run.since_s >= self._priority_limits.max_dwell_s
        ):
            events.append(signal_event(now_s, AtspmEvent.PREEMPT_MAX_PRESENCE_EXCEEDED, run.signal_group))
            self._exhausted_calls.add(run.call_id)
        emergencies = [
            call
            for call in self._priority_calls.values()
            if call.kind is PriorityKind.EMERGENCY and call.call_id not in self._exhausted_calls
        ]
        wanted: PriorityCall | None = None
        if run is not None and run.call_id in self._priority_calls and run.call_id not in self._exhausted_calls:
            wanted = self._priority_calls[run.call_id]
        elif emergencies:
            wanted = min(emergencies, key=PriorityCall.sort_key)
        if run is not None and (wanted is None or wanted.call_id != run.call_id):
            events.append(signal_event(now_s, AtspmEvent.PREEMPT_BEGIN_EXIT_INTERVAL, run.signal_group))
            self._preempt = None
        if wanted is not None and self._preempt is None:
            self._preempt = PreemptRun(
                wanted.call_id,
                wanted.signal_group,
                self._stage_for_group(wanted.signal_group),
                PriorityPhase.PREEMPT_ENTRY,
                now_s,
            )
            events.append(signal_event(now_s, AtspmEvent.PREEMPT_ENTRY_STARTED, wanted.signal_group))
        transits = [call for call in self._priority_calls.values() if call.kind is PriorityKind.TRANSIT]
        if self._preempt is not None or not transits:
            self._transit = None  # transit priority yields to preemption
            return
        if self._transit is None or self._transit.call_id not in self._priority_calls:
            best = min(transits, key=PriorityCall.sort_key)
            self._transit = TransitRun(best.call_id, best.signal_group, PriorityPhase.TRANSIT_WAITING, now_s)

    def _stage_for_group(self, group_id: str) -> int:
        """The stage being served if it contains the group, else the next one in rotation that does."""
        count = len(self._plan.stages)
        start = self._stage if self._phase is _Phase.SERVING else self._target_stage
        for offset in range(count):
            index = (start + offset) % count
            if group_id in self._plan.stages[index].group_ids:
                return index
        raise ValueError(f"no stage serves signal group {group_id!r}")  # the site validator prevents this

    def _redirect_to_preemption(self, now_s: float) -> None:
        """Before any green: clear straight to the preemption stage instead of the planned one.

        Only when nothing outside that stage is green (what is yellow runs its yellow and all-red
        as usual) and the stage's own groups are at rest in red, so none of them flickers
        yellow-red-green.
        """
        run = self._preempt
        if run is None or self._phase not in (_Phase.STARTUP, _Phase.CLEARING) or self._target_stage == run.stage_index:
            return
        target = self._plan.stages[run.stage_index].group_ids
        for group_id, group in self._groups.items():
            if group_id in target:
                if group.indication is not Indication.RED or group.in_red_clearance:
                    return
            elif group.indication is Indication.GREEN:
                return
        self._target_stage = run.stage_index

    def _serve_preemption(
        self, now_s: float, run: PreemptRun, strategy: Strategy, events: list[SignalEvent]
    ) -> Decision | None:
        """Entry: end the current stage (after its minimum) towards the preemption stage. Dwell:
        hold it. None when the stage being served cannot give the call green (the strategy runs)."""
        stage = self._plan.stages[self._stage]
        if run.signal_group in stage.group_ids:
            if self._groups[run.signal_group].indication is not Indication.GREEN:
                return None  # unreachable: a served stage's vehicle groups are green
            if run.phase is not PriorityPhase.PREEMPT_DWELL:
                run.phase = PriorityPhase.PREEMPT_DWELL
                run.since_s = now_s
                run.stage_index = self._stage
                events.append(signal_event(now_s, AtspmEvent.PREEMPT_BEGIN_DWELL_SERVICE, run.signal_group))
            dwell_end_s = run.since_s + self._priority_limits.max_dwell_s
            self._hold_until_s = dwell_end_s
            return Decision.hold(
                f"preemption {run.call_id}: dwell in stage {stage.stage_id} while the call is on "
                f"(at most until t={dwell_end_s:.1f} s)",
                dwell_end_s - now_s,
            )
        min_end_s = self._stage_min_end_s()
        target = self._plan.stages[run.stage_index]
        if now_s < min_end_s:
            return Decision.hold(
                f"preemption {run.call_id}: entry to stage {target.stage_id} after the minimum green/pedestrian "
                f"service of stage {stage.stage_id} (t={min_end_s:.1f} s)",
                min_end_s - now_s,
            )
        decision = Decision.terminate(
            Termination.FORCE_OFF, run.stage_index, f"preemption {run.call_id}: entry to stage {target.stage_id}"
        )
        self._terminate(now_s, decision, run.stage_index, events)
        if self._clearance_complete(now_s, run.stage_index):
            self._begin_stage(now_s, run.stage_index, strategy, events)
        return decision

    def _adjust_for_transit(
        self,
        now_s: float,
        run: TransitRun,
        strategy: Strategy,
        context: DecisionContext,
        decision: Decision,
        events: list[SignalEvent],
    ) -> Decision:
        """At most one adjustment per cycle: extend the bus's green, or end a conflicting green early."""
        limits = self._priority_limits
        call = self._priority_calls[run.call_id]
        stage = self._plan.stages[self._stage]
        serving_bus = run.signal_group in stage.group_ids
        if run.phase is PriorityPhase.TRANSIT_EXTEND_GREEN:
            if serving_bus and now_s < run.hold_until_s:
                self._hold_until_s = run.hold_until_s
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
        if self._cycle <= self._transit_adjusted_cycle:
            return decision
        if serving_bus:
            bus_due = now_s < call.arrival_time_s <= now_s + limits.max_extension_s
            if decision.action is Action.TERMINATE and bus_due:
                passage_s = self._groups[run.signal_group].timing.passage_s
                run.hold_until_s = min(now_s + limits.max_extension_s, call.arrival_time_s + passage_s)
                run.phase = PriorityPhase.TRANSIT_EXTEND_GREEN
                run.since_s = now_s
                self._transit_adjusted_cycle = self._cycle
                self._hold_until_s = run.hold_until_s
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
        planned_s = strategy.expected_green_s(self._stage) if strategy.serves_every_stage else context.max_green_s
        cut_at_s = self._stage_start_s + max(context.min_green_s, planned_s - limits.max_early_green_s)
        if now_s < cut_at_s:
            return decision
        stage_calls = tuple(
            called or index == self._stage_for_group(run.signal_group)
            for index, called in enumerate(self._stage_calls(strategy))
        )
        next_stage = next_called_stage(self._stage, stage_calls)
        if next_stage is None:
            return decision
        run.phase = PriorityPhase.TRANSIT_EARLY_GREEN
        run.since_s = now_s
        self._transit_adjusted_cycle = self._cycle
        events.append(signal_event(now_s, AtspmEvent.TSP_ADJUSTMENT_TO_EARLY_GREEN, run.signal_group))
        return Decision.terminate(
            Termination.FORCE_OFF,
            next_stage,
            f"transit priority {run.call_id}: stage {stage.stage_id} ends early towards group {run.signal_group}",
        )

    def _priority_services(self) -> tuple[PriorityService, ...]:
        services = []
        for run in (self._preempt, self._transit):
            if run is None:
                continue
            call = self._priority_calls[run.call_id]
            stage_index = run.stage_index if isinstance(run, PreemptRun) else self._stage_for_group(run.signal_group)
            services.append(
                PriorityService(
                    call_id=run.call_id,
                    kind=call.kind,
                    signal_group=run.signal_group,
                    stage_id=self._plan.stages[stage_index].stage_id,
                    phase=run.phase,
                    since_s=run.since_s,
                )
            )
        return tuple(services)

    # -- output -----------------------------------------------------------------------------------

    def _current_or_target(self) -> int:
        return self._stage if self._phase is _Phase.SERVING else self._target_stage

    def _mode(self, fresh: bool) -> ControllerMode:
        if self._phase is _Phase.FLASH:
            return ControllerMode.FLASH
        if self._phase is _Phase.STARTUP:
            return ControllerMode.STARTUP
        return ControllerMode.NORMAL if fresh else ControllerMode.RECALL

    def _reason(self, now_s: float, mode: ControllerMode, data_problem: str, decision: Decision | None) -> str:
        if mode is ControllerMode.FLASH:
            return f"{self._fault}; flashing until reset()"
        if mode is ControllerMode.STARTUP:
            return f"start-up all-red until t={self._startup_until_s:.1f} s"
        if decision is not None:
            activity = decision.reason
        else:
            activity = f"clearing to stage {self._plan.stages[self._target_stage].stage_id}"
        if self._preempt is not None and decision is None:
            activity = f"preemption {self._preempt.call_id}: {activity}"
        if mode is ControllerMode.RECALL:
            return f"recall: {data_problem}; {activity}"
        return activity

    def _group_states(
        self, now_s: float, strategy: Strategy, stage_calls: tuple[bool, ...], decision: Decision | None
    ) -> list[SignalGroupState]:
        if self._phase is _Phase.FLASH:
            # Flash lasts until an operator resets it: no change is scheduled.
            return [
                SignalGroupState(
                    signal_group=group_id,
                    indication=group.indication,
                    since_s=group.since_s,
                    min_end_time_s=now_s,
                    max_end_time_s=now_s,
                    likely_time_s=now_s,
                )
                for group_id, group in self._groups.items()
            ]
        # While serving, a group may end before the stage's full minimum when the next stage keeps
        # the others green (dual ring): each green group's earliest end is its own.
        min_end_by_target = self._min_end_by_target() if self._phase is _Phase.SERVING else None
        served_end, upcoming = self._timeline(now_s, strategy, stage_calls, decision, min_end_by_target)
        states = []
        for group_id, group in self._groups.items():
            window = self._group_window(now_s, group_id, group, served_end, upcoming)
            if group.indication is Indication.GREEN and not group.timing.is_pedestrian:
                if min_end_by_target is not None:
                    earliest_s = max(window.earliest_s, self._group_earliest_end_s(group_id, min_end_by_target))
                else:
                    # Green on into the stage being cleared to: it may end once that stage has
                    # begun and its own minimum has run.
                    earliest_s = max(upcoming[0][1].earliest_s, group.since_s + group.timing.min_green_s)
                window = _Window(earliest_s, window.latest_s, window.likely_s)
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
        return self._with_permissive_display(now_s, states)

    def _with_permissive_display(self, now_s: float, states: list[SignalGroupState]) -> list[SignalGroupState]:
        """The states as shown: permissive lefts get their flashing yellow arrow or permissive yellow,
        timed like the partner whose green or yellow they follow."""
        protected = {state.signal_group: state.indication for state in states}
        shown = permissive_display(self._plan, protected, self._shown)
        if shown == protected:
            return states
        by_group = {state.signal_group: state for state in states}
        result = []
        for state in states:
            indication = shown[state.signal_group]
            partner_id = self._plan.groups[state.signal_group].permissive_with
            if indication is state.indication or partner_id is None:
                result.append(state)
                continue
            partner = by_group[partner_id]
            unchanged = self._shown.get(state.signal_group) is indication
            result.append(
                state.model_copy(
                    update={
                        "indication": indication,
                        "since_s": self._shown_since_s.get(state.signal_group, now_s) if unchanged else now_s,
                        "min_end_time_s": partner.min_end_time_s,
                        "max_end_time_s": partner.max_end_time_s,
                        "likely_time_s": partner.likely_time_s,
                    }
                )
            )
        return result

    def _group_window(
        self,
        now_s: float,
        group_id: str,
        group: _GroupRuntime,
        served_end: _Window,
        upcoming: list[tuple[int, _Window]],
    ) -> _Window:
        timing = group.timing
        if group.indication is Indication.GREEN:
            if timing.is_pedestrian:
                return _fixed_window(group.since_s + timing.min_green_s)
            return served_end
        if group.indication in (Indication.YELLOW, Indication.PED_CLEARANCE):
            return _fixed_window(group.since_s + timing.change_interval_s)
        # Red: the next start of a stage that serves this group.
        for stage_index, start in upcoming:
            if group_id in self._plan.stages[stage_index].group_ids:
                return start
        return _fixed_window(now_s)  # unreachable: the site validator makes every group served

    def _timeline(
        self,
        now_s: float,
        strategy: Strategy,
        stage_calls: tuple[bool, ...],
        decision: Decision | None,
        min_end_by_target: Mapping[int, float] | None,
    ) -> tuple[_Window, list[tuple[int, _Window]]]:
        """The end of the stage being served (or cleared to), and the next start of every stage
        in serving order. Earliest: only called stages, at min green; latest: every stage at max
        green; likely: called stages at the strategy's expected green."""
        stages = self._plan.stages
        count = len(stages)
        upcoming: list[tuple[int, _Window]] = []
        if self._phase is _Phase.SERVING:
            anchor = self._stage
            min_end = max(now_s, self._earliest_change_s(min_end_by_target))
            max_end = max(min_end, self._stage_start_s + stages[anchor].max_green_s, self._hold_until_s or 0.0)
            likely_remaining_s = decision.likely_remaining_s if decision is not None else 0.0
            served_end = _Window(min_end, max_end, now_s + likely_remaining_s)
        else:
            anchor = self._target_stage
            start_s = self._startup_until_s if self._phase is _Phase.STARTUP else self._clearance_end_s(anchor)
            start_s = max(now_s, start_s)
            upcoming.append((anchor, _fixed_window(start_s)))
            min_green = self._min_green_when_served(anchor, strategy)
            served_end = _Window(
                start_s + min_green,
                start_s + max(min_green, stages[anchor].max_green_s),
                start_s + max(min_green, strategy.expected_green_s(anchor)),
            )
        earliest, latest, likely = served_end.earliest_s, served_end.latest_s, served_end.likely_s
        earliest_from = likely_from = latest_from = anchor
        for offset in range(1, count + 1 if self._phase is _Phase.SERVING else count):
            index = (anchor + offset) % count
            start = _Window(
                earliest + self._plan.transition_clearance_s(earliest_from, index),
                latest + self._plan.transition_clearance_s(latest_from, index),
                likely + self._plan.transition_clearance_s(likely_from, index),
            )
            upcoming.append((index, start))
            latest = start.latest_s + stages[index].max_green_s
            latest_from = index
            if stage_calls[index]:
                min_green = self._min_green_when_served(index, strategy)
                earliest = start.earliest_s + min_green
                likely = start.likely_s + max(min_green, strategy.expected_green_s(index))
                earliest_from = likely_from = index
        return served_end, upcoming

    def _min_green_when_served(self, index: int, strategy: Strategy) -> float:
        stage = self._plan.stages[index]
        pedestrians_called = any(self._groups[g].called for g in stage.pedestrian_group_ids)
        pedestrians_served = strategy.serves_every_stage or pedestrians_called
        return stage.min_green_with_pedestrians_s if pedestrians_served else stage.vehicle_min_green_s

    def _clearance_end_s(self, target: int) -> float:
        """When every group outside the target stage will have run its change and all-red."""
        staying = self._plan.stages[target].group_ids
        end_s = 0.0
        for group_id, group in self._groups.items():
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

    def _resolve_strategy(self, name: str) -> Strategy:
        if name not in self._strategies:
            if name == "actuated":
                self._strategies[name] = ActuatedStrategy(self._plan)
            elif name == "adaptive":
                self._strategies[name] = AdaptiveStrategy(self._plan)
            elif name == "fixed_time":
                self._strategies[name] = FixedTimeStrategy(self._plan, self._plan.fixed_green_s)
            else:
                available = sorted({"actuated", "adaptive", "fixed_time", *self._strategies})
                raise ValueError(f"unknown signal control strategy {name!r}; available: {', '.join(available)}")
        return self._strategies[name]


def _lane_has_demand(observation: LaneObservation | None) -> bool:
    if observation is None:
        return False
    return (
        observation.stop_bar_occupied
        or observation.queued_vehicles > 0
        or observation.queue_length_m > 0
        or observation.approaching_vehicles > 0
    )


def _arrivals_of_site_lanes(
    arrivals_s: Mapping[str, Sequence[float]] | None, site_lanes: Mapping[str, str]
) -> dict[str, tuple[float, ...]]:
    """Only the site's lanes and finite, non-negative times are kept (bounded state, no NaN)."""
    if not arrivals_s:
        return {}
    return {
        lane: tuple(sorted(t for t in times if math.isfinite(t) and t >= 0.0))[:MAX_ARRIVALS_PER_LANE]
        for lane, times in arrivals_s.items()
        if lane in site_lanes
    }


def _fixed_window(time_s: float) -> _Window:
    return _Window(time_s, time_s, time_s)
