"""The schedule-driven strategy: it plans the order and length of the coming greens from the
camera's clusters by forward dynamic programming, and acts on the plan's first step.

The planner itself (``plan_schedule``) is checked on hand-built clusters whose best schedule can
be worked out by hand; the strategy on synthetic camera observations of the sample junction, and
the controller running it on random demand is checked for safety and for serving every call.
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
from signal_control.strategies import Action, DecisionContext, ScheduleParameters, ScheduleStrategy, Termination
from signal_control.strategies.schedule import Cluster, plan_schedule
from tests.signal_control.harness import (
    ALL_LANES,
    LANES_OF_GROUP,
    SafetyChecker,
    empty_lane,
    occupied_lane,
    pedestrians_waiting,
    waiting_lane,
)

NS_LEFT, NS_THROUGH, EW_LEFT, EW_THROUGH = range(4)
NS_THROUGH_LANES = ("north_through_right", "south_through_right")
HEADWAY_S = 2.0


def queue_cluster(vehicles: int, lanes: int = 1) -> Cluster:
    """``vehicles`` standing per lane over ``lanes`` lanes, ready to leave one headway apart."""
    departures = tuple(k * HEADWAY_S for _ in range(lanes) for k in range(vehicles))
    return Cluster(departures, departures, (1.0,) * len(departures))


def arriving_cluster(*arrivals_s: float) -> Cluster:
    offsets = tuple(k * HEADWAY_S for k in range(len(arrivals_s)))
    return Cluster(tuple(arrivals_s), offsets, (1.0,) * len(arrivals_s))


def plan_of(clusters: list[list[Cluster]], current: int = 0, green_age_s: float = 20.0, max_green_s: float = 60.0):
    stages = len(clusters)
    return plan_schedule(
        clusters,
        current=current,
        green_age_s=green_age_s,
        current_min_green_s=5.0,
        current_max_green_s=max_green_s,
        min_green_s=[5.0] * stages,
        clearance_s=[[0.0 if a == b else 5.0 for b in range(stages)] for a in range(stages)],
        startup_s=2.0,
    )


# -- the planner -----------------------------------------------------------------------------------


def test_a_cluster_served_late_discharges_at_the_saturation_headway() -> None:
    cluster = arriving_cluster(1.0, 2.0, 6.0)  # one lane: offsets 0, 2, 4 s
    assert cluster.served_from(0.0) == (0.0, 6.0)  # green already: nobody waits
    delay, last = cluster.served_from(10.0)  # leave at 10, 12, 14 instead of 1, 2, 6
    assert delay == pytest.approx(9.0 + 10.0 + 8.0)
    assert last == pytest.approx(14.0)


def test_the_plan_goes_on_while_the_green_stage_still_has_a_queue_and_nobody_waits_long() -> None:
    schedule = plan_of([[queue_cluster(4)], [queue_cluster(1)]])
    assert schedule.extend and schedule.first_stage == 0
    assert schedule.next_other_stage == 1
    # The green is held until its queue is through (4 vehicles: the last leaves at 6 s).
    assert schedule.hold_until_s == pytest.approx(6.0)


def test_an_empty_green_stage_hands_over_to_the_stage_with_vehicles() -> None:
    schedule = plan_of([[], [queue_cluster(3)]])
    assert not schedule.extend and schedule.first_stage == 1


def test_stages_are_served_by_their_vehicles_not_in_a_fixed_rotation() -> None:
    # Stage 1 comes next in the rotation with one vehicle; stage 2 has ten: the plan skips ahead.
    schedule = plan_of([[], [queue_cluster(1)], [queue_cluster(10)]])
    assert schedule.first_stage == 2 and schedule.next_other_stage == 2


def test_a_platoon_about_to_arrive_keeps_the_green_one_far_off_does_not() -> None:
    waiting = [queue_cluster(2)]
    near = plan_of([[arriving_cluster(2.0, 3.5, 5.0, 6.5)], waiting])
    assert near.extend
    # The same four arriving only in 25 s: serving the two waiting first costs the platoon little.
    far = plan_of([[arriving_cluster(25.0, 26.5, 28.0, 29.5)], waiting])
    assert not far.extend and far.first_stage == 1


def test_the_configured_max_green_caps_the_green_stage() -> None:
    schedule = plan_of([[queue_cluster(10)], [queue_cluster(1)]], green_age_s=60.0, max_green_s=60.0)
    assert schedule.first_stage == 1


def test_nothing_to_serve_makes_an_empty_plan() -> None:
    schedule = plan_of([[], [], []])
    assert schedule.first_stage is None and not schedule.extend


# -- the strategy on camera observations -----------------------------------------------------------


@pytest.fixture
def plan(sample_site: SiteConfig) -> PhasePlan:
    return PhasePlan.from_site(sample_site)


@pytest.fixture
def protected_lefts_plan(sample_site: SiteConfig) -> PhasePlan:
    """The sample with lefts that never turn permissively (a protected-only left-turn plan)."""
    data = sample_site.model_dump()
    for group in data["signal_groups"]:
        group["permissive_with"] = None
    return PhasePlan.from_site(SiteConfig.model_validate(data))


@pytest.fixture
def dual_ring_plan(sample_site: SiteConfig) -> PhasePlan:
    """The protected-only sample with its NEMA dual-ring stages."""
    data = sample_site.model_dump()
    for group in data["signal_groups"]:
        group["permissive_with"] = None
    return PhasePlan.from_site(with_ring_barrier_stages(SiteConfig.model_validate(data)))


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


def queue(lane_id: str, vehicles: int, wait_s: float = 10.0) -> LaneObservation:
    return lane(
        lane_id, queued_vehicles=vehicles, queue_length_m=7.0 * vehicles, stop_bar_occupied=True, max_wait_s=wait_s
    )


def context(
    plan: PhasePlan,
    stage_id: str,
    lanes: Mapping[str, LaneObservation],
    called: tuple[str, ...] | None = None,
    time_in_green_s: float = 15.0,
    now_s: float = 1000.0,
    arrivals_s: Mapping[str, tuple[float, ...]] | None = None,
    max_green_s: float = 45.0,
) -> DecisionContext:
    observations = {lane_id: lanes.get(lane_id, empty_lane(lane_id)) for lane_id in ALL_LANES}
    if called is None:
        calls = tuple(
            any(
                observations[lane_id].queued_vehicles or observations[lane_id].approaching_vehicles
                for lane_id in s.lane_ids
            )
            for s in plan.stages
        )
    else:
        calls = tuple(stage.stage_id in called for stage in plan.stages)
    return DecisionContext(
        now_s=now_s,
        stage_index=plan.stage_index(stage_id),
        time_in_green_s=time_in_green_s,
        min_green_s=10.0,
        max_green_s=max_green_s,
        stage_calls=calls,
        lanes=observations,
        arrivals_s=arrivals_s or {},
    )


def test_holds_the_minimum_green_and_rests_while_nobody_else_is_called(protected_lefts_plan: PhasePlan) -> None:
    strategy = ScheduleStrategy(protected_lefts_plan)
    short = context(protected_lefts_plan, "ns_through", {}, called=("ew_through",), time_in_green_s=4.0)
    assert strategy.decide(short).reason.endswith("minimum green")
    resting = ScheduleStrategy(protected_lefts_plan).decide(context(protected_lefts_plan, "ns_through", {}, called=()))
    assert resting.action is Action.HOLD and "resting" in resting.reason


def test_the_green_goes_to_the_stage_the_plan_serves_first(protected_lefts_plan: PhasePlan) -> None:
    # The main-street green has no vehicle left; the side street has six queued, the main-street
    # lefts one: the plan serves the side street next, passing the lefts over for now.
    lanes = {"east_through_right": queue("east_through_right", 6), "south_left": queue("south_left", 1)}
    decision = ScheduleStrategy(protected_lefts_plan).decide(context(protected_lefts_plan, "ns_through", lanes))
    assert decision.action is Action.TERMINATE and decision.termination is Termination.GAP_OUT
    assert decision.next_stage == EW_THROUGH


def test_the_green_is_held_for_its_queue_and_for_a_platoon_the_camera_sees_coming(
    protected_lefts_plan: PhasePlan,
) -> None:
    waiting = {"east_through_right": queue("east_through_right", 2)}
    strategy = ScheduleStrategy(protected_lefts_plan)
    discharging = {**waiting, "north_through_right": queue("north_through_right", 5)}
    held = strategy.decide(context(protected_lefts_plan, "ns_through", discharging))
    assert held.action is Action.HOLD and held.likely_remaining_s > 0
    approaching = {**waiting, "north_through_right": lane("north_through_right", approaching_vehicles=4)}
    platoon = {"north_through_right": (2.0, 3.5, 5.0, 6.5)}
    ahead = ScheduleStrategy(protected_lefts_plan).decide(
        context(protected_lefts_plan, "ns_through", approaching, arrivals_s=platoon)
    )
    assert ahead.action is Action.HOLD
    later = {"north_through_right": (20.0, 21.5, 23.0, 24.5)}
    gone = ScheduleStrategy(protected_lefts_plan).decide(
        context(protected_lefts_plan, "ns_through", approaching, arrivals_s=later)
    )
    assert gone.action is Action.TERMINATE


def test_the_plan_is_kept_between_replans_and_redone_after_a_second(protected_lefts_plan: PhasePlan) -> None:
    strategy = ScheduleStrategy(protected_lefts_plan, ScheduleParameters(replan_interval_s=1.0))
    waiting = {"east_through_right": queue("east_through_right", 3)}
    busy = {**waiting, "north_through_right": queue("north_through_right", 6)}
    assert strategy.decide(context(protected_lefts_plan, "ns_through", busy, now_s=1000.0)).action is Action.HOLD
    cleared = context(protected_lefts_plan, "ns_through", waiting, now_s=1000.5, called=("ew_through",))
    assert strategy.decide(cleared).action is Action.HOLD  # the plan of t=1000 still stands
    replanned = context(protected_lefts_plan, "ns_through", waiting, now_s=1001.0, called=("ew_through",))
    assert strategy.decide(replanned).next_stage == EW_THROUGH


def test_a_lane_waiting_too_long_on_red_forces_the_green_off(protected_lefts_plan: PhasePlan) -> None:
    strategy = ScheduleStrategy(protected_lefts_plan, ScheduleParameters(max_wait_s=90.0))
    lanes = {"north_through_right": queue("north_through_right", 12), "west_left": queue("west_left", 1, wait_s=95.0)}
    decision = strategy.decide(context(protected_lefts_plan, "ns_through", lanes))
    assert decision.termination is Termination.FORCE_OFF
    assert decision.next_stage == EW_LEFT
    assert "west_left waited 95 s" in decision.reason


def test_a_stage_called_too_long_is_served_though_the_plan_would_wait(protected_lefts_plan: PhasePlan) -> None:
    strategy = ScheduleStrategy(protected_lefts_plan, ScheduleParameters(max_wait_s=60.0))
    lanes = {"north_through_right": queue("north_through_right", 12)}
    first = strategy.decide(context(protected_lefts_plan, "ns_through", lanes, called=("ew_through",), now_s=1000.0))
    assert first.action is Action.HOLD
    late = strategy.decide(context(protected_lefts_plan, "ns_through", lanes, called=("ew_through",), now_s=1061.0))
    assert late.termination is Termination.FORCE_OFF and late.next_stage == EW_THROUGH


def test_the_configured_max_green_is_a_safety_cap(protected_lefts_plan: PhasePlan) -> None:
    lanes = {
        "north_through_right": queue("north_through_right", 12),
        "east_through_right": queue("east_through_right", 1),
    }
    decision = ScheduleStrategy(protected_lefts_plan).decide(
        context(protected_lefts_plan, "ns_through", lanes, time_in_green_s=45.0, max_green_s=45.0)
    )
    assert decision.termination is Termination.MAX_OUT


def test_a_light_permissive_left_turns_in_its_through_and_a_protected_only_left_gets_its_stage(
    plan: PhasePlan, protected_lefts_plan: PhasePlan
) -> None:
    # From the side street's green: two wait in each main-street through lane, three in each left
    # lane; as protected-only lefts they are served first, as permissive ones they fit the gaps.
    lanes = {
        **{lane_id: queue(lane_id, 2) for lane_id in NS_THROUGH_LANES},
        "south_left": queue("south_left", 3),
        "north_left": queue("north_left", 3),
    }
    permissive = ScheduleStrategy(plan).decide(context(plan, "ew_through", lanes))
    assert permissive.next_stage == NS_THROUGH  # the lefts turn on the flashing yellow arrow
    protected = ScheduleStrategy(protected_lefts_plan).decide(context(protected_lefts_plan, "ew_through", lanes))
    assert protected.next_stage == NS_LEFT


def test_a_lone_left_runs_beside_its_own_through(dual_ring_plan: PhasePlan) -> None:
    # Leaving the side street, only the north left (phase 5) of the lead-left stage has vehicles.
    lanes = {"north_left": queue("north_left", 6), **{lane_id: queue(lane_id, 2) for lane_id in NS_THROUGH_LANES}}
    data_plan = dual_ring_plan
    decision = ScheduleStrategy(data_plan).decide(context(data_plan, "ew_through", lanes))
    assert decision.action is Action.TERMINATE
    # The north left (phase 5) with the southbound through (phase 2) it does not cross.
    assert data_plan.stages[decision.next_stage or 0].stage_id == "nema_2_5"


def test_a_done_ring_hands_over_to_its_through_while_the_other_left_still_runs(dual_ring_plan: PhasePlan) -> None:
    # {1, 5}: phase 1 (south left) still has six queued, phase 5 (north left) is empty; the
    # southbound through (phase 6's partner ring) waits: {1, 6} starts it without ending 1.
    lanes = {"south_left": queue("south_left", 6), "south_through_right": queue("south_through_right", 6)}
    strategy = ScheduleStrategy(dual_ring_plan)
    decision = strategy.decide(context(dual_ring_plan, "ns_left", lanes, time_in_green_s=12.0))
    assert decision.action is Action.TERMINATE
    assert dual_ring_plan.stages[decision.next_stage or 0].stage_id == "nema_1_6"
    # In {1, 6} the left runs while it discharges, then the stage moves on to {2, 6}.
    running = strategy.decide(context(dual_ring_plan, "nema_1_6", lanes, time_in_green_s=2.0, now_s=1006.0))
    assert running.action is Action.HOLD
    done = {
        "south_through_right": queue("south_through_right", 6),
        "east_through_right": queue("east_through_right", 2),
    }
    moved = strategy.decide(context(dual_ring_plan, "nema_1_6", done, time_in_green_s=12.0, now_s=1016.0))
    assert dual_ring_plan.stages[moved.next_stage or 0].stage_id == "ns_through"


@pytest.mark.parametrize(
    ("name", "value"),
    [("headway_s", 0.5), ("max_wait_s", 5.0), ("max_clusters_per_stage", 9), ("startup_s", float("nan"))],
)
def test_parameters_outside_their_bounds_are_rejected_by_name(name: str, value: float) -> None:
    # The model of the site file's controller.schedule block: its error names the field.
    with pytest.raises(ValueError, match=f"ScheduleParameters\n{name}\n"):
        ScheduleParameters(**{name: value})  # type: ignore[arg-type]


# -- the controller running it -----------------------------------------------------------------------

# Worst wait of a called group: the starvation guard (90 s) plus the green it ends (its minimum
# has run by then), up to one change of every other stage at its max green with clearances, a
# pedestrian walk and clearance, and a step late at each change.
CALL_WAIT_BOUND_S = 90.0 + 45.0 + 20.0 + 35.0 + 8 * 5.2 + 7.0 + 12.2 + 8 * 1.0
LANE_STATES = ("empty", "empty", "waiting", "occupied", "arriving")


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=40)
@given(
    st.booleans(),  # dual ring
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
    ),
)
def test_the_controller_running_the_schedule_stays_safe_and_serves_every_call(
    sample_site: SiteConfig, dual_ring: bool, segments: list[tuple[float, float, dict[str, str], float, frozenset[str]]]
) -> None:
    site = with_ring_barrier_stages(sample_site) if dual_ring else sample_site
    controller = SignalController(site)
    controller.set_strategy(ScheduleStrategy(controller.plan))
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
            assert output.strategy == "schedule"
            checker.observe(output)
            shown = {state.signal_group: state.indication for state in output.groups}
            for group in demanding:
                if shown[group] in (Indication.GREEN, Indication.FLASHING_YELLOW):
                    waiting_since.pop(group, None)
                else:
                    waiting_since.setdefault(group, now_s)
            for group in set(waiting_since) - demanding:
                if shown[group] in (Indication.GREEN, Indication.FLASHING_YELLOW):
                    del waiting_since[group]
            for group, since_s in waiting_since.items():
                assert now_s - since_s <= CALL_WAIT_BOUND_S, f"{group} has waited {now_s - since_s:.1f} s"
    assert checker.checked_outputs > 0
