"""Adaptive control from what a camera sees: delay-weighed extension on a NEMA dual ring.

A loop detector knows only whether something stands on it. The camera also reports, per lane,
the queue still standing, the vehicles approaching and their mean speed (and, with the lookahead,
each one's arrival time at the stop line), and how long the longest waiter has waited. This
strategy uses that to end each green as soon as holding it costs more delay than it saves:

* **extend while the queue discharges**: a lane with vehicles still standing in its queue, or a
  vehicle in its stop-bar zone, or a stop-bar gap below ``discharge_gap_s`` keeps the green;
* **weigh approaching vehicles against those on red** (arrival-based, after SURTRAC's
  delay-minimising schedule, reduced to the one decision a stage-based controller takes):
  holding until the k-th arriving vehicle is over the line saves each of them a whole red and a
  stop (the time until this stage would be green again, estimated from the other stages' queues,
  plus ``stop_penalty_s``), and costs every vehicle on red the time held: those standing or
  approaching now and those that will arrive before their green (smoothed arrival rates). The
  green is held for the best positive balance, else it ends (gap-out). A vehicle that reaches
  the line within ``yellow_pass_s`` goes through on yellow and holds nothing;
* **NEMA dual ring** when the plan holds dual-ring stages (``phasing.with_ring_barrier_stages``):
  a lead-left stage of which only one left is called runs that left beside its own ring partner's
  through ({2, 5} instead of {1, 5}); of an uneven pair of lefts, the short one hands its ring to
  its through while the long one runs on ({1, 5} -> {1, 6}) when that gains more than the next
  through's later start costs; in a dual-ring stage only the phase that would end decides. With
  sequential stages only, the strategy serves them in order;
* **protected/permissive lefts**: a lead-left stage whose lefts may also turn permissively in
  the through stage after it (flashing yellow arrow) is passed over while each left lane's
  vehicles fit the permissive capacity of that green (gap acceptance in the opposing flow the
  camera measures, after the opposing queue, plus sneakers) and none has waited
  ``permissive_max_wait_s``: the lefts turn, giving way, in the through's green instead of
  costing a stage change;
* **fairness**: once any road user on red has waited ``max_wait_s`` the green is forced off
  (after its minimum), and stages are served in their fixed rotation, skipping stages nobody
  calls (a light stage may be passed over once while its call is young), so every call is
  served within two rotations;
* **max green** as configured (max-out), per phase: a phase kept green across a dual-ring stage
  change counts its max green from its own start; and resting in the stage while nobody else is
  called.

The controller still enforces minimum greens, pedestrian walk and clearance, yellow and all-red,
and its conflict monitor checks every output: nothing here can make an output unsafe.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from rsu_contracts.config.strategy import AdaptiveParameters
from rsu_contracts.messages.perception import LaneObservation
from signal_control.phasing import PhasePlan, StagePlan, transition_stages
from signal_control.strategies.base import Decision, DecisionContext, Termination, next_called_stage


class AdaptiveStrategy:
    def __init__(self, plan: PhasePlan, parameters: AdaptiveParameters | None = None) -> None:
        self._plan = plan
        # The site's controller.adaptive block (its defaults when none is given).
        self.parameters = parameters or AdaptiveParameters()
        # Lanes of every stage, computed once, and the lanes it serves: also those of permissive
        # lefts turning beside its groups (flashing yellow arrow).
        self._stage_lanes = tuple(stage.lane_ids for stage in plan.stages)
        self._served_lanes = tuple(
            frozenset(stage.lane_ids).union(
                *(t.lane_ids for t in plan.groups.values() if t.permissive_with in stage.vehicle_group_ids)
            )
            for stage in plan.stages
        )
        self._expected_green_s = tuple(stage.vehicle_min_green_s for stage in plan.stages)
        # Stages without pedestrian groups may be passed over once while their demand is light.
        self._skippable = tuple(not stage.pedestrian_group_ids for stage in plan.stages)
        # Protected-left stages whose lefts all turn permissively beside a partner: the partners.
        self._permissive_partners = tuple(_permissive_partners(plan, stage) for stage in plan.stages)
        # When each stage's current call was first seen (None: not called, or being served).
        self._called_since_s: list[float | None] = [None] * len(plan.stages)
        # Dual-ring stages overlapping two stages of the rotation (index -> (lead, follow)), and
        # which stages make up the rotation itself.
        self._transitions = transition_stages(plan)
        self._in_rotation = tuple(index not in self._transitions for index in range(len(plan.stages)))
        self._group_lanes = {group_id: timing.lane_ids for group_id, timing in plan.groups.items()}
        # Smoothed arrival rate per site lane (bounded: the site's lanes only).
        self._flow_per_s: dict[str, float] = {}
        self._flows_at_s: float | None = None
        # When each vehicle group of the stage being served turned green: a group that stays green
        # from a dual-ring stage into the next keeps its start, and its own max green bounds it.
        self._green_since_s: dict[str, float] = {}
        self._served_stage: int | None = None
        self._last_decision_s: float | None = None
        # The longest gap between decisions across one stage change (a change and clearance,
        # plus a step): a longer gap means the strategy was not serving.
        self._carry_over_s = 2.0 + max(
            (g.change_interval_s + g.all_red_s for g in plan.groups.values() if not g.is_pedestrian), default=0.0
        )

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
        self._track_calls(context)
        self._track_greens(context)
        self._update_flows(context)
        if context.time_in_green_s < context.min_green_s:
            return Decision.hold(
                f"stage {stage.stage_id}: minimum green",
                max(
                    context.min_green_s - context.time_in_green_s,
                    self._discharge_s(context, self._stage_lanes[context.stage_index]) or 0.0,
                ),
            )
        next_stage = self._next_stage(context)
        if next_stage is None:
            return Decision.hold(f"stage {stage.stage_id}: resting, no demand elsewhere", 0.0)
        staying = set(self._plan.stages[next_stage].vehicle_group_ids)
        leaving_groups = [group for group in stage.vehicle_group_ids if group not in staying]
        if context.time_in_green_s >= context.max_green_s or self._maxed_out(context, leaving_groups):
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
        # Only the lanes that would lose their green decide; a group the next stage keeps green
        # (dual ring) goes on discharging there.
        leaving = tuple(lane for group in leaving_groups for lane in self._group_lanes[group])
        discharge_s = self._discharge_s(context, leaving)
        lead_off = self._lead_off_stage(context, next_stage)
        if lead_off is not None:
            return Decision.terminate(
                Termination.GAP_OUT,
                lead_off,
                f"stage {stage.stage_id}: one ring's phase done, the other's next phase starts beside it",
            )
        if discharge_s is not None:
            return Decision.hold(f"stage {stage.stage_id}: extending, queue discharging", discharge_s)
        hold_s = self._worth_holding_for_arrivals_s(context, leaving)
        if hold_s is None:
            return Decision.terminate(
                Termination.GAP_OUT,
                next_stage,
                f"stage {stage.stage_id}: queue served, no arrival worth the others' wait "
                f"after {context.time_in_green_s:.1f} s",
            )
        return Decision.hold(f"stage {stage.stage_id}: extending for arriving vehicles", hold_s)

    def _track_greens(self, context: DecisionContext) -> None:
        index = context.stage_index
        stage_start_s = context.now_s - context.time_in_green_s
        groups = self._plan.stages[index].vehicle_group_ids
        # Decisions come every controller step while a stage is served; a longer gap than a stage
        # change means the strategy was not serving (recall, another strategy): nothing carries over.
        fresh = self._last_decision_s is None or context.now_s - self._last_decision_s > self._carry_over_s
        self._last_decision_s = context.now_s
        if index == self._served_stage and not fresh:
            return
        previous = (
            () if fresh or self._served_stage is None else self._plan.stages[self._served_stage].vehicle_group_ids
        )
        self._green_since_s = {
            group: self._green_since_s.get(group, stage_start_s) if group in previous else stage_start_s
            for group in groups
        }
        self._served_stage = index

    def _maxed_out(self, context: DecisionContext, groups: list[str]) -> bool:
        """A group that would end has had its own maximum green (counted from its own start,
        which may lie in the dual-ring stage before this one)."""
        return any(
            context.now_s - self._green_since_s.get(group, context.now_s) >= self._plan.groups[group].max_green_s
            for group in groups
        )

    # -- which stage next -----------------------------------------------------------------------

    def _track_calls(self, context: DecisionContext) -> None:
        for index, called in enumerate(context.stage_calls):
            if index == context.stage_index or not called:
                self._called_since_s[index] = None
            elif self._called_since_s[index] is None:
                self._called_since_s[index] = context.now_s

    def _position(self, stage_index: int) -> int:
        """Where a stage stands in the rotation: a dual-ring stage stands at the stage it leads from."""
        transition = self._transitions.get(stage_index)
        return stage_index if transition is None else transition[0]

    def _rotation_calls(self, context: DecisionContext) -> tuple[bool, ...]:
        return tuple(called and kept for called, kept in zip(context.stage_calls, self._in_rotation, strict=True))

    def _next_stage(self, context: DecisionContext) -> int | None:
        """The next called stage in rotation, passing over a light stage while its call is young.

        A stage without pedestrians whose lanes hold at most ``skip_max_vehicles`` is passed over
        if its call is younger than ``skip_max_call_age_s`` and the stage after it has more
        demand: one more rotation for that vehicle costs less than a stage change for the many.
        The age bound (below the stage's max green) keeps the worst wait within one rotation at
        maximum greens. A stage of which only one ring's phase is called is served as the
        dual-ring stage pairing it with the called phase of the next stage, if the plan has one
        (a lone left with its own through).
        """
        calls = self._rotation_calls(context)
        position = self._position(context.stage_index)
        first = next_called_stage(position, calls)
        if first is None or first == context.stage_index:
            return None
        candidate = first
        p = self.parameters
        for _ in range(len(calls) - 1):
            following = next_called_stage(candidate, calls)
            if self._served_permissively_next(candidate, following, position, context):
                assert following is not None
                candidate = following
                continue
            since_s = self._called_since_s[candidate]
            # Younger than the stage's own max green: the green it does not get pays for the wait,
            # so every call is still served within one rotation at maximum greens.
            age_limit_s = min(p.skip_max_call_age_s, self._plan.stages[candidate].max_green_s)
            young = since_s is not None and context.now_s - since_s < age_limit_s
            demand = self._stage_demand(candidate, context)
            if not (self._skippable[candidate] and young and demand <= p.skip_max_vehicles):
                return self._paired_stage(candidate, context)
            following = next_called_stage(candidate, calls)
            if following is None or following == position:
                return self._paired_stage(candidate, context)
            if self._stage_demand(following, context) <= demand:
                return self._paired_stage(candidate, context)
            candidate = following
        return self._paired_stage(first, context)

    def _served_permissively_next(
        self, candidate: int, following: int | None, position: int, context: DecisionContext
    ) -> bool:
        """A light protected-left stage whose lefts turn permissively in the stage after it."""
        partners = self._permissive_partners[candidate]
        if not partners or following is None or following == position:
            return False
        if not partners <= set(self._plan.stages[following].vehicle_group_ids):
            return False
        p = self.parameters
        # The partner's green: its queue's discharge, or its walk and clearance if pedestrians wait.
        green_s = self._stage_service_s(following, context)
        if context.pedestrian_calls.intersection(self._plan.stages[following].pedestrian_group_ids):
            green_s = max(green_s, self._plan.stages[following].pedestrian_service_s)
        for group_id in self._plan.stages[candidate].vehicle_group_ids:
            capacity = self._permissive_capacity(group_id, green_s, context)
            for lane_id in self._group_lanes[group_id]:
                observation = context.lanes.get(lane_id)
                if observation is None or observation.max_wait_s >= p.permissive_max_wait_s:
                    return False
                if _vehicles(observation) > capacity:
                    return False
        return True

    def _permissive_capacity(self, group_id: str, green_s: float, context: DecisionContext) -> float:
        """Vehicles one lane of a permissive left can expect to turn in a partner green of green_s:
        gaps in the opposing flow after the opposing queue has discharged, plus the sneakers."""
        p = self.parameters
        partner = self._plan.groups[group_id].permissive_with
        opposing_lanes = self._group_lanes[partner] if partner is not None else ()
        flow_per_s = sum(self._flow_per_s.get(lane_id, 0.0) for lane_id in opposing_lanes)
        queued = sum(_standing(obs) for lane_id in opposing_lanes if (obs := context.lanes.get(lane_id)) is not None)
        unsaturated_s = max(0.0, green_s - p.startup_s - p.headway_s * queued / max(1, len(opposing_lanes)))
        if flow_per_s <= 1e-6:
            turning_per_s = 1.0 / p.follow_up_s
        else:
            turning_per_s = (
                flow_per_s * math.exp(-flow_per_s * p.critical_gap_s) / (1.0 - math.exp(-flow_per_s * p.follow_up_s))
            )
        return min(float(p.permissive_max_vehicles), turning_per_s * unsaturated_s + p.sneakers_per_green)

    def _group_wants_s(self, group_id: str, context: DecisionContext) -> float | None:
        """Green one group's lanes still want: their queue's discharge, or arrivals worth holding for."""
        lanes = self._group_lanes[group_id]
        return self._discharge_s(context, lanes) or self._worth_holding_for_arrivals_s(context, lanes)

    def _lead_off_stage(self, context: DecisionContext, next_stage: int) -> int | None:
        """While one ring's phase of the stage is done and the other's still runs (an uneven pair
        of lefts), the dual-ring stage that keeps the running phase and starts its ring partner of
        the next stage, when that gains more than it costs.

        The partner starts a clearance after the done phase ends instead of after the running one
        (gain: its demand x the running phase's remaining green); the next stage's other phase can
        start only after the partner's minimum green (cost: its demand x how much later that is).
        """
        index = context.stage_index
        if not self._in_rotation[index]:
            return None
        stage = self._plan.stages[index]
        running = {g: self._group_wants_s(g, context) for g in stage.vehicle_group_ids}
        going_on = {g for g, wants in running.items() if wants is not None}
        if not going_on or len(going_on) == len(running):
            return None
        remaining_s = max(wants for wants in running.values() if wants is not None)
        best: int | None = None
        best_value = 0.0
        for candidate, (lead, follow) in self._transitions.items():
            if lead != index or follow != next_stage:
                continue
            members = set(self._plan.stages[candidate].vehicle_group_ids)
            if not going_on <= members:
                continue
            added = members - set(stage.vehicle_group_ids)
            others = set(self._plan.stages[follow].vehicle_group_ids) - members
            clearance_s = self._plan.transition_clearance_s(index, candidate)
            partner_min_s = max((self._plan.groups[g].min_green_s for g in added), default=0.0)
            gain = sum(self._group_demand(g, context) for g in added) * remaining_s
            later_s = max(0.0, clearance_s + partner_min_s - remaining_s)
            cost = sum(self._group_demand(g, context) for g in others) * later_s
            if gain - cost > best_value:
                best, best_value = candidate, gain - cost
        return best

    def _group_demand(self, group_id: str, context: DecisionContext) -> int:
        return _vehicles_on(self._group_lanes[group_id], context)

    def _paired_stage(self, stage_index: int, context: DecisionContext) -> int:
        """The dual-ring stage to serve instead of ``stage_index`` when only one ring's phase of it
        has demand: the one keeping that phase and adding the called phase of the next stage."""
        groups = self._plan.stages[stage_index].vehicle_group_ids
        wanted = {g for g in groups if self._group_demand(g, context) > 0}
        if not wanted or len(wanted) == len(groups):
            return stage_index
        best = stage_index
        best_demand = 0
        for index, (lead, follow) in self._transitions.items():
            if lead != stage_index or index == context.stage_index:
                continue
            members = set(self._plan.stages[index].vehicle_group_ids)
            added = members - set(groups)
            if not wanted <= members or not added <= set(self._plan.stages[follow].vehicle_group_ids):
                continue
            demand = sum(self._group_demand(g, context) for g in added)
            if demand > best_demand:
                best, best_demand = index, demand
        return best

    def _stage_demand(self, stage_index: int, context: DecisionContext) -> int:
        return _vehicles_on(self._stage_lanes[stage_index], context)

    # -- what the camera says -------------------------------------------------------------------

    def _update_flows(self, context: DecisionContext) -> None:
        """Smoothed arrival rate per lane (vehicles/s): the moving vehicles the camera sees over the
        watched length, times their speed (density x speed)."""
        p = self.parameters
        elapsed_s = 0.0 if self._flows_at_s is None else max(0.0, context.now_s - self._flows_at_s)
        self._flows_at_s = context.now_s
        weight = min(1.0, elapsed_s / p.flow_time_constant_s)
        for lane_id, observation in context.lanes.items():
            flow = observation.approaching_vehicles * observation.approaching_speed_mean_mps / p.watched_length_m
            previous = self._flow_per_s.get(lane_id)
            self._flow_per_s[lane_id] = flow if previous is None else previous + (flow - previous) * weight

    def _longest_wait_on_red_s(self, context: DecisionContext) -> float:
        serving = set(self._stage_lanes[context.stage_index])
        return max(
            (obs.max_wait_s for lane_id, obs in context.lanes.items() if lane_id not in serving),
            default=0.0,
        )

    def _discharge_s(self, context: DecisionContext, lane_ids: tuple[str, ...]) -> float | None:
        """Green the stage's standing queues still need; None once no queue discharges.

        A lane without an observation cannot extend the green: extending on missing data could
        hold the stage forever while others wait.
        """
        p = self.parameters
        wanted: float | None = None
        for lane_id in lane_ids:
            observation = context.lanes.get(lane_id)
            if observation is None:
                continue
            lane_wants: float | None = None
            if observation.queued_vehicles > 0 or observation.stop_bar_occupied:
                lane_wants = p.headway_s * max(1, observation.queued_vehicles)
            elif observation.stop_bar_gap_s < p.discharge_gap_s:
                lane_wants = p.discharge_gap_s - observation.stop_bar_gap_s
            if lane_wants is not None and (wanted is None or lane_wants > wanted):
                wanted = lane_wants
        return wanted

    def _arrivals_s(self, context: DecisionContext, lane_ids: tuple[str, ...]) -> list[float]:
        """Seconds until each vehicle seen approaching the stage's lanes reaches its stop line.

        From the camera lookahead when the caller gives it; otherwise the lane's approaching
        vehicles are taken as spread evenly over the watched length at their mean speed.
        """
        p = self.parameters
        etas: list[float] = []
        for lane_id in lane_ids:
            observation = context.lanes.get(lane_id)
            if observation is None:
                continue
            if context.arrivals_s:
                etas.extend(context.arrivals_s.get(lane_id, ()))
            elif (
                observation.approaching_vehicles > 0
                and observation.approaching_speed_mean_mps >= p.min_platoon_speed_mps
            ):
                count = observation.approaching_vehicles
                travel_s = p.watched_length_m / observation.approaching_speed_mean_mps
                etas.extend(travel_s * (i + 1) / (count + 1) for i in range(count))
        return sorted(etas)

    def _stage_service_s(self, stage_index: int, context: DecisionContext) -> float:
        """Green a stage is expected to need when served next: its queue's discharge within its
        minimum and maximum green."""
        stage = self._plan.stages[stage_index]
        p = self.parameters
        queued = self._stage_demand(stage_index, context)
        lanes = max(1, len(self._stage_lanes[stage_index]))
        discharge_s = p.startup_s + p.headway_s * queued / lanes
        return min(stage.max_green_s, max(stage.vehicle_min_green_s, discharge_s))

    def _return_s(self, context: DecisionContext) -> float:
        """If the green ended now: how long until this stage is green again (one rotation through
        the other called stages, each at its expected green, with the clearances between)."""
        current = context.stage_index
        position = self._position(current)
        total_s = 0.0
        previous = current
        count = len(context.stage_calls)
        for step in range(1, count):
            index = (position + step) % count
            if not context.stage_calls[index] or not self._in_rotation[index]:
                continue
            total_s += self._plan.transition_clearance_s(previous, index) + self._stage_service_s(index, context)
            previous = index
        return total_s + self._plan.transition_clearance_s(previous, current)

    def _red_cost_rate(self, context: DecisionContext, return_s: float) -> float:
        """Vehicles whose wait grows by each second the green is held: those standing or
        approaching on red now, and those that will arrive on red before their green (on average
        half a rotation away)."""
        serving = self._served_lanes[context.stage_index]
        vehicles = 0.0
        for lane_id, observation in context.lanes.items():
            if lane_id in serving:
                continue
            vehicles += _vehicles(observation)
            vehicles += self._flow_per_s.get(lane_id, 0.0) * return_s * self.parameters.red_arrival_share
        return vehicles

    def _worth_holding_for_arrivals_s(self, context: DecisionContext, lane_ids: tuple[str, ...]) -> float | None:
        """How long to hold the green for approaching vehicles, or None (end it now).

        Holding until the k-th arriving vehicle is through saves each of those k a whole red and a
        stop (``return_s + stop_penalty_s``), and costs every vehicle on red the time held. Hold
        for the best positive balance; a vehicle that reaches the line within ``yellow_pass_s``
        goes through on yellow anyway.
        """
        p = self.parameters
        etas = [eta for eta in self._arrivals_s(context, lane_ids) if eta > p.yellow_pass_s]
        if not etas:
            return None
        return_s = self._return_s(context)
        cost_per_s = self._red_cost_rate(context, return_s)
        saved_per_vehicle_s = return_s + p.stop_penalty_s
        best_value, best_hold_s = 0.0, None
        for served, eta in enumerate(etas, start=1):
            hold_s = eta - p.yellow_pass_s
            value = served * saved_per_vehicle_s - hold_s * cost_per_s
            if value > best_value:
                best_value, best_hold_s = value, hold_s
        return best_hold_s


def _permissive_partners(plan: PhasePlan, stage: StagePlan) -> frozenset[str]:
    """The opposing throughs of a protected-left stage whose lefts all may also turn permissively;
    empty for any other stage (one with pedestrians, or with a group that never turns permissively)."""
    partners = [plan.groups[g].permissive_with for g in stage.vehicle_group_ids]
    if not partners or stage.pedestrian_group_ids or None in partners:
        return frozenset()
    return frozenset(p for p in partners if p is not None)


def _standing(observation: LaneObservation) -> int:
    """Vehicles standing in a lane's queue (at least the one on the stop bar)."""
    return max(observation.queued_vehicles, int(observation.stop_bar_occupied))


def _vehicles(observation: LaneObservation) -> int:
    """Vehicles a lane's green would serve: those standing and those approaching."""
    return _standing(observation) + observation.approaching_vehicles


def _vehicles_on(lane_ids: Iterable[str], context: DecisionContext) -> int:
    """Vehicles on the observed lanes among ``lane_ids`` (an unobserved lane counts none)."""
    return sum(
        _vehicles(observation) for lane_id in lane_ids if (observation := context.lanes.get(lane_id)) is not None
    )
