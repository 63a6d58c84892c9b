"""Schedule-driven control: plan the coming stages from what the camera sees, then act on the plan.

After SURTRAC (Xie, Smith and Barlow, "Schedule-driven intersection control", 2012). Every
``replan_interval_s`` the strategy turns the camera's view into a schedule:

* **clusters per stage**: each lane's standing queue (at the stop bar, ready to leave at the
  saturation headway) and its approaching vehicles with their arrival times (the camera's
  lookahead) become free-flow departure times; a stage's vehicles, ordered by departure, split into
  clusters wherever the gap exceeds ``cluster_gap_s`` (at most ``max_clusters_per_stage``, the rest
  joins the last one). Beyond the camera's view the lane's measured arrival rate adds one predicted
  cluster (``future_horizon_s``), so a platoon still coming is not forgotten. A stage that is
  called (a pedestrian, a recall) without a vehicle in view still gets a cluster;
* **forward dynamic programming over cluster sequences**: the state is how many clusters of each
  stage have been served and which stage is green; a step serves the next cluster of one stage,
  either by going on in the green stage or by changing to another one (the green stage runs its
  minimum, then yellow and all-red, then the new stage's start-up loss; the new green runs at least
  its minimum, and its walk when a pedestrian waits). A cluster served later than it arrives
  discharges at the saturation headway per lane, and each of its vehicles is delayed by the
  difference. Of the schedules reaching a state only the one with the least delay is kept (as in
  SURTRAC); the schedule that serves every cluster with the least total delay wins. Stages may be
  served in any order and skipped: the plan decides the order (reorder, skip, lead or lag lefts);
* **the plan's first step decides**: going on with the green stage holds the green (re-planned a
  second later); serving another stage first ends the green and names it;
* **NEMA dual ring** when the plan holds dual-ring stages (``phasing.with_ring_barrier_stages``): a
  left stage of which only one left has vehicles runs it beside the ring partner's through
  ({1, 6} instead of {1, 5}); when one ring's phase of the green stage is done, the other's still
  discharging and the plan goes next to the stage after it, the done phase hands its ring to its
  through at once ({1, 5} -> {1, 6}); in a dual-ring stage the leading phase runs while its queue
  discharges, then the stage moves on to the through stage it leads to;
* **protected/permissive lefts** (flashing yellow arrow): a protected-left stage whose lefts all
  turn permissively in the through stage after it is left out of the plan while each left lane's
  vehicles fit the permissive capacity of that green (gap acceptance in the opposing flow, after the
  opposing queue, plus sneakers) and none has waited ``permissive_max_wait_s``;
* **bounds from the site and the demand**: greens last as long as the plan finds worth it; the
  configured max green is only a safety cap (counted per phase from its own start across
  dual-ring changes), and a **starvation guard** ends the green for any stage called, or any lane
  on red waiting, longer than ``max_wait_s``.

The controller enforces minimum greens, walks, yellow and all-red, and its conflict monitor checks
every output: nothing here can make an output unsafe. Pure logic: plain data in, a decision out.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from rsu_contracts.config.strategy import ScheduleParameters
from rsu_contracts.messages.perception import LaneObservation
from signal_control.phasing import PhasePlan, transition_stages
from signal_control.strategies.base import Decision, DecisionContext, Termination

# The plan's first step when it goes on with the green stage.
_EXTEND = -1


@dataclass(frozen=True)
class Cluster:
    """Vehicles of one stage arriving together: per vehicle its free-flow departure (seconds from
    now), its saturated-discharge offset within the cluster's lane (rank x headway) and its weight
    (1 for a seen vehicle, a share of one for a predicted one)."""

    departures_s: tuple[float, ...]
    offsets_s: tuple[float, ...]
    weights: tuple[float, ...]
    # The stage must stay green at least this long once it starts for the cluster (a walk).
    min_service_s: float = 0.0
    # The lane of each vehicle ("" for a pedestrian call): clusters merge lane by lane.
    lanes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        count = len(self.departures_s)
        if not count == len(self.offsets_s) == len(self.weights) or len(self.lanes) not in (0, count):
            raise ValueError("a cluster needs one offset, one weight and (if any) one lane per departure")
        # Vehicle k is delayed once the green is available later than departure_k - offset_k; the
        # total delay is piecewise linear in the start: sum over delayed k of w_k (start - b_k).
        order = sorted(range(len(self.departures_s)), key=lambda k: self.departures_s[k] - self.offsets_s[k])
        breaks = [self.departures_s[k] - self.offsets_s[k] for k in order]
        weight_sums, weighted_breaks = [0.0], [0.0]
        for k, b in zip(order, breaks, strict=True):
            weight_sums.append(weight_sums[-1] + self.weights[k])
            weighted_breaks.append(weighted_breaks[-1] + self.weights[k] * b)
        object.__setattr__(self, "_breaks", tuple(breaks))
        object.__setattr__(self, "_weight_sums", tuple(weight_sums))
        object.__setattr__(self, "_weighted_breaks", tuple(weighted_breaks))
        object.__setattr__(self, "_last_free_s", max(self.departures_s, default=0.0))
        object.__setattr__(self, "_last_offset_s", max(self.offsets_s, default=0.0))

    @property
    def arrival_s(self) -> float:
        return min(self.departures_s, default=0.0)

    @property
    def vehicles(self) -> float:
        return sum(self.weights)

    def served_from(self, start_s: float) -> tuple[float, float]:
        """(total delay, last departure) when the stage's green is available from ``start_s``:
        each vehicle leaves at max(its free departure, start + its offset)."""
        delayed = bisect_left(self._breaks, start_s)  # type: ignore[attr-defined]
        delay = self._weight_sums[delayed] * start_s - self._weighted_breaks[delayed]  # type: ignore[attr-defined]
        last = max(self._last_free_s, start_s + self._last_offset_s, start_s + self.min_service_s)  # type: ignore[attr-defined]
        return delay, last


@dataclass(frozen=True)
class Schedule:
    """The plan's outcome: its first step (``None``: nothing to serve), the first other stage it
    serves, its total delay and when the green stage's first block of service ends."""

    first_stage: int | None
    extend: bool
    next_other_stage: int | None
    delay_veh_s: float
    hold_until_s: float


def plan_schedule(
    clusters: Sequence[Sequence[Cluster]],
    current: int,
    green_age_s: float,
    current_min_green_s: float,
    current_max_green_s: float,
    min_green_s: Sequence[float],
    clearance_s: Sequence[Sequence[float]],
    startup_s: float,
) -> Schedule:
    """Forward dynamic programming over cluster sequences (times in seconds from now).

    ``clusters[i]`` are stage i's clusters in arrival order; ``current`` is the green stage, green
    for ``green_age_s`` already, which may end after ``current_min_green_s`` and not go on serving
    after ``current_max_green_s`` (both from its start). ``min_green_s[i]`` is stage i's shortest
    green, ``clearance_s[i][j]`` the yellow + all-red from stage i to j.
    """
    stages = len(clusters)
    sizes = tuple(len(c) for c in clusters)
    total = sum(sizes)
    if total == 0:
        return Schedule(None, False, None, 0.0, 0.0)
    green_start = -green_age_s
    # state (served per stage, green stage) -> (delay, finish, green start, first, next other, block end)
    State = tuple[tuple[int, ...], int]
    Value = tuple[float, float, float, int | None, int | None, float | None]
    layer: dict[State, Value] = {((0,) * stages, current): (0.0, 0.0, green_start, None, None, None)}
    for _ in range(total):
        following: dict[State, Value] = {}
        for (served, green), (delay, finish, started, first, other, block_end) in layer.items():
            for stage in range(stages):
                position = served[stage]
                if position >= sizes[stage]:
                    continue
                cluster = clusters[stage][position]
                if stage == green:
                    start = finish
                    if green == current and start >= current_max_green_s - green_age_s:
                        continue  # the safety cap: the green stage cannot go on serving
                    cluster_delay, end = cluster.served_from(start)
                    new_started = started
                    step_first = _EXTEND if stage == current else stage
                    switched = False
                else:
                    minimum = current_min_green_s if green == current and started == green_start else min_green_s[green]
                    ends = max(finish, started + minimum)
                    new_started = ends + clearance_s[green][stage]
                    cluster_delay, end = cluster.served_from(new_started + startup_s)
                    end = max(end, new_started + min_green_s[stage])
                    step_first = stage
                    switched = True
                new_served = (*served[:stage], position + 1, *served[stage + 1 :])
                key = (new_served, stage)
                value: Value = (
                    delay + cluster_delay,
                    end,
                    new_started,
                    step_first if first is None else first,
                    stage if other is None and switched else other,
                    finish if block_end is None and switched else block_end,
                )
                known = following.get(key)
                if known is None or (value[0], value[1]) < (known[0], known[1]):
                    following[key] = value
        if not following:
            break
        layer = following
    best = min(layer.values(), key=lambda v: (v[0], v[1]))
    delay, finish, _, first, other, block_end = best
    extend = first == _EXTEND
    return Schedule(
        first_stage=current if extend else first,
        extend=extend,
        next_other_stage=other,
        delay_veh_s=delay,
        hold_until_s=finish if block_end is None else block_end,
    )


class ScheduleStrategy:
    def __init__(self, plan: PhasePlan, parameters: ScheduleParameters | None = None) -> None:
        self._plan = plan
        self.parameters = parameters or ScheduleParameters()
        self._transitions = transition_stages(plan)
        # The stages the schedule is planned over: the site's own (not the dual-ring overlaps).
        self._base = tuple(i for i in range(len(plan.stages)) if i not in self._transitions)
        self._group_lanes = {g: timing.lane_ids for g, timing in plan.groups.items()}
        self._clearance = tuple(
            tuple(plan.transition_clearance_s(a, b) for b in range(len(plan.stages))) for a in range(len(plan.stages))
        )
        self._permissive_partners = tuple(_permissive_partners(plan, i) for i in range(len(plan.stages)))
        self._flow_per_s: dict[str, float] = {}
        self._flows_at_s: float | None = None
        self._group_green_since: dict[str, float] = {}
        self._stage: int | None = None
        self._called_since: dict[int, float] = {}
        self._planned_at_s: float | None = None
        self._decision: Decision | None = None
        self._served_green_s = [stage.vehicle_min_green_s for stage in plan.stages]
        self._stage_started_s = 0.0

    @property
    def name(self) -> str:
        return "schedule"

    @property
    def serves_every_stage(self) -> bool:
        return False

    def expected_green_s(self, stage_index: int) -> float:
        return self._served_green_s[stage_index]

    # -- the decision -----------------------------------------------------------------------------

    def decide(self, context: DecisionContext) -> Decision:
        p = self.parameters
        now = context.now_s
        changed = self._track(context)
        self._update_flows(context)
        stage = self._plan.stages[context.stage_index]
        if context.time_in_green_s < context.min_green_s:
            return Decision.hold(
                f"stage {stage.stage_id}: minimum green", context.min_green_s - context.time_in_green_s
            )
        others_called = [i for i, called in enumerate(context.stage_calls) if called and i != context.stage_index]
        if not others_called:
            return Decision.hold(f"stage {stage.stage_id}: resting, no demand elsewhere", 0.0)
        starving = self._starving(context)
        if starving is not None:
            target, why = starving
            return Decision.terminate(Termination.FORCE_OFF, target, f"stage {stage.stage_id}: ended, {why}")
        age_s = self._green_age_s(context)
        if age_s >= context.max_green_s:
            target = self._most_waiting(context, others_called)
            return Decision.terminate(
                Termination.MAX_OUT, target, f"stage {stage.stage_id}: max-out after {age_s:.1f} s (safety cap)"
            )
        if (
            not changed
            and self._decision is not None
            and self._planned_at_s is not None
            and now - self._planned_at_s < p.replan_interval_s
        ):
            return self._decision
        self._planned_at_s = now
        self._decision = self._plan_decision(context, others_called)
        return self._decision

    def _plan_decision(self, context: DecisionContext, others_called: list[int]) -> Decision:
        index = context.stage_index
        stage = self._plan.stages[index]
        if index in self._transitions:
            return self._decide_in_dual_ring_stage(context)
        clusters = self._clusters(context)
        schedule = self._schedule(context, index, clusters)
        if schedule.first_stage is None or schedule.extend:
            hold_s = max(0.0, schedule.hold_until_s)
            lead_off = self._lead_off_stage(context, schedule.next_other_stage)
            if lead_off is not None:
                return Decision.terminate(
                    Termination.GAP_OUT,
                    lead_off,
                    f"stage {stage.stage_id}: one ring done, its partner starts "
                    f"({self._plan.stages[lead_off].stage_id})",
                )
            why = "plan goes on" if schedule.first_stage is not None else "nothing to serve"
            return Decision.hold(f"stage {stage.stage_id}: {why} (delay {schedule.delay_veh_s:.0f} veh-s)", hold_s)
        target = schedule.first_stage
        if not context.stage_calls[target]:
            # Only a predicted cluster wants the stage: keep the green until someone calls it.
            return Decision.hold(f"stage {stage.stage_id}: next planned stage not called yet", 0.0)
        target = self._paired_stage(target, context)
        return Decision.terminate(
            Termination.GAP_OUT,
            target,
            f"stage {stage.stage_id}: plan serves {self._plan.stages[target].stage_id} next "
            f"(delay {schedule.delay_veh_s:.0f} veh-s)",
        )

    def _schedule(self, context: DecisionContext, index: int, clusters: dict[int, list[Cluster]]) -> Schedule:
        base = self._base if index in self._base else (*self._base, index)
        position = base.index(index)
        per_stage = [clusters.get(i, []) for i in base]
        mins = [self._min_green_s(i, context) for i in base]
        clearance = [[self._clearance[a][b] for b in base] for a in base]
        schedule = plan_schedule(
            per_stage,
            position,
            context.time_in_green_s,
            context.min_green_s,
            context.max_green_s,
            mins,
            clearance,
            self.parameters.startup_s,
        )
        first = None if schedule.first_stage is None else base[schedule.first_stage]
        other = None if schedule.next_other_stage is None else base[schedule.next_other_stage]
        return Schedule(first, schedule.extend, other, schedule.delay_veh_s, schedule.hold_until_s)

    # -- NEMA dual ring ---------------------------------------------------------------------------

    def _decide_in_dual_ring_stage(self, context: DecisionContext) -> Decision:
        """In an overlap stage ({1, 6}): the leading phase runs while it discharges, then the stage
        moves on to the through stage it leads to."""
        index = context.stage_index
        stage = self._plan.stages[index]
        _, follow = self._transitions[index]
        leading = [g for g in stage.vehicle_group_ids if g not in self._plan.stages[follow].vehicle_group_ids]
        for group_id in leading:
            wants = self._group_wants_s(group_id, context)
            since = self._group_green_since.get(group_id, context.now_s)
            if wants is not None and context.now_s - since < self._plan.groups[group_id].max_green_s:
                return Decision.hold(f"stage {stage.stage_id}: phase {group_id} still discharging", wants)
        return Decision.terminate(
            Termination.GAP_OUT,
            follow,
            f"stage {stage.stage_id}: leading phase done, on to {self._plan.stages[follow].stage_id}",
        )

    def _lead_off_stage(self, context: DecisionContext, next_stage: int | None) -> int | None:
        """The overlap stage keeping the green stage's still discharging phase and starting the
        partner of the stage the plan serves next, when one ring's phase is done."""
        if next_stage is None:
            return None
        index = context.stage_index
        stage = self._plan.stages[index]
        going_on = {g for g in stage.vehicle_group_ids if self._group_wants_s(g, context) is not None}
        if not going_on or len(going_on) == len(stage.vehicle_group_ids):
            return None
        for candidate, (lead, follow) in self._transitions.items():
            if lead != index or follow != next_stage:
                continue
            members = set(self._plan.stages[candidate].vehicle_group_ids)
            added = members - set(stage.vehicle_group_ids)
            if going_on <= members and any(self._group_vehicles(g, context) > 0 for g in added):
                return candidate
        return None

    def _paired_stage(self, stage_index: int, context: DecisionContext) -> int:
        """The overlap stage to serve instead of ``stage_index`` when only one ring's phase of it
        has vehicles: the one keeping that phase beside the called partner of the next stage."""
        groups = self._plan.stages[stage_index].vehicle_group_ids
        wanted = {g for g in groups if self._group_vehicles(g, context) > 0}
        if not wanted or len(wanted) == len(groups):
            return stage_index
        best, best_demand = stage_index, 0.0
        for candidate, (lead, follow) in self._transitions.items():
            if lead != stage_index or candidate == context.stage_index:
                continue
            members = set(self._plan.stages[candidate].vehicle_group_ids)
            added = members - set(groups)
            if not wanted <= members or not added <= set(self._plan.stages[follow].vehicle_group_ids):
                continue
            demand = sum(self._group_vehicles(g, context) for g in added)
            if demand > best_demand:
                best, best_demand = candidate, demand
        return best

    # -- what the camera says ---------------------------------------------------------------------

    def _clusters(self, context: DecisionContext) -> dict[int, list[Cluster]]:
        """Each base stage's clusters (see the module docstring); stages left out: none."""
        p = self.parameters
        result: dict[int, list[Cluster]] = {}
        for index in self._base:
            if self._served_permissively(index, context):
                continue
            stage = self._plan.stages[index]
            seen: list[tuple[float, str, float]] = []
            predicted: list[tuple[float, str, float]] = []
            for lane_id in stage.lane_ids:
                observation = context.lanes.get(lane_id)
                if observation is None:
                    continue
                standing = _standing(observation)
                departures = _free_departures(
                    standing, self._lane_arrivals_s(lane_id, observation, context), p.headway_s
                )
                queue_weight = 1.0 + p.wait_weight_per_min * observation.max_wait_s / 60.0
                seen.extend((t, lane_id, queue_weight if k < standing else 1.0) for k, t in enumerate(departures))
                flow = self._flow_per_s.get(lane_id, 0.0)
                expected = flow * p.future_horizon_s
                if expected > 0.05:
                    view_end_s = max(departures[-1] if departures else 0.0, p.lookahead_s)
                    count = math.ceil(expected)
                    predicted.extend(
                        (view_end_s + (k + 0.5) * p.future_horizon_s / count, lane_id, expected / count)
                        for k in range(count)
                    )
            clusters = _split(sorted(seen), p.cluster_gap_s, p.max_clusters_per_stage, p.headway_s)
            walk_s = self._called_walk_s(index, context)
            if walk_s > 0.0 or (context.stage_calls[index] and not clusters):
                # A waiting pedestrian (or a call without a vehicle in view) is served at once: it
                # joins the first cluster when that is the queue, else leads as its own.
                weight = p.pedestrian_weight_vehicles if walk_s > 0.0 else 1.0
                if clusters and clusters[0].arrival_s <= p.cluster_gap_s:
                    first = clusters[0]
                    clusters[0] = Cluster(
                        (0.0, *first.departures_s),
                        (0.0, *first.offsets_s),
                        (weight, *first.weights),
                        walk_s,
                        ("", *first.lanes),
                    )
                else:
                    clusters.insert(0, Cluster((0.0,), (0.0,), (weight,), walk_s, ("",)))
            if clusters and predicted:
                predicted.sort()
                if len(clusters) >= p.max_clusters_per_stage:
                    # The cap holds: the predicted vehicles join the last cluster.
                    last = clusters.pop()
                    merged = sorted([*zip(last.departures_s, last.lanes, last.weights, strict=True), *predicted])
                    service_s = last.min_service_s
                else:
                    merged, service_s = predicted, 0.0
                clusters.append(
                    Cluster(
                        tuple(t for t, _, _ in merged),
                        _offsets([lane for _, lane, _ in merged], p.headway_s),
                        tuple(w for _, _, w in merged),
                        service_s,
                        tuple(lane for _, lane, _ in merged),
                    )
                )
            if clusters:
                result[index] = clusters
        return result

    def _lane_arrivals_s(self, lane_id: str, observation: LaneObservation, context: DecisionContext) -> list[float]:
        """Seconds until each approaching vehicle reaches the stop line: the camera's lookahead, or
        without it the lane's approaching vehicles spread over the watched length."""
        p = self.parameters
        if context.arrivals_s:
            return list(context.arrivals_s.get(lane_id, ()))
        if observation.approaching_vehicles > 0 and observation.approaching_speed_mean_mps >= p.min_platoon_speed_mps:
            count = observation.approaching_vehicles
            travel_s = p.watched_length_m / observation.approaching_speed_mean_mps
            return [travel_s * (i + 1) / (count + 1) for i in range(count)]
        return []

    def _update_flows(self, context: DecisionContext) -> None:
        p = self.parameters
        elapsed_s = 0.0 if self._flows_at_s is None else max(0.0, context.now_s - self._flows_at_s)
        self._flows_at_s = context.now_s
        weight = min(1.0, elapsed_s / p.flow_time_constant_s)
        for lane_id, observation in context.lanes.items():
            flow = observation.approaching_vehicles * observation.approaching_speed_mean_mps / p.watched_length_m
            previous = self._flow_per_s.get(lane_id)
            self._flow_per_s[lane_id] = flow if previous is None else previous + (flow - previous) * weight

    def _group_vehicles(self, group_id: str, context: DecisionContext) -> int:
        return sum(
            _standing(obs) + obs.approaching_vehicles
            for lane_id in self._group_lanes[group_id]
            if (obs := context.lanes.get(lane_id)) is not None
        )

    def _group_wants_s(self, group_id: str, context: DecisionContext) -> float | None:
        """Green a group's lanes still want: their standing queue's discharge, or a vehicle arriving
        within one cluster gap (and beyond the yellow's reach); None once neither."""
        p = self.parameters
        wanted: float | None = None
        for lane_id in self._group_lanes[group_id]:
            observation = context.lanes.get(lane_id)
            if observation is None:
                continue
            standing = _standing(observation)
            lane_wants: float | None = p.headway_s * standing if standing else None
            if lane_wants is None:
                near = [
                    t
                    for t in self._lane_arrivals_s(lane_id, observation, context)
                    if p.yellow_pass_s < t <= p.cluster_gap_s
                ]
                lane_wants = near[-1] - p.yellow_pass_s if near else None
            if lane_wants is not None and (wanted is None or lane_wants > wanted):
                wanted = lane_wants
        return wanted

    # -- bounds and fairness ----------------------------------------------------------------------

    def _track(self, context: DecisionContext) -> bool:
        """Note stage changes, each group's green start and how long each stage has been called."""
        now = context.now_s
        changed = context.stage_index != self._stage
        if changed:
            previous = set() if self._stage is None else set(self._plan.stages[self._stage].vehicle_group_ids)
            if self._stage is not None:
                self._served_green_s[self._stage] = now - self._stage_started_s
            started_s = now - context.time_in_green_s
            self._stage_started_s = started_s
            for group_id in self._plan.stages[context.stage_index].vehicle_group_ids:
                if group_id not in previous or group_id not in self._group_green_since:
                    self._group_green_since[group_id] = started_s
            self._stage = context.stage_index
        current_groups = set(self._plan.stages[context.stage_index].group_ids)
        for index, called in enumerate(context.stage_calls):
            served = set(self._plan.stages[index].group_ids) <= current_groups
            if called and not served:
                self._called_since.setdefault(index, now)
            else:
                self._called_since.pop(index, None)
        return changed

    def _green_age_s(self, context: DecisionContext) -> float:
        """How long the green stage's longest running phase has been green (across overlap changes)."""
        since = [
            self._group_green_since.get(g, context.now_s - context.time_in_green_s)
            for g in self._plan.stages[context.stage_index].vehicle_group_ids
        ]
        return context.now_s - min(since, default=context.now_s - context.time_in_green_s)

    def _starving(self, context: DecisionContext) -> tuple[int, str] | None:
        """The base stage to serve now because it has been called, or one of its lanes has waited on
        red, for ``max_wait_s``; None while nobody has."""
        p = self.parameters
        now = context.now_s
        serving = set(self._plan.stages[context.stage_index].lane_ids)
        worst: tuple[float, int, str] | None = None
        for index in self._base:
            if index == context.stage_index:
                continue
            waited = now - self._called_since[index] if index in self._called_since else 0.0
            why = f"stage {self._plan.stages[index].stage_id} called {waited:.0f} s ago"
            for lane_id in self._plan.stages[index].lane_ids:
                observation = context.lanes.get(lane_id)
                if lane_id in serving or observation is None:
                    continue
                if observation.max_wait_s > waited:
                    waited, why = observation.max_wait_s, f"lane {lane_id} waited {observation.max_wait_s:.0f} s"
            if waited >= p.max_wait_s and (worst is None or waited > worst[0]):
                worst = (waited, index, why)
        if worst is None:
            return None
        return worst[1], worst[2]

    def _most_waiting(self, context: DecisionContext, called: list[int]) -> int:
        """Of the called stages, the base stage called longest (the first called one otherwise)."""
        candidates = [i for i in called if i in self._base] or called
        return min(candidates, key=lambda i: self._called_since.get(i, context.now_s))

    def _min_green_s(self, index: int, context: DecisionContext) -> float:
        stage = self._plan.stages[index]
        return max(stage.vehicle_min_green_s, self._called_walk_s(index, context))

    def _called_walk_s(self, index: int, context: DecisionContext) -> float:
        stage = self._plan.stages[index]
        called = context.pedestrian_calls.intersection(stage.pedestrian_group_ids)
        return stage.pedestrian_service_s if called else 0.0

    # -- protected/permissive lefts ---------------------------------------------------------------

    def _served_permissively(self, index: int, context: DecisionContext) -> bool:
        """A protected-left stage whose lefts all fit the permissive capacity of their through's
        green (each left lane's vehicles, none waiting ``permissive_max_wait_s``)."""
        partners = self._permissive_partners[index]
        if not partners:
            return False
        p = self.parameters
        for group_id in self._plan.stages[index].vehicle_group_ids:
            capacity = self._permissive_capacity(group_id, context)
            for lane_id in self._group_lanes[group_id]:
                observation = context.lanes.get(lane_id)
                if observation is None or observation.max_wait_s >= p.permissive_max_wait_s:
                    return False
                if _standing(observation) + observation.approaching_vehicles > capacity:
                    return False
        return True

    def _permissive_capacity(self, group_id: str, context: DecisionContext) -> float:
        """Vehicles one permissive left lane can expect to turn in its partner's coming green:
        gaps in the opposing flow after the opposing queue has gone, plus sneakers."""
        p = self.parameters
        partner = self._plan.groups[group_id].permissive_with
        opposing = self._group_lanes[partner] if partner is not None else ()
        flow_per_s = sum(self._flow_per_s.get(lane_id, 0.0) for lane_id in opposing)
        queued = sum(_standing(obs) for lane_id in opposing if (obs := context.lanes.get(lane_id)) is not None)
        partner_stage = next((i for i in self._base if partner in self._plan.stages[i].vehicle_group_ids), None)
        green_s = self._served_green_s[partner_stage] if partner_stage is not None else 0.0
        unsaturated_s = max(0.0, green_s - p.startup_s - p.headway_s * queued / max(1, len(opposing)))
        if flow_per_s <= 1e-6:
            turning_per_s = 1.0 / p.follow_up_s
        else:
            turning_per_s = (
                flow_per_s * math.exp(-flow_per_s * p.critical_gap_s) / (1.0 - math.exp(-flow_per_s * p.follow_up_s))
            )
        return min(float(p.permissive_max_vehicles), turning_per_s * unsaturated_s + p.sneakers_per_green)


def _permissive_partners(plan: PhasePlan, index: int) -> frozenset[str]:
    """The opposing throughs of a protected-left stage whose lefts all may also turn permissively;
    empty for any other stage (one with pedestrians, or with a group that never turns permissively)."""
    stage = plan.stages[index]
    partners = [plan.groups[g].permissive_with for g in stage.vehicle_group_ids]
    if not partners or stage.pedestrian_group_ids or None in partners:
        return frozenset()
    return frozenset(p for p in partners if p is not None)


def _standing(observation: LaneObservation) -> int:
    """Vehicles standing in a lane's queue (at least the one on the stop bar)."""
    return max(observation.queued_vehicles, int(observation.stop_bar_occupied))


def _free_departures(standing: int, arrivals_s: Sequence[float], headway_s: float) -> list[float]:
    """When each vehicle of one lane would cross the stop line on a green from now: the queue one
    headway apart, then each arrival when it arrives or one headway after the vehicle ahead."""
    departures = [k * headway_s for k in range(standing)]
    for arrival_s in sorted(arrivals_s):
        departures.append(max(arrival_s, departures[-1] + headway_s) if departures else arrival_s)
    return departures


def _offsets(lanes: Sequence[str], headway_s: float) -> tuple[float, ...]:
    """Each vehicle's saturated-discharge offset: its rank among the cluster's vehicles of its lane."""
    ranks: dict[str, int] = {}
    offsets: list[float] = []
    for lane in lanes:
        rank = ranks.get(lane, 0)
        offsets.append(rank * headway_s)
        ranks[lane] = rank + 1
    return tuple(offsets)


def _split(
    vehicles: list[tuple[float, str, float]], gap_s: float, max_clusters: int, headway_s: float
) -> list[Cluster]:
    """A stage's vehicles (free departure, lane, weight; ascending) split at gaps above ``gap_s``
    into at most ``max_clusters`` clusters (the rest joins the last)."""
    groups: list[list[tuple[float, str, float]]] = []
    for vehicle in vehicles:
        if groups and (vehicle[0] - groups[-1][-1][0] <= gap_s or len(groups) == max_clusters):
            groups[-1].append(vehicle)
        else:
            groups.append([vehicle])
    return [
        Cluster(
            tuple(t for t, _, _ in group),
            _offsets([lane for _, lane, _ in group], headway_s),
            tuple(w for _, _, w in group),
            lanes=tuple(lane for _, lane, _ in group),
        )
        for group in groups
    ]
