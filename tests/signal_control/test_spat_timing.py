"""SPaT timing per signal group: earliest, latest and likely change, with hand-computed cases."""

from __future__ import annotations

import pytest

from rsu_contracts.config import SiteConfig
from rsu_contracts.messages.perception import LaneObservation
from rsu_contracts.messages.signal import ControllerMode, SignalGroupState
from signal_control import ControllerOutput, SignalController
from signal_control.events import AtspmEvent
from tests.signal_control.harness import (
    SAMPLE_ALL_RED_S,
    SAMPLE_STAGE_CLEARANCE_S,
    SAMPLE_YELLOW_S,
    drive,
    empty_lane,
    events_of,
    lanes_for,
    occupied_lane,
    pedestrians_waiting,
)

START_S = 1000.0
FIRST_GREEN_S = 1002.0


@pytest.fixture
def controller(sample_site: SiteConfig) -> SignalController:
    return SignalController(sample_site)


def _state(output: ControllerOutput, group: str) -> SignalGroupState:
    return next(state for state in output.groups if state.signal_group == group)


def _at(outputs: list[ControllerOutput], time_s: float) -> ControllerOutput:
    return next(output for output in outputs if abs(output.time_s - time_s) < 1e-6)


def test_spat_bounds_are_ordered_and_never_in_the_past(controller: SignalController) -> None:
    def lanes(now_s: float) -> list[LaneObservation]:
        phase = int(now_s) % 17
        return lanes_for(occupied=["2", "6"] if phase < 6 else [], waiting=["1", "3", "4", "8"] if phase > 9 else [])

    outputs = drive(
        controller,
        START_S,
        400.0,
        lanes,
        lambda now_s: pedestrians_waiting("cw_north", "cw_east") if int(now_s) % 40 == 0 else [],
    )
    for output in outputs:
        for state in output.groups:
            assert state.min_end_time_s >= output.time_s, state
            assert state.min_end_time_s <= state.likely_time_s <= state.max_end_time_s, state


def test_red_groups_count_min_greens_of_called_stages_and_max_greens_of_all(controller: SignalController) -> None:
    # Every vehicle group calls (queues, no stop-bar occupancy), no pedestrians.
    outputs = drive(controller, START_S, 2.0, lambda _t: lanes_for(waiting=["1", "2", "3", "4", "5", "6", "7", "8"]))
    at_green = _at(outputs, FIRST_GREEN_S)
    side_street = _state(at_green, "4")
    # earliest: ns_left 5 + ns_through 10 + ew_left 5 (min greens) + 3 stage changes of 5.15639 s
    assert side_street.min_end_time_s == pytest.approx(FIRST_GREEN_S + 20.0 + 3 * SAMPLE_STAGE_CLEARANCE_S)
    # latest: max greens 20 + 45 + 20
    assert side_street.max_end_time_s == pytest.approx(FIRST_GREEN_S + 85.0 + 3 * SAMPLE_STAGE_CLEARANCE_S)
    # the actuated estimate of a stage is its min green
    assert side_street.likely_time_s == pytest.approx(side_street.min_end_time_s)


def test_uncalled_stages_in_between_count_only_towards_the_latest_change(controller: SignalController) -> None:
    outputs = drive(controller, START_S, 2.0, lambda _t: lanes_for(waiting=["4"]))
    side_street = _state(_at(outputs, FIRST_GREEN_S), "4")
    assert side_street.min_end_time_s == pytest.approx(FIRST_GREEN_S + 5.0 + SAMPLE_STAGE_CLEARANCE_S)
    assert side_street.max_end_time_s == pytest.approx(FIRST_GREEN_S + 85.0 + 3 * SAMPLE_STAGE_CLEARANCE_S)


def test_a_green_in_min_green_cannot_end_before_it(controller: SignalController) -> None:
    outputs = drive(controller, START_S, 3.0, lambda _t: lanes_for(waiting=["2"]))
    left = _state(_at(outputs, 1003.0), "1")
    assert left.min_end_time_s == pytest.approx(FIRST_GREEN_S + 5.0)
    assert left.max_end_time_s == pytest.approx(FIRST_GREEN_S + 20.0)


def test_an_actuated_green_is_likely_to_end_when_the_running_gap_reaches_passage(
    controller: SignalController,
) -> None:
    def lanes(now_s: float) -> list[LaneObservation]:
        # south_left occupied until 1010 s, then free: its gap grows from 0
        south_left = occupied_lane("south_left") if now_s < 1010.0 else empty_lane("south_left", now_s - 1010.0)
        return [south_left if lane.lane_id == "south_left" else lane for lane in lanes_for(waiting=["2"])]

    outputs = drive(controller, START_S, 11.0, lanes)
    left = _state(_at(outputs, 1011.0), "1")
    # min green over (1007.0), gap 1.0 s of 2.5 s passage: 1.5 s to go
    assert left.min_end_time_s == pytest.approx(1011.0)
    assert left.likely_time_s == pytest.approx(1012.5)
    assert left.max_end_time_s == pytest.approx(FIRST_GREEN_S + 20.0)


def test_a_yellow_ends_exactly_after_its_length_and_the_next_green_after_the_all_red(
    controller: SignalController,
) -> None:
    outputs = drive(controller, START_S, 10.0, lambda _t: lanes_for(waiting=["2"]))
    yellow_at = events_of(outputs, AtspmEvent.PHASE_BEGIN_YELLOW_CLEARANCE, "1")[0].time_s
    during_yellow = _at(outputs, round(yellow_at + 1.0, 1))
    left = _state(during_yellow, "1")
    assert (
        left.min_end_time_s == left.max_end_time_s == left.likely_time_s == pytest.approx(yellow_at + SAMPLE_YELLOW_S)
    )
    main = _state(during_yellow, "2")
    expected_green = yellow_at + SAMPLE_YELLOW_S + SAMPLE_ALL_RED_S
    assert main.min_end_time_s == main.max_end_time_s == main.likely_time_s == pytest.approx(expected_green)


def test_a_fixed_time_green_is_likely_to_end_at_its_planned_length(controller: SignalController) -> None:
    controller.set_strategy("fixed_time")
    outputs = drive(controller, START_S, 5.0, lambda _t: lanes_for())
    left = _state(outputs[-1], "1")
    assert left.likely_time_s == pytest.approx(FIRST_GREEN_S + 20.0)
    assert left.max_end_time_s >= left.likely_time_s


def test_a_walk_ends_exactly_after_the_walk_time(controller: SignalController) -> None:
    outputs = drive(controller, START_S, 20.0, lambda _t: lanes_for(), lambda _t: pedestrians_waiting("cw_north"))
    walk_at = events_of(outputs, AtspmEvent.PEDESTRIAN_BEGIN_WALK, "p_north")[0].time_s
    walk = _state(_at(outputs, round(walk_at + 2.0, 1)), "p_north")
    assert walk.min_end_time_s == walk.max_end_time_s == walk.likely_time_s == pytest.approx(walk_at + 7.0)


def test_recall_mode_still_publishes_ordered_spat(controller: SignalController) -> None:
    outputs = drive(controller, START_S, 60.0, lambda _t: None)
    assert outputs[-1].mode is ControllerMode.RECALL
    for output in outputs:
        for state in output.groups:
            assert output.time_s <= state.min_end_time_s <= state.likely_time_s <= state.max_end_time_s
