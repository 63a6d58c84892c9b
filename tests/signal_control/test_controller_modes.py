"""Controller modes and guards: start-up, recall on missing or stale data, strategy switching,
time validation, fail-to-flash on a forced unsafe output, and bounded state."""

from __future__ import annotations

import dataclasses
import gc
import math
import tracemalloc

import pytest

from rsu_contracts.config import SiteConfig
from rsu_contracts.messages.perception import LaneObservation
from rsu_contracts.messages.signal import ControllerMode, Indication
from signal_control import SignalController
from signal_control.events import AtspmEvent
from signal_control.strategies import Decision, DecisionContext, FixedTimeStrategy, Termination
from tests.signal_control.harness import (
    SAMPLE_STAGE_CLEARANCE_S,
    SafetyChecker,
    drive,
    empty_lane,
    events_of,
    green_starts,
    indication,
    lanes_for,
)

START_S = 1000.0
FIRST_GREEN_S = 1002.0  # first step 1000.1 + 1.8777 s start-up all-red, on the 0.1 s grid


@pytest.fixture
def controller(sample_site: SiteConfig) -> SignalController:
    return SignalController(sample_site)


def test_without_any_detector_data_every_stage_is_recalled_for_the_fixed_green(
    controller: SignalController, sample_site: SiteConfig
) -> None:
    checker = SafetyChecker.for_site(sample_site)
    outputs = drive(controller, START_S, 110.0, lambda _t: None)
    for output in outputs:
        checker.observe(output)
    after_startup = [output for output in outputs if output.time_s >= FIRST_GREEN_S]
    assert all(output.mode is ControllerMode.RECALL for output in after_startup)
    assert "no detector data" in after_startup[0].reason
    # fixed_green_s = 20 s per stage, ns_left -> ns_through -> ew_left -> ew_through
    expected = FIRST_GREEN_S
    for group in ("1", "2", "3", "4"):
        assert green_starts(outputs, group)[0] == pytest.approx(expected, abs=0.35), group
        expected += 20.0 + SAMPLE_STAGE_CLEARANCE_S
    # pedestrians are recalled too
    for walker in ("p_east", "p_west", "p_north", "p_south"):
        assert len(events_of(outputs, AtspmEvent.PEDESTRIAN_BEGIN_WALK, walker)) == 1
    assert events_of(outputs, AtspmEvent.PHASE_FORCE_OFF)
    green_lengths = [
        yellow.time_s - green
        for green, yellow in zip(
            green_starts(outputs, "1"), events_of(outputs, AtspmEvent.PHASE_BEGIN_YELLOW_CLEARANCE, "1"), strict=False
        )
    ]
    assert green_lengths == [pytest.approx(20.0, abs=0.11)]


def test_lanes_none_switches_to_recall_at_once_and_fresh_data_brings_normal_back(
    controller: SignalController,
) -> None:
    def lanes(now_s: float) -> list[LaneObservation] | None:
        return None if 1030.0 <= now_s < 1060.0 else lanes_for()

    outputs = drive(controller, START_S, 80.0, lanes)
    by_time = {round(output.time_s, 1): output for output in outputs}
    assert by_time[1029.9].mode is ControllerMode.NORMAL
    assert by_time[1030.0].mode is ControllerMode.RECALL
    assert "last valid observation 0.1 s ago" in by_time[1030.0].reason
    assert by_time[1060.0].mode is ControllerMode.NORMAL
    # resting in ns_left with no demand; recall forces the plan on, so the rest ends
    assert events_of([o for o in outputs if 1030.0 <= o.time_s < 1060.0], AtspmEvent.PHASE_FORCE_OFF, "1")


def test_data_older_than_the_stale_limit_counts_as_missing(controller: SignalController) -> None:
    assert controller.detector_stale_after_s == 2.0
    controller.step(1000.1, lanes_for())
    controller.step(1005.0, lanes_for())
    stale = controller.step(1006.0, lanes_for(), observed_at_s=1003.5)
    assert stale.mode is ControllerMode.RECALL
    assert "2.5 s old" in stale.reason
    acceptable = controller.step(1007.0, lanes_for(), observed_at_s=1005.5)
    assert acceptable.mode is ControllerMode.NORMAL


def test_observations_arriving_out_of_order_do_not_replace_newer_ones(controller: SignalController) -> None:
    controller.step(1000.1, lanes_for())
    newer = controller.step(1000.2, lanes_for(occupied=["2"]), observed_at_s=1000.2)
    older = controller.step(1000.3, lanes_for(), observed_at_s=1000.15)
    assert events_of([newer], AtspmEvent.DETECTOR_ON, "north_through_right")
    assert events_of([older], AtspmEvent.DETECTOR_OFF) == []


def test_strategies_switch_at_run_time(controller: SignalController) -> None:
    outputs = drive(controller, START_S, 40.0, lambda _t: lanes_for())
    assert outputs[-1].strategy == "actuated"
    assert indication(outputs[-1], "1") is Indication.GREEN  # resting: no demand

    controller.set_strategy("fixed_time")
    fixed = drive(controller, START_S + 40.0, 60.0, lambda _t: lanes_for())
    assert {output.strategy for output in fixed} == {"fixed_time"}
    assert fixed[0].mode is ControllerMode.NORMAL
    # fixed time ignores the missing demand: ns_left is forced off at once, ns_through follows
    force_offs = events_of(fixed, AtspmEvent.PHASE_FORCE_OFF)
    assert force_offs[0].time_s == pytest.approx(1040.1) and force_offs[0].parameter == "1"
    assert green_starts(fixed, "2")

    controller.set_strategy("actuated")
    assert controller.step(1100.05, lanes_for()).strategy == "actuated"


def test_unknown_strategy_names_are_rejected_with_the_available_ones(controller: SignalController) -> None:
    with pytest.raises(ValueError, match="available: actuated, adaptive, fixed_time"):
        controller.set_strategy("max_pressure")


def test_a_site_asking_for_the_adaptive_strategy_starts_with_it(sample_site: SiteConfig) -> None:
    data = sample_site.model_dump()
    data["controller"]["strategy"] = "adaptive"
    controller = SignalController(SiteConfig.model_validate(data))
    assert controller.strategy == "adaptive"
    assert controller.step(1000.0, lanes_for()).strategy == "adaptive"


def test_webster_fixed_plan_from_lane_flows(controller: SignalController) -> None:
    flows = {
        "north_left": 180.0,  # y = 0.10 -> ns_left critical
        "south_left": 90.0,
        "north_through_right": 540.0,  # y = 0.30 -> ns_through critical
        "south_through_right": 360.0,
        "east_left": 90.0,  # y = 0.05
        "west_through_right": 360.0,  # y = 0.20
    }
    strategy = FixedTimeStrategy.webster(controller.plan, flows)
    # L = 4 * (3.27869 + 1.87770) = 20.62556 s; Y = 0.65
    # C0 = (1.5 * 20.62556 + 5) / 0.35 = 102.6810 s; C0 - L = 82.0554 s
    # g = y / 0.65 * 82.0554 -> 12.6239, 37.8717, 6.3120 (ew_left), 25.2478
    assert strategy.greens_s == pytest.approx([12.6239, 37.8717, 6.3120, 25.2478], abs=1e-3)
    controller.set_strategy(strategy)
    assert controller.step(1000.1, lanes_for()).strategy == "fixed_time"


def test_fixed_greens_are_lengthened_to_fit_recalled_pedestrians(controller: SignalController) -> None:
    strategy = FixedTimeStrategy(controller.plan, 8.0)
    # ns_through and ew_through carry walk 7 s + clearance 12.15 s; ew_through's vehicles need 8 s
    assert strategy.greens_s == pytest.approx([8.0, 19.14953, 8.0, 19.14953], abs=1e-5)


def test_time_must_strictly_increase(controller: SignalController) -> None:
    controller.step(5.0, lanes_for())
    with pytest.raises(ValueError, match="must increase"):
        controller.step(5.0, lanes_for())
    with pytest.raises(ValueError, match="must increase"):
        controller.step(4.0, lanes_for())
    with pytest.raises(ValueError, match="finite"):
        controller.step(math.nan, lanes_for())


class _TerminateAtOnce:
    """A misbehaving strategy: ends every stage immediately."""

    name = "impatient"
    serves_every_stage = False

    def decide(self, context: DecisionContext) -> Decision:
        return Decision.terminate(Termination.GAP_OUT, (context.stage_index + 1) % 4, "impatient")

    def expected_green_s(self, stage_index: int) -> float:
        return 0.0


def test_a_strategy_cannot_cut_the_minimum_green(controller: SignalController, sample_site: SiteConfig) -> None:
    controller.set_strategy(_TerminateAtOnce())
    checker = SafetyChecker.for_site(sample_site)
    outputs = drive(controller, START_S, 60.0, lambda _t: lanes_for(waiting=["2", "4"]))
    for output in outputs:
        checker.observe(output)
    assert all(output.mode is not ControllerMode.FLASH for output in outputs)
    yellow_1 = events_of(outputs, AtspmEvent.PHASE_BEGIN_YELLOW_CLEARANCE, "1")[0]
    assert yellow_1.time_s == pytest.approx(FIRST_GREEN_S + 5.0)


def test_conflicting_greens_from_a_corrupted_stage_table_end_in_flash(
    controller: SignalController, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = controller.plan
    corrupted_first_stage = dataclasses.replace(plan.stages[0], group_ids=("1", "5", "2"))
    corrupted = dataclasses.replace(plan, stages=(corrupted_first_stage, *plan.stages[1:]))
    monkeypatch.setattr(controller, "_plan", corrupted)

    outputs = drive(controller, START_S, 10.0, lambda _t: lanes_for(occupied=["1", "2"]))
    flashing = [output for output in outputs if output.mode is ControllerMode.FLASH]
    assert flashing and flashing[0].time_s == pytest.approx(FIRST_GREEN_S)
    assert "conflicting groups 1" in flashing[0].reason and "2 (green)" in flashing[0].reason
    assert all(output.mode is ControllerMode.FLASH for output in outputs if output.time_s >= FIRST_GREEN_S)
    for output in flashing:
        assert {state.indication for state in output.groups} == {Indication.FLASHING_RED}
    # the rejected greens were never shown, so they are not logged as green starts
    assert events_of(outputs, AtspmEvent.PHASE_BEGIN_GREEN) == []
    assert controller.fault is not None

    monkeypatch.setattr(controller, "_plan", plan)
    controller.reset()
    restarted = drive(controller, START_S + 10.0, 5.0, lambda _t: lanes_for())
    assert restarted[0].mode is ControllerMode.STARTUP
    assert all(state.indication is Indication.RED for state in restarted[0].groups)
    assert restarted[-1].mode is ControllerMode.NORMAL
    assert controller.fault is None


def test_a_shortened_yellow_ends_in_flash(controller: SignalController, monkeypatch: pytest.MonkeyPatch) -> None:
    group = controller._groups["1"]
    monkeypatch.setattr(group, "timing", dataclasses.replace(group.timing, change_interval_s=1.0))
    outputs = drive(controller, START_S, 15.0, lambda _t: lanes_for(waiting=["2"]))
    flashing = [output for output in outputs if output.mode is ControllerMode.FLASH]
    # green 1002.0 + 5 s min green, yellow for 1.0 s instead of 3.28 s
    assert flashing[0].time_s == pytest.approx(1008.0)
    assert "group 1 yellow lasted 1.000 s" in flashing[0].reason


def test_reset_outside_flash_changes_nothing(controller: SignalController) -> None:
    drive(controller, START_S, 10.0, lambda _t: lanes_for())
    controller.reset()
    output = controller.step(1010.15, lanes_for())
    assert output.mode is ControllerMode.NORMAL
    assert indication(output, "1") is Indication.GREEN


def test_state_stays_bounded_over_a_long_run(controller: SignalController) -> None:
    def lanes_with_strangers(step: int) -> list[LaneObservation]:
        # A new unknown lane id every step: nothing about it may be kept.
        return [*lanes_for(occupied=["2"] if step % 50 < 25 else []), empty_lane(f"ghost_{step}")]

    now = START_S
    tracemalloc.start()
    try:
        # Warm up under tracing so that interpreter caches and free lists are already filled.
        for step in range(1000):
            now += 0.1
            controller.step(now, lanes_with_strangers(step))
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        for step in range(1000, 3000):
            now += 0.1
            controller.step(now, lanes_with_strangers(step))
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 16_000, f"grew by {after - before} bytes over 2000 steps"


def test_output_names_the_stage_and_time(controller: SignalController) -> None:
    output = drive(controller, START_S, 3.0, lambda _t: lanes_for())[-1]
    assert output.stage_id == "ns_left"
    assert output.time_s == pytest.approx(1003.0)


def test_the_controller_stage_passes_the_cameras_lookahead_per_lane() -> None:
    from rsu.stages.controller import lookahead_of
    from rsu_contracts.messages import DetectorStates
    from rsu_contracts.messages.perception import LaneObservation

    def lane(lane_id: str, arrivals: list[float]) -> LaneObservation:
        return LaneObservation(
            lane_id=lane_id,
            stop_bar_occupied=False,
            queue_length_m=0.0,
            queued_vehicles=0,
            approaching_vehicles=len(arrivals),
            stop_bar_gap_s=9.0,
            arrival_times_s=arrivals,
        )

    states = DetectorStates(
        unit_id="rsu-test",
        seq=0,
        capture_time_s=1.0,
        publish_time_s=1.0,
        camera_id="cam",
        valid=True,
        lanes=[lane("north_left", []), lane("south_through_right", [2.5, 7.0])],
    )
    assert lookahead_of(states) == {"south_through_right": (2.5, 7.0)}


def test_shutting_down_leaves_every_head_flashing_red_and_stays_there(controller: SignalController) -> None:
    for tick in range(1, 400):  # 40 s: past the start-up all-red, into serving a stage
        controller.step(1000.0 + tick * 0.1, None)
    assert controller.last_time_s == pytest.approx(1039.9)
    assert any(group.indication is Indication.GREEN for group in controller.step(1040.0, None).groups)
    final = controller.shut_down(1040.1)
    assert final.mode is ControllerMode.FLASH
    assert {group.indication for group in final.groups} == {Indication.FLASHING_RED}
    assert controller.fault == "the unit is stopping"
    later = controller.step(1041.0, None)
    assert {group.indication for group in later.groups} == {Indication.FLASHING_RED}
    with pytest.raises(ValueError, match="must increase"):
        controller.shut_down(1041.0)
