"""The adaptive strategy on synthetic camera observations: it extends a green while the queue
discharges or a vehicle is about to arrive, ends it once the lanes have cleared, forces it off
for a road user who has waited too long, and passes over a light stage only while its call is young.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from rsu.config import SiteConfig
from rsu.messages.perception import LaneObservation
from signal_control import PhasePlan, SignalController
from signal_control.strategies import Action, AdaptiveStrategy, DecisionContext, Termination
from tests.signal_control.harness import ALL_LANES, empty_lane, green_starts, occupied_lane

NS_LEFT, NS_THROUGH, EW_LEFT, EW_THROUGH = range(4)
NS_THROUGH_LANES = ("north_through_right", "south_through_right")


@pytest.fixture
def plan(sample_site: SiteConfig) -> PhasePlan:
    return PhasePlan.from_site(sample_site)


def lane(lane_id: str, **fields: float | int | bool) -> LaneObservation:
    values: dict[str, float | int | bool] = {
        "stop_bar_occupied": False,
        "queue_length_m": 0.0,
        "queued_vehicles": 0,
        "approaching_vehicles": 0,
        "stop_bar_gap_s": 30.0,
    }
    values.update(fields)
    return LaneObservation.model_validate({"lane_id": lane_id, **values})


def context(
    stage: int,
    lanes: dict[str, LaneObservation],
    time_in_green_s: float = 15.0,
    calls: tuple[bool, ...] = (True, True, True, True),
    arrivals_s: Mapping[str, tuple[float, ...]] | None = None,
    now_s: float = 1000.0,
) -> DecisionContext:
    observations = {lane_id: lanes.get(lane_id, empty_lane(lane_id)) for lane_id in ALL_LANES}
    return DecisionContext(
        now_s=now_s,
        stage_index=stage,
        time_in_green_s=time_in_green_s,
        min_green_s=10.0,
        max_green_s=45.0,
        stage_calls=calls,
        lanes=observations,
        arrivals_s=arrivals_s or {},
    )


def waiting_on_red(vehicles: int = 3, wait_s: float = 20.0) -> dict[str, LaneObservation]:
    return {
        "east_through_right": lane(
            "east_through_right", queued_vehicles=vehicles, queue_length_m=7.0 * vehicles, max_wait_s=wait_s
        )
    }


def test_extends_while_the_queue_discharges(plan: PhasePlan) -> None:
    strategy = AdaptiveStrategy(plan)
    standing = {"north_through_right": lane("north_through_right", queued_vehicles=4, queue_length_m=28.0)}
    flowing = {"north_through_right": lane("north_through_right", stop_bar_gap_s=0.6, approaching_vehicles=3)}
    for green_lanes in (standing, flowing):
        decision = strategy.decide(context(NS_THROUGH, {**waiting_on_red(), **green_lanes}))
        assert decision.action is Action.HOLD, decision.reason
        assert decision.likely_remaining_s > 0


def test_ends_the_green_once_the_lanes_have_cleared(plan: PhasePlan) -> None:
    calls = (False, True, False, True)
    decision = AdaptiveStrategy(plan).decide(context(NS_THROUGH, waiting_on_red(), calls=calls))
    assert decision.action is Action.TERMINATE
    assert decision.termination is Termination.GAP_OUT
    assert decision.next_stage == EW_THROUGH


def test_holds_for_a_vehicle_about_to_arrive_and_not_for_one_far_away(plan: PhasePlan) -> None:
    strategy = AdaptiveStrategy(plan)
    approaching = {"north_through_right": lane("north_through_right", approaching_vehicles=1)}
    near = context(NS_THROUGH, {**waiting_on_red(), **approaching}, arrivals_s={"north_through_right": (1.2,)})
    far = context(NS_THROUGH, {**waiting_on_red(), **approaching}, arrivals_s={"north_through_right": (9.0,)})
    assert strategy.decide(near).action is Action.HOLD
    assert strategy.decide(far).termination is Termination.GAP_OUT


def test_the_arrival_horizon_shrinks_as_more_vehicles_wait_on_red(plan: PhasePlan) -> None:
    strategy = AdaptiveStrategy(plan)
    approaching = {"north_through_right": lane("north_through_right", approaching_vehicles=1)}
    arrivals = {"north_through_right": (2.5,)}
    few_waiting = context(NS_THROUGH, {**waiting_on_red(vehicles=1), **approaching}, arrivals_s=arrivals)
    many_waiting = context(NS_THROUGH, {**waiting_on_red(vehicles=20), **approaching}, arrivals_s=arrivals)
    assert strategy.decide(few_waiting).action is Action.HOLD
    assert strategy.decide(many_waiting).termination is Termination.GAP_OUT


def test_a_starving_approach_forces_the_green_off_even_while_it_discharges(plan: PhasePlan) -> None:
    strategy = AdaptiveStrategy(plan)
    discharging = {"north_through_right": lane("north_through_right", stop_bar_occupied=True, queued_vehicles=6)}
    starving = waiting_on_red(wait_s=strategy.parameters.max_wait_s + 1.0)
    decision = strategy.decide(context(NS_THROUGH, {**starving, **discharging}))
    assert decision.termination is Termination.FORCE_OFF
    # Below the bound the same queue keeps its green.
    assert strategy.decide(context(NS_THROUGH, {**waiting_on_red(wait_s=30.0), **discharging})).action is Action.HOLD


def test_min_and_max_green_and_resting(plan: PhasePlan) -> None:
    strategy = AdaptiveStrategy(plan)
    discharging = {"north_through_right": lane("north_through_right", queued_vehicles=6)}
    assert strategy.decide(context(NS_THROUGH, waiting_on_red(), time_in_green_s=5.0)).action is Action.HOLD
    maxed = strategy.decide(context(NS_THROUGH, {**waiting_on_red(), **discharging}, time_in_green_s=45.0))
    assert maxed.termination is Termination.MAX_OUT
    resting = strategy.decide(context(NS_THROUGH, {}, calls=(False, True, False, False)))
    assert resting.action is Action.HOLD


def test_a_light_left_stage_is_passed_over_only_while_its_call_is_young(plan: PhasePlan) -> None:
    strategy = AdaptiveStrategy(plan)
    one_left = {"east_left": lane("east_left", approaching_vehicles=1)}
    lanes = {**waiting_on_red(vehicles=6), **one_left}
    calls = (False, True, True, True)
    # The call of ew_left is first seen now: young, one vehicle against six -> straight to ew_through.
    young = strategy.decide(context(NS_THROUGH, lanes, calls=calls, now_s=1000.0))
    assert young.next_stage == EW_THROUGH
    # The same call 20 s later is older than the skip bound: served in turn.
    old = strategy.decide(context(NS_THROUGH, lanes, calls=calls, now_s=1020.0))
    assert old.next_stage == EW_LEFT


def test_controller_switches_to_adaptive_at_run_time_and_serves_the_demand(sample_site: SiteConfig) -> None:
    controller = SignalController(sample_site)
    controller.set_strategy("adaptive")
    assert controller.strategy == "adaptive"
    outputs = []
    now_s = 1000.0
    for _ in range(1200):
        now_s += 0.1
        lanes = [
            occupied_lane(lane_id) if lane_id in NS_THROUGH_LANES else empty_lane(lane_id) for lane_id in ALL_LANES
        ]
        outputs.append(controller.step(now_s, lanes))
    assert all(output.strategy == "adaptive" for output in outputs)
    assert green_starts(outputs, "2"), "the called through stage never got its green"
    # Nobody else is called: the through stage rests in green once it has it.
    assert outputs[-1].stage_id == "ns_through"
