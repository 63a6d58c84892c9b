"""The adaptive strategy on synthetic camera observations: it extends a green while the queue
discharges or a vehicle is about to arrive, ends it once the lanes have cleared, forces it off
for a road user who has waited too long, and passes over a light stage only while its call is young.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsu_contracts.config import SiteConfig
from rsu_contracts.messages.perception import LaneObservation
from rsu_contracts.messages.signal import ControllerMode, Indication
from signal_control import PhasePlan, SignalController
from signal_control.phasing import with_ring_barrier_stages
from signal_control.strategies import Action, AdaptiveStrategy, DecisionContext, Termination
from tests.signal_control.harness import (
    ALL_LANES,
    LANES_OF_GROUP,
    SafetyChecker,
    empty_lane,
    green_starts,
    occupied_lane,
    pedestrians_waiting,
    waiting_lane,
)

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
    lanes = {**waiting_on_red(vehicles=6), **approaching}
    near = context(NS_THROUGH, lanes, arrivals_s={"north_through_right": (2.5,)})
    far = context(NS_THROUGH, lanes, arrivals_s={"north_through_right": (14.0,)})
    assert strategy.decide(near).action is Action.HOLD
    assert strategy.decide(far).termination is Termination.GAP_OUT


def test_a_vehicle_passing_on_yellow_does_not_hold_the_green(plan: PhasePlan) -> None:
    strategy = AdaptiveStrategy(plan)
    approaching = {"north_through_right": lane("north_through_right", approaching_vehicles=1)}
    just_there = context(NS_THROUGH, {**waiting_on_red(), **approaching}, arrivals_s={"north_through_right": (0.5,)})
    assert strategy.decide(just_there).termination is Termination.GAP_OUT


def test_the_more_vehicles_wait_on_red_the_nearer_an_arrival_must_be_to_hold(plan: PhasePlan) -> None:
    # Holding saves the arriving vehicle a whole red; every vehicle on red pays the time held.
    strategy = AdaptiveStrategy(plan)
    approaching = {"north_through_right": lane("north_through_right", approaching_vehicles=1)}
    arrivals = {"north_through_right": (6.0,)}
    few_waiting = context(NS_THROUGH, {**waiting_on_red(vehicles=1), **approaching}, arrivals_s=arrivals)
    many_waiting = context(NS_THROUGH, {**waiting_on_red(vehicles=20), **approaching}, arrivals_s=arrivals)
    assert strategy.decide(few_waiting).action is Action.HOLD
    assert strategy.decide(many_waiting).termination is Termination.GAP_OUT


def test_a_platoon_is_worth_a_longer_hold_than_a_single_vehicle(plan: PhasePlan) -> None:
    strategy = AdaptiveStrategy(plan)
    lanes = {**waiting_on_red(vehicles=12), "north_through_right": lane("north_through_right", approaching_vehicles=4)}
    single = context(NS_THROUGH, lanes, arrivals_s={"north_through_right": (6.0,)})
    platoon = context(NS_THROUGH, lanes, arrivals_s={"north_through_right": (6.0, 7.5, 9.0, 10.5)})
    assert strategy.decide(single).termination is Termination.GAP_OUT
    held = strategy.decide(platoon)
    assert held.action is Action.HOLD
    assert held.likely_remaining_s > 6.0  # to the platoon's end, not its first vehicle


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


@pytest.fixture
def protected_lefts_plan(sample_site: SiteConfig) -> PhasePlan:
    """The sample with lefts that never turn permissively (a protected-only left-turn plan)."""
    data = sample_site.model_dump()
    for group in data["signal_groups"]:
        group["permissive_with"] = None
    return PhasePlan.from_site(SiteConfig.model_validate(data))


def test_a_light_left_stage_is_passed_over_only_while_its_call_is_young(protected_lefts_plan: PhasePlan) -> None:
    # (With a permissive left it would turn in the through's green: tests/signal_control/test_permissive_lefts.py.)
    strategy = AdaptiveStrategy(protected_lefts_plan)
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


# -- NEMA dual ring ------------------------------------------------------------------------------


@pytest.fixture
def dual_ring_plan(sample_site: SiteConfig) -> PhasePlan:
    return PhasePlan.from_site(with_ring_barrier_stages(sample_site))


def dual_ring_context(
    plan: PhasePlan,
    stage_id: str,
    lanes: dict[str, LaneObservation],
    called: tuple[str, ...],
    time_in_green_s: float = 12.0,
    now_s: float = 1000.0,
) -> DecisionContext:
    calls = tuple(stage.stage_id in called for stage in plan.stages)
    observations = {lane_id: lanes.get(lane_id, empty_lane(lane_id)) for lane_id in ALL_LANES}
    return DecisionContext(
        now_s=now_s,
        stage_index=plan.stage_index(stage_id),
        time_in_green_s=time_in_green_s,
        min_green_s=5.0,
        max_green_s=45.0,
        stage_calls=calls,
        lanes=observations,
    )


def queue(lane_id: str, vehicles: int) -> LaneObservation:
    return lane(lane_id, queued_vehicles=vehicles, queue_length_m=7.0 * vehicles, stop_bar_occupied=True)


def test_a_lone_left_runs_beside_its_own_through(dual_ring_plan: PhasePlan) -> None:
    # Leaving the side street, only the north left (phase 5) of the lead-left stage has demand:
    # phase 2 (southbound through, which phase 5 does not cross) starts with it.
    lanes = {"north_left": queue("north_left", 3), **{lane_id: queue(lane_id, 5) for lane_id in NS_THROUGH_LANES}}
    called = ("ns_left", "ns_through", "nema_2_5", "nema_1_6")
    decision = AdaptiveStrategy(dual_ring_plan).decide(dual_ring_context(dual_ring_plan, "ew_through", lanes, called))
    assert decision.action is Action.TERMINATE
    assert dual_ring_plan.stages[decision.next_stage or 0].stage_id == "nema_2_5"


def test_in_a_dual_ring_stage_only_the_phase_that_would_end_decides(dual_ring_plan: PhasePlan) -> None:
    # In {2, 5} the next stage {2, 6} keeps 2 green: its queue does not hold 6 back once 5 is done.
    strategy = AdaptiveStrategy(dual_ring_plan)
    lanes = {
        "north_through_right": queue("north_through_right", 6),
        "south_through_right": queue("south_through_right", 4),
    }
    decision = strategy.decide(dual_ring_context(dual_ring_plan, "nema_2_5", lanes, ("ns_through",)))
    assert decision.action is Action.TERMINATE
    assert dual_ring_plan.stages[decision.next_stage or 0].stage_id == "ns_through"
    # While the left still discharges, the stage holds.
    with_left = {**lanes, "north_left": queue("north_left", 2)}
    assert (
        strategy.decide(dual_ring_context(dual_ring_plan, "nema_2_5", with_left, ("ns_through",))).action is Action.HOLD
    )


def test_an_uneven_pair_of_lefts_hands_the_short_ones_ring_to_its_through(dual_ring_plan: PhasePlan) -> None:
    # The south left (phase 1) still has a long queue, the north left (5) is done: phase 6 (the
    # northbound through beside phase 1) starts now instead of after the whole left stage.
    strategy = AdaptiveStrategy(dual_ring_plan)
    lanes = {
        "south_left": queue("south_left", 8),
        "south_through_right": queue("south_through_right", 6),
        "north_through_right": queue("north_through_right", 1),
    }
    decision = strategy.decide(
        dual_ring_context(dual_ring_plan, "ns_left", lanes, ("ns_through",), time_in_green_s=6.0)
    )
    assert decision.action is Action.TERMINATE
    assert dual_ring_plan.stages[decision.next_stage or 0].stage_id == "nema_1_6"
    # With as short a queue on the left as the through's minimum would outlast, the pair runs on.
    short = {**lanes, "south_left": queue("south_left", 1)}
    kept = strategy.decide(dual_ring_context(dual_ring_plan, "ns_left", short, ("ns_through",), time_in_green_s=6.0))
    assert kept.action is Action.HOLD


def test_after_a_dual_ring_stage_the_rotation_goes_on_across_the_barrier(dual_ring_plan: PhasePlan) -> None:
    # {1, 6} stands at the lead-left stage: with nothing more on the main street it hands over to
    # the side street, never back to a stage it has just served.
    lanes = {"east_through_right": queue("east_through_right", 4)}
    decision = AdaptiveStrategy(dual_ring_plan).decide(
        dual_ring_context(dual_ring_plan, "nema_1_6", lanes, ("ns_left", "ew_through", "nema_4_7"))
    )
    assert decision.action is Action.TERMINATE
    assert dual_ring_plan.stages[decision.next_stage or 0].stage_id == "ew_through"


def test_a_phase_kept_green_across_a_dual_ring_stage_change_keeps_its_own_max_green(
    dual_ring_plan: PhasePlan,
) -> None:
    # Phase 2 turns green with the lone left 5 at t=990, and stays green when {2, 6} follows: its
    # 45 s max green counts from t=990, not from the start of {2, 6}.
    strategy = AdaptiveStrategy(dual_ring_plan)
    discharging = {"north_through_right": queue("north_through_right", 6), **waiting_on_red()}
    called = ("ew_left", "ew_through")
    for tenth in range(100):  # {2, 5} from t=990 to t=1000
        now_s = 990.0 + tenth / 10
        strategy.decide(dual_ring_context(dual_ring_plan, "nema_2_5", discharging, called, now_s - 990.0, now_s))
    # {2, 6} begins after the left's yellow and all-red, at t=1005.2, and discharges 2's queue.
    for half_second in range(60):
        in_green_s = half_second / 2
        held = strategy.decide(
            dual_ring_context(dual_ring_plan, "ns_through", discharging, called, in_green_s, 1005.2 + in_green_s)
        )
        assert held.action is Action.HOLD
    maxed = strategy.decide(dual_ring_context(dual_ring_plan, "ns_through", discharging, called, 30.0, 1035.2))
    assert maxed.termination is Termination.MAX_OUT
    # Served from its own start, the same green may run on.
    fresh = AdaptiveStrategy(dual_ring_plan)
    kept = fresh.decide(dual_ring_context(dual_ring_plan, "ns_through", discharging, called, 30.0, 1035.2))
    assert kept.action is Action.HOLD


# Worst wait of a called group under the dual ring: two rotations (a light stage may be passed
# over once) at every stage's maximum green, with a clearance before each of the up to eight
# stages of a rotation and a pedestrian walk + clearance, each change up to one step late.
DUAL_RING_CALL_WAIT_BOUND_S = 2 * (20.0 + 45.0 + 20.0 + 35.0 + 8 * 5.2 + 7.0 + 12.2 + 8 * 1.0)
LANE_STATES = ("empty", "empty", "waiting", "occupied", "arriving")


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.floats(1.0, 40.0),  # segment length, s
            st.floats(0.05, 1.0),  # step, s
            st.fixed_dictionaries({lane_id: st.sampled_from(LANE_STATES) for lane_id in ALL_LANES}),
            st.floats(0.5, 14.0),  # arrival time of the first arriving vehicle, s
            st.frozensets(st.sampled_from(("cw_north", "cw_south", "cw_east", "cw_west"))),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_the_dual_ring_stays_safe_and_serves_every_call(
    sample_site: SiteConfig, segments: list[tuple[float, float, dict[str, str], float, frozenset[str]]]
) -> None:
    site = with_ring_barrier_stages(sample_site)
    controller = SignalController(site)
    controller.set_strategy("adaptive")
    checker = SafetyChecker.for_site(sample_site)
    group_of_lane = {lane_id: group for group, lanes in LANES_OF_GROUP.items() for lane_id in lanes}
    waiting_since: dict[str, float] = {}
    now_s = 10_000.0
    for length_s, step_s, states, first_arrival_s, pedestrians in segments:
        lanes = []
        arrivals: dict[str, tuple[float, ...]] = {}
        for lane_id, state in states.items():
            if state == "occupied":
                lanes.append(occupied_lane(lane_id))
            elif state == "waiting":
                lanes.append(waiting_lane(lane_id))
            elif state == "arriving":
                lanes.append(lane(lane_id, approaching_vehicles=2, approaching_speed_mean_mps=12.0))
                arrivals[lane_id] = (first_arrival_s, first_arrival_s + 2.0)
            else:
                lanes.append(empty_lane(lane_id))
        crosswalks = pedestrians_waiting(*sorted(pedestrians))
        demanding = {group_of_lane[lane_id] for lane_id, state in states.items() if state != "empty"}
        end_s = now_s + length_s
        while now_s < end_s:
            now_s += step_s
            output = controller.step(now_s, lanes, crosswalks, arrivals_s=arrivals)
            assert output.mode is not ControllerMode.FLASH, output.reason
            checker.observe(output)
            shown = {state.signal_group: state.indication for state in output.groups}
            for group in demanding:
                if shown[group] is Indication.GREEN:
                    waiting_since.pop(group, None)
                else:
                    waiting_since.setdefault(group, now_s)
            for group in set(waiting_since) - demanding:
                if shown[group] is Indication.GREEN:
                    del waiting_since[group]
            for group, since_s in waiting_since.items():
                assert now_s - since_s <= DUAL_RING_CALL_WAIT_BOUND_S, f"{group} has waited {now_s - since_s:.1f} s"
    assert checker.checked_outputs > 0
