"""Actuated control on the sample junction, driven by synthetic detector states.

Timeline used throughout: the controller is first stepped at 1000.1 s, then every 0.1 s; the
start-up all-red lasts the longest all-red (1.8777 s), so the first stage (ns_left) turns green on
the first step after 1001.9777 s, at 1002.0 s. Every interval ends on the first step after it
has run out, so each one can last up to one step (0.1 s) longer than its nominal length.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from rsu_contracts.config import SiteConfig
from rsu_contracts.messages.perception import CrosswalkObservation, LaneObservation
from rsu_contracts.messages.signal import ControllerMode, Indication
from signal_control import SignalController
from signal_control.events import AtspmEvent
from tests.signal_control.harness import (
    LANES_OF_GROUP,
    SAMPLE_MAX_GREEN_S,
    SAMPLE_PED_CLEARANCE_S,
    SAMPLE_STAGE_CLEARANCE_S,
    SAMPLE_WALK_S,
    SafetyChecker,
    drive,
    empty_lane,
    events_of,
    green_starts,
    indication,
    lanes_for,
    occupied_lane,
    pedestrians_waiting,
)

START_S = 1000.0
FIRST_GREEN_S = 1002.0
STEP_S = 0.1
# Every stage at max green plus the four stage changes; each stage's green, yellow and all-red can
# each end up to one step late.
CYCLE_BOUND_S = (
    sum({"ns_left": 20.0, "ns_through": 45.0, "ew_left": 20.0, "ew_through": 35.0}.values())
    + 4 * SAMPLE_STAGE_CLEARANCE_S
    + 4 * 3 * STEP_S
)
# A stage change (yellow + all-red) measured in 0.1 s steps: up to two steps late.
CHANGE_SLACK_S = 2 * STEP_S + 0.01


@pytest.fixture
def controller(sample_site: SiteConfig) -> SignalController:
    return SignalController(sample_site)


def test_first_stage_turns_green_after_the_start_up_all_red(controller: SignalController) -> None:
    outputs = drive(controller, START_S, 3.0, lambda _t: lanes_for())
    assert outputs[0].mode is ControllerMode.STARTUP
    assert all(state.indication is Indication.RED for state in outputs[0].groups)
    assert green_starts(outputs, "1") == [pytest.approx(FIRST_GREEN_S)]
    assert green_starts(outputs, "5") == [pytest.approx(FIRST_GREEN_S)]
    assert outputs[-1].mode is ControllerMode.NORMAL


def test_gap_out_once_every_lane_of_the_stage_has_gapped_past_passage_time(controller: SignalController) -> None:
    freed_at_s = 1012.0

    def lanes(now_s: float) -> list[LaneObservation]:
        # The left-turn lane 'south_left' (group 1) is occupied until 1012.0 s; then its gap grows.
        result = lanes_for(waiting=["2"])
        south_left = occupied_lane("south_left") if now_s < freed_at_s else empty_lane("south_left", now_s - freed_at_s)
        return [south_left if lane.lane_id == "south_left" else lane for lane in result]

    outputs = drive(controller, START_S, 30.0, lanes)
    gap_outs = events_of(outputs, AtspmEvent.PHASE_GAP_OUT, "1")
    # passage 2.5 s: the gap first exceeds it on the step after 1014.5 s
    assert [event.time_s for event in gap_outs] == [pytest.approx(1014.6)]
    assert events_of(outputs, AtspmEvent.PHASE_MAX_OUT) == []
    yellow = events_of(outputs, AtspmEvent.PHASE_BEGIN_YELLOW_CLEARANCE, "1")
    assert [event.time_s for event in yellow] == [pytest.approx(1014.6)]


def test_max_out_at_max_green_under_continuous_demand(controller: SignalController) -> None:
    outputs = drive(controller, START_S, 30.0, lambda _t: lanes_for(occupied=["1", "5"], waiting=["2"]))
    max_outs = events_of(outputs, AtspmEvent.PHASE_MAX_OUT)
    # 1002.0 + 20 s max green
    assert sorted(event.parameter for event in max_outs) == ["1", "5"]
    assert max_outs[0].time_s == pytest.approx(FIRST_GREEN_S + SAMPLE_MAX_GREEN_S["1"])
    assert events_of(outputs, AtspmEvent.PHASE_GAP_OUT) == []


def test_green_never_ends_before_min_green_even_without_any_vehicle(controller: SignalController) -> None:
    outputs = drive(controller, START_S, 15.0, lambda _t: lanes_for(waiting=["2"]))
    yellow = events_of(outputs, AtspmEvent.PHASE_BEGIN_YELLOW_CLEARANCE, "1")
    assert [event.time_s for event in yellow] == [pytest.approx(FIRST_GREEN_S + 5.0)]


def test_stages_without_demand_are_skipped(controller: SignalController) -> None:
    outputs = drive(controller, START_S, 120.0, lambda _t: lanes_for(waiting=["4", "8"]))
    # ns_left is served once at start-up; after it only the side street, which has demand
    assert green_starts(outputs, "4") == [
        pytest.approx(FIRST_GREEN_S + 5.0 + SAMPLE_STAGE_CLEARANCE_S, abs=CHANGE_SLACK_S)
    ]
    for unserved in ("2", "6", "3", "7", "p_east", "p_north"):
        assert green_starts(outputs, unserved) == []


def test_rests_in_the_current_stage_until_another_stage_is_called(controller: SignalController) -> None:
    demand_from_s = 1300.0

    def lanes(now_s: float) -> list[LaneObservation]:
        return lanes_for(waiting=["4"]) if now_s >= demand_from_s else lanes_for()

    outputs = drive(controller, START_S, 310.0, lanes)
    resting = [output for output in outputs if FIRST_GREEN_S < output.time_s < demand_from_s]
    assert all(indication(output, "1") is Indication.GREEN for output in resting)
    assert "resting" in resting[-1].reason
    # the call ends the rest at once (min green and gap long over): yellow, all-red, then green
    assert green_starts(outputs, "4") == [pytest.approx(demand_from_s + SAMPLE_STAGE_CLEARANCE_S, abs=CHANGE_SLACK_S)]


def test_no_stage_waits_more_than_one_cycle_under_saturation(
    controller: SignalController, sample_site: SiteConfig
) -> None:
    checker = SafetyChecker.for_site(sample_site)
    outputs = drive(controller, START_S, 600.0, lambda _t: lanes_for(occupied=list(LANES_OF_GROUP)))
    for output in outputs:
        checker.observe(output)
    for group in LANES_OF_GROUP:
        starts = green_starts(outputs, group)
        assert len(starts) >= 4, group
        gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
        assert max(gaps) <= CYCLE_BOUND_S, (group, gaps)


def test_a_single_brief_call_is_latched_and_served_within_one_cycle(controller: SignalController) -> None:
    call_at_s = 1050.0

    def lanes(now_s: float) -> list[LaneObservation]:
        # Heavy main street and side street; one vehicle seen on west_left (group 3) for one step.
        heavy = ["1", "5", "2", "6", "4", "8"]
        return lanes_for(occupied=heavy, waiting=["3"] if abs(now_s - call_at_s) < STEP_S / 2 else [])

    outputs = drive(controller, START_S, 250.0, lanes)
    calls = events_of(outputs, AtspmEvent.PHASE_CALL_REGISTERED, "3")
    assert [event.time_s for event in calls] == [pytest.approx(call_at_s)]
    served = [start for start in green_starts(outputs, "3") if start > call_at_s]
    assert served and served[0] - call_at_s <= CYCLE_BOUND_S
    # served once: the call is cleared when group 3 turns green
    assert len(served) == 1


def test_pedestrian_call_is_served_with_walk_then_full_clearance(controller: SignalController) -> None:
    def crosswalks(now_s: float) -> Sequence[CrosswalkObservation]:
        return pedestrians_waiting("cw_north") if now_s < 1003.0 else []

    outputs = drive(controller, START_S, 60.0, lambda _t: lanes_for(), crosswalks)
    assert [event.time_s for event in events_of(outputs, AtspmEvent.PEDESTRIAN_CALL_REGISTERED, "p_north")] == [
        pytest.approx(1000.1)
    ]
    # ns_left (5 s min, no vehicles) gaps out for the called ew_through; ns_through and ew_left are skipped
    walk_at = FIRST_GREEN_S + 5.0 + SAMPLE_STAGE_CLEARANCE_S
    walks = events_of(outputs, AtspmEvent.PEDESTRIAN_BEGIN_WALK, "p_north")
    assert [event.time_s for event in walks] == [pytest.approx(walk_at, abs=CHANGE_SLACK_S)]
    walk_start = walks[0].time_s
    clearance = events_of(outputs, AtspmEvent.PEDESTRIAN_BEGIN_CLEARANCE, "p_north")
    dont_walk = events_of(outputs, AtspmEvent.PEDESTRIAN_BEGIN_SOLID_DONT_WALK, "p_north")
    assert clearance[0].time_s == pytest.approx(walk_start + SAMPLE_WALK_S, abs=0.11)
    assert dont_walk[0].time_s - clearance[0].time_s >= SAMPLE_PED_CLEARANCE_S
    assert dont_walk[0].time_s - clearance[0].time_s < SAMPLE_PED_CLEARANCE_S + 0.11
    # the other crosswalk of the stage had nobody waiting: no walk
    assert events_of(outputs, AtspmEvent.PEDESTRIAN_BEGIN_WALK, "p_south") == []


def test_a_served_pedestrian_holds_the_stage_for_walk_and_clearance(controller: SignalController) -> None:
    # Vehicles call ns_through and ew_left but never extend (gap long); a pedestrian waits at cw_east.
    outputs = drive(
        controller,
        START_S,
        60.0,
        lambda _t: lanes_for(waiting=["2", "3"]),
        lambda now_s: pedestrians_waiting("cw_east") if now_s < 1003.0 else [],
    )
    green_2 = green_starts(outputs, "2")[0]
    yellow_2 = events_of(outputs, AtspmEvent.PHASE_BEGIN_YELLOW_CLEARANCE, "2")[0].time_s
    # 10 s min green would gap out earlier; walk 7 s + clearance 12.15 s holds the stage
    assert yellow_2 - green_2 >= SAMPLE_WALK_S + SAMPLE_PED_CLEARANCE_S
    assert yellow_2 - green_2 < SAMPLE_WALK_S + SAMPLE_PED_CLEARANCE_S + 0.25


def test_a_pedestrian_arriving_while_the_stage_rests_walks_at_once(controller: SignalController) -> None:
    arrives_s = 1100.0
    outputs = drive(
        controller,
        START_S,
        130.0,
        lambda _t: lanes_for(waiting=["2"]),
        lambda now_s: pedestrians_waiting("cw_east") if arrives_s <= now_s < arrives_s + 1.0 else [],
    )
    walks = events_of(outputs, AtspmEvent.PEDESTRIAN_BEGIN_WALK, "p_east")
    assert [event.time_s for event in walks] == [pytest.approx(arrives_s)]


def test_a_pedestrian_arriving_mid_stage_while_others_wait_is_served_next_cycle(sample_site: SiteConfig) -> None:
    # Main and side street alternate; a pedestrian turns up at cw_east 3 s into a main-street green.
    lanes = lanes_for(waiting=["2", "4"])
    first_main = green_starts(drive(SignalController(sample_site), START_S, 200.0, lambda _t: lanes), "2")[0]
    arrives_s = first_main + 3.0
    outputs = drive(
        SignalController(sample_site),
        START_S,
        200.0,
        lambda _t: lanes,
        lambda now_s: pedestrians_waiting("cw_east") if now_s >= arrives_s else [],
    )
    walks = [event.time_s for event in events_of(outputs, AtspmEvent.PEDESTRIAN_BEGIN_WALK, "p_east")]
    main_greens = green_starts(outputs, "2")
    assert main_greens[0] == pytest.approx(first_main)
    assert walks[0] == pytest.approx(main_greens[1])


def test_stop_bar_transitions_become_detector_on_and_off_events(controller: SignalController) -> None:
    def lanes(now_s: float) -> list[LaneObservation]:
        return lanes_for(occupied=["2"]) if 1001.0 <= now_s < 1002.0 else lanes_for()

    outputs = drive(controller, START_S, 3.0, lanes)
    on = events_of(outputs, AtspmEvent.DETECTOR_ON)
    off = events_of(outputs, AtspmEvent.DETECTOR_OFF)
    assert [(event.time_s, event.parameter) for event in on] == [(pytest.approx(1001.0), "north_through_right")]
    assert [(event.time_s, event.parameter) for event in off] == [(pytest.approx(1002.0), "north_through_right")]


def test_a_vehicle_call_is_registered_once_per_red(controller: SignalController) -> None:
    outputs = drive(controller, START_S, 20.0, lambda _t: lanes_for(waiting=["4"]))
    calls = events_of(outputs, AtspmEvent.PHASE_CALL_REGISTERED)
    assert [(event.time_s, event.parameter) for event in calls] == [(pytest.approx(1000.1), "4")]
