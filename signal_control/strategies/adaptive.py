"""Adaptive control from what a camera sees: discharge-aware extension with a fairness bound.

A loop detector knows only whether something stands on it. The camera also reports, per lane,
the queue still standing, the vehicles approaching and their mean speed, and how long the
longest waiter has waited. This strategy uses that to end each green as soon as it stops being
useful, which shortens the cycle for everyone else:

* **extend while the queue discharges**: a lane of the green stage with vehicles still standing
  in its queue, or a vehicle in its stop-bar zone, or a stop-bar gap below ``discharge_gap_s``
  (the queue is still flowing over the line) keeps the green;
* **extend for a platoon that will arrive within the gap**: with ``n`` vehicles approaching at
  mean speed ``v`` over the watched length ``L``, the next one reaches the stop line after about
  ``L / (v (n + 1))`` seconds; the green is held if that is within the arrival horizon. The
  horizon shrinks as more vehicles wait on red (holding a green for one car costs each of them);
* **end when the lane has cleared and arrivals thin**: no lane keeps the green → gap-out;
* **fairness**: once any road user on red has waited ``max_wait_s`` the green is forced off
  (after its minimum), and stages are served in their fixed rotation, skipping stages nobody
  calls, so every call is served within one cycle;
* **max green** as configured (max-out), and resting in the stage while nobody else is called.

The controller still enforces minimum greens, pedestrian walk and clearance, yellow and all-red,
and its conflict monitor checks every output: nothing here can make an output unsafe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rsu.messages.perception import LaneObservation
from signal_control.phasing import PhasePlan
from signal_control.strategies.base import Decision, DecisionContext, Termination, next_called_stage


@dataclass(frozen=True)
class AdaptiveParameters:
    # A stop-bar zone free for less than this still counts as a discharging queue (vehicles in a
    # queue follow at about 2 s headway; the zone is 8 m, so a flowing queue leaves gaps < 1.5 s).
    discharge_gap_s: float = 1.3
    # How far upstream the camera watches approaching vehicles (the lane's visible length).
    watched_length_m: float = 110.0
    # Arrival horizon with nobody waiting on red, and its floor when many wait.
    arrival_horizon_s: float = 3.0
    min_arrival_horizon_s: float = 1.0
    # Vehicles waiting on red at which the horizon has shrunk to half.
    waiting_half_horizon: float = 8.0
    # A road user on red that has waited this long forces the green off (after its minimum).
    max_wait_s: float = 120.0
    # Extend for approaching vehicles when one reaches the stop line within the horizon with at
    # least this probability: cutting one off costs it a whole red, holding costs those on red.
    min_arrival_chance: float = 0.5
    # A stage without pedestrians and at most this many vehicles may be passed over once, while
    # its call is younger than skip_max_call_age_s.
    skip_max_vehicles: int = 1
    skip_max_call_age_s: float = 15.0
    # Approaching vehicles slower than this are creeping into a queue, not a platoon.
    min_platoon_speed_mps: float = 3.0


class AdaptiveStrategy:
    def __init__(self, plan: PhasePlan, parameters: AdaptiveParameters | None = None) -> None:
        self._plan = plan
        self.parameters = parameters or AdaptiveParameters()
        # Lanes of every stage, computed once.
        self._stage_lanes = tuple(stage.lane_ids for stage in plan.stages)
        self._expected_green_s = tuple(stage.vehicle_min_green_s for stage in plan.stages)
        # Stages without pedestrian groups may be passed over once while their demand is light.
        self._skippable = tuple(not stage.pedestrian_group_ids for stage in plan.stages)
        # When each stage's current call was first seen (None: not called, or being served).
        self._called_since_s: list[float | None] = [None] * len(plan.stages)

    @property
    def name(self) -> str:
        return "adaptive"

    @property
    def serves_every_stage(self) -> bool:
        return False

    def expected_green_s(self, stage_index: int) -> float:
        return self._expected_green_s[stage_index]

    def decide(self, context: DecisionContext) -> Decision:
        stage = self._plan.stages[context.stage_index]
        lanes = context.lanes
        self._track_calls(context)
        extension_s = self._extension_s(context.stage_index, lanes, context.arrivals_s, self._waiting_on_red(context))
        if context.time_in_green_s < context.min_green_s:
            return Decision.hold(
                f"stage {stage.stage_id}: minimum green",
                max(context.min_green_s - context.time_in_green_s, extension_s or 0.0),
            )
        next_stage = self._next_stage(context)
        if next_stage is None:
            return Decision.hold(f"stage {stage.stage_id}: resting, no demand elsewhere", extension_s or 0.0)
        if context.time_in_green_s >= context.max_green_s:
            return Decision.terminate(
                Termination.MAX_OUT,
                next_stage,
                f"stage {stage.stage_id}: max-out after {context.time_in_green_s:.1f} s",
            )
        longest_wait_s = self._longest_wait_on_red_s(context)
        if longest_wait_s >= self.parameters.max_wait_s:
            return Decision.terminate(
                Termination.FORCE_OFF,
                next_stage,
                f"stage {stage.stage_id}: force-off, a road user on red has waited {longest_wait_s:.0f} s",
            )
        if extension_s is None:
            return Decision.terminate(
                Termination.GAP_OUT,
                next_stage,
                f"stage {stage.stage_id}: queue cleared and no arrival within the horizon "
                f"after {context.time_in_green_s:.1f} s",
            )
        return Decision.hold(f"stage {stage.stage_id}: extending, queue discharging or platoon arriving", extension_s)

    # -- which stage next -----------------------------------------------------------------------

    def _track_calls(self, context: DecisionContext) -> None:
        for index, called in enumerate(context.stage_calls):
            if index == context.stage_index or not called:
                self._called_since_s[index] = None
            elif self._called_since_s[index] is None:
                self._called_since_s[index] = context.now_s

    def _next_stage(self, context: DecisionContext) -> int | None:
        """The next called stage in rotation, passing over a light stage while its call is young.

        A stage without pedestrians whose lanes hold at most ``skip_max_vehicles`` is passed over
        if its call is younger than ``skip_max_call_age_s`` and the stage after it has more
        demand: one more rotation for that vehicle costs less than a stage change for the many.
        The age bound (below the stage's max green) keeps the worst wait within one rotation at
        maximum greens.
        """
        first = next_called_stage(context.stage_index, context.stage_calls)
        if first is None:
            return None
        candidate = first
        p = self.parameters
        for _ in range(len(context.stage_calls) - 1):
            since_s = self._called_since_s[candidate]
            # Younger than the stage's own max green: the green it does not get pays for the wait,
            # so every call is still served within one rotation at maximum greens.
            age_limit_s = min(p.skip_max_call_age_s, self._plan.stages[candidate].max_green_s)
            young = since_s is not None and context.now_s - since_s < age_limit_s
            demand = self._stage_demand(candidate, context)
            if not (self._skippable[candidate] and young and demand <= p.skip_max_vehicles):
                return candidate
            following = next_called_stage(candidate, context.stage_calls)
            if following is None or following == context.stage_index:
                return candidate
            if self._stage_demand(following, context) <= demand:
                return candidate
            candidate = following
        return first

    def _stage_demand(self, stage_index: int, context: DecisionContext) -> int:
        demand = 0
        for lane_id in self._stage_lanes[stage_index]:
            observation = context.lanes.get(lane_id)
            if observation is not None:
                demand += max(observation.queued_vehicles, int(observation.stop_bar_occupied))
                demand += observation.approaching_vehicles
        return demand

    # -- what the camera says -------------------------------------------------------------------

    def _waiting_on_red(self, context: DecisionContext) -> int:
        waiting = 0
        for index, lane_ids in enumerate(self._stage_lanes):
            if index == context.stage_index:
                continue
            for lane_id in lane_ids:
                observation = context.lanes.get(lane_id)
                if observation is not None:
                    waiting += observation.queued_vehicles or int(observation.stop_bar_occupied)
        return waiting

    def _longest_wait_on_red_s(self, context: DecisionContext) -> float:
        serving = set(self._stage_lanes[context.stage_index])
        return max(
            (obs.max_wait_s for lane_id, obs in context.lanes.items() if lane_id not in serving),
            default=0.0,
        )

    def _arrival_horizon_s(self, waiting_on_red: int) -> float:
        p = self.parameters
        horizon = p.arrival_horizon_s * p.waiting_half_horizon / (p.waiting_half_horizon + waiting_on_red)
        return max(p.min_arrival_horizon_s, horizon)

    def _extension_s(
        self,
        stage_index: int,
        lanes: Mapping[str, LaneObservation],
        arrivals_s: Mapping[str, tuple[float, ...]],
        waiting: int,
    ) -> float | None:
        """How long the stage's lanes still want green; None once none does (gap-out).

        A lane without an observation cannot extend the green: extending on missing data could
        hold the stage forever while others wait.
        """
        horizon_s = self._arrival_horizon_s(waiting)
        p = self.parameters
        wanted: float | None = None
        for lane_id in self._stage_lanes[stage_index]:
            observation = lanes.get(lane_id)
            if observation is None:
                continue
            lane_wants: float | None = None
            if observation.queued_vehicles > 0 or observation.stop_bar_occupied:
                # Standing queue: about 2 s per vehicle still to go over the line.
                lane_wants = 2.0 * max(1, observation.queued_vehicles)
            elif observation.stop_bar_gap_s < p.discharge_gap_s:
                lane_wants = p.discharge_gap_s - observation.stop_bar_gap_s
            elif lane_id in arrivals_s:
                # The camera's lookahead: the next vehicle's own arrival time.
                upcoming = arrivals_s[lane_id]
                if upcoming and upcoming[0] <= horizon_s:
                    lane_wants = upcoming[0]
            elif (
                observation.approaching_vehicles > 0
                and observation.approaching_speed_mean_mps >= p.min_platoon_speed_mps
            ):
                # Approaching vehicles spread over the watched length: the chance that one of them
                # reaches the stop line within the horizon.
                reach_share = min(1.0, observation.approaching_speed_mean_mps * horizon_s / p.watched_length_m)
                arrival_chance = 1.0 - (1.0 - reach_share) ** observation.approaching_vehicles
                if arrival_chance >= p.min_arrival_chance:
                    lane_wants = horizon_s * arrival_chance
            if lane_wants is not None and (wanted is None or lane_wants > wanted):
                wanted = lane_wants
        return wanted
