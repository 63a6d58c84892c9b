"""A parameter set in the site file's `controller.<strategy>` block changes what that strategy
decides: the same observations, one value changed, another decision. Pure logic on plain data
(a parsed site, a DecisionContext), plus the controller built from the site running its block."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import SiteConfig, parse_site_config
from rsu_contracts.messages.perception import LaneObservation
from signal_control import PhasePlan, SignalController
from signal_control.events import AtspmEvent
from signal_control.strategies import (
    Action,
    ActuatedStrategy,
    AdaptiveStrategy,
    DecisionContext,
    FixedTimeStrategy,
    ScheduleStrategy,
    Termination,
)
from tests.signal_control.harness import ALL_LANES, LANES_OF_GROUP, drive, empty_lane, events_of, lanes_for

NS_LEFT, NS_THROUGH, EW_LEFT, EW_THROUGH = range(4)
GREEN_START_S = 990.0


def site_with(protected_only: bool = False, **blocks: dict[str, Any]) -> SiteConfig:
    """The sample site with the given controller blocks, parsed as a site file is."""
    raw = copy.deepcopy(yaml.safe_load(SAMPLE_SITE.read_text()))
    raw["controller"].update(blocks)
    if protected_only:
        for group in raw["signal_groups"]:
            group.pop("permissive_with", None)
    return parse_site_config(raw)


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


def context(stage: int, lanes: Mapping[str, LaneObservation], now_s: float = 1005.0) -> DecisionContext:
    """Stage `stage` green since GREEN_START_S, every stage called."""
    return DecisionContext(
        now_s=now_s,
        stage_index=stage,
        time_in_green_s=now_s - GREEN_START_S,
        min_green_s=10.0,
        max_green_s=45.0,
        stage_calls=(True, True, True, True),
        lanes={lane_id: lanes.get(lane_id, empty_lane(lane_id)) for lane_id in ALL_LANES},
    )


# A through queue still discharging while a lane on red has waited 100 s.
DISCHARGING_WHILE_ONE_WAITS_100_S = {
    "north_through_right": queue("north_through_right", 6),
    "east_through_right": queue("east_through_right", 2, wait_s=100.0),
}


def test_adaptive_max_wait_from_the_site_file_decides_when_a_waiter_forces_the_green_off() -> None:
    observed = context(NS_THROUGH, DISCHARGING_WHILE_ONE_WAITS_100_S)
    default = site_with()  # max_wait_s 120: the queue goes on discharging
    assert AdaptiveStrategy(PhasePlan.from_site(default), default.controller.adaptive).decide(observed).action is (
        Action.HOLD
    )
    strict = site_with(adaptive={"max_wait_s": 90})
    decision = AdaptiveStrategy(PhasePlan.from_site(strict), strict.controller.adaptive).decide(observed)
    assert decision.termination is Termination.FORCE_OFF
    assert "waited 100 s" in decision.reason


def test_schedule_max_wait_from_the_site_file_decides_when_a_waiter_forces_the_green_off() -> None:
    observed = context(NS_THROUGH, DISCHARGING_WHILE_ONE_WAITS_100_S)
    patient = site_with(protected_only=True, schedule={"max_wait_s": 120})
    decision = ScheduleStrategy(PhasePlan.from_site(patient), patient.controller.schedule).decide(observed)
    assert decision.termination is not Termination.FORCE_OFF
    default = site_with(protected_only=True)  # max_wait_s 90
    decision = ScheduleStrategy(PhasePlan.from_site(default), default.controller.schedule).decide(observed)
    assert decision.termination is Termination.FORCE_OFF
    assert decision.next_stage == EW_THROUGH


def test_actuated_gap_reduction_from_the_site_file_ends_a_green_the_passage_time_would_hold() -> None:
    # The through lanes keep a 1.8 s stop-bar gap: within the 2.5 s passage time, above a 1.0 s minimum gap.
    steady = {lane_id: lane(lane_id, stop_bar_gap_s=1.8) for lane_id in LANES_OF_GROUP["2"] + LANES_OF_GROUP["6"]}
    default = site_with()
    plain = ActuatedStrategy(PhasePlan.from_site(default), default.controller.actuated)
    reducing_site = site_with(actuated={"minimum_gap_s": 1.0, "time_before_reduction_s": 5, "time_to_reduce_s": 10})
    reducing = ActuatedStrategy(PhasePlan.from_site(reducing_site), reducing_site.controller.actuated)
    decisions = {
        now_s: (plain.decide(context(NS_THROUGH, steady, now_s)), reducing.decide(context(NS_THROUGH, steady, now_s)))
        for now_s in (1000.0, 1006.0, 1012.0, 1016.0)
    }
    assert all(held.action is Action.HOLD for held, _ in decisions.values())
    # The conflicting calls are first seen at 1000 s; the gap falls from 2.5 s at 1005 s to 1.0 s at 1015 s
    # and reaches the observed 1.8 s at 1005 + 10 x 0.7 / 1.5 = 1009.7 s.
    assert [reduced.action for _, reduced in decisions.values()] == [
        Action.HOLD,
        Action.HOLD,
        Action.TERMINATE,
        Action.TERMINATE,
    ]
    assert decisions[1012.0][1].termination is Termination.GAP_OUT
    assert reducing.allowed_gap_s(2.5, 1010.0) == pytest.approx(1.75)


def test_actuated_gap_reduction_starts_again_with_every_green() -> None:
    site = site_with(actuated={"minimum_gap_s": 1.0, "time_before_reduction_s": 0, "time_to_reduce_s": 0})
    strategy = ActuatedStrategy(PhasePlan.from_site(site), site.controller.actuated)
    strategy.decide(context(NS_THROUGH, {}, now_s=1000.0))
    assert strategy.allowed_gap_s(2.5, 1001.0) == 1.0
    # A new green (another stage) has seen no conflicting call yet: the full passage time.
    fresh = DecisionContext(
        now_s=1001.0,
        stage_index=EW_THROUGH,
        time_in_green_s=0.5,
        min_green_s=8.0,
        max_green_s=35.0,
        stage_calls=(False, False, False, True),
        lanes={lane_id: empty_lane(lane_id) for lane_id in ALL_LANES},
    )
    strategy.decide(fresh)
    assert strategy.allowed_gap_s(2.5, 1001.0) == 2.5


def test_fixed_time_saturation_flow_from_the_site_file_changes_the_webster_greens() -> None:
    flows = {lane_id: 300.0 for lane_id in ALL_LANES}
    default = site_with(design_flows_vph=flows)
    low = site_with(design_flows_vph=flows, fixed_time={"saturation_flow_vph_per_lane": 1200})
    greens = FixedTimeStrategy.from_plan(PhasePlan.from_site(default), default.controller.fixed_time).greens_s
    low_greens = FixedTimeStrategy.from_plan(PhasePlan.from_site(low), low.controller.fixed_time).greens_s
    # A lower saturation flow raises every stage's flow ratio: Webster's cycle and greens grow.
    assert sum(low_greens) > sum(greens)
    capped = site_with(design_flows_vph=flows, fixed_time={"saturation_flow_vph_per_lane": 1200, "max_cycle_s": 40})
    capped_greens = FixedTimeStrategy.from_plan(PhasePlan.from_site(capped), capped.controller.fixed_time).greens_s
    assert sum(capped_greens) < sum(low_greens)


def test_the_controller_runs_the_strategy_with_the_site_files_block() -> None:
    """The deployed unit's controller builds the strategy from the site: a through lane with a vehicle
    every 2 s holds its green to max-out on the 2.5 s passage time, and gaps out once the site sets
    gap reduction."""

    def steady_through(now_s: float) -> list[LaneObservation]:
        result = lanes_for(waiting=["4", "8"])
        gap_s = now_s % 2.0
        return [
            lane(item.lane_id, stop_bar_gap_s=gap_s, approaching_vehicles=1)
            if item.lane_id in LANES_OF_GROUP["2"]
            else item
            for item in result
        ]

    runs = {}
    for name, actuated in (("default", {}), ("reduced", {"minimum_gap_s": 1.0, "time_to_reduce_s": 5})):
        controller = SignalController(site_with(actuated=actuated))
        runs[name] = drive(controller, 1000.0, 120.0, steady_through)
    assert events_of(runs["default"], AtspmEvent.PHASE_MAX_OUT, "2")
    assert not events_of(runs["default"], AtspmEvent.PHASE_GAP_OUT, "2")
    assert events_of(runs["reduced"], AtspmEvent.PHASE_GAP_OUT, "2")
    assert not events_of(runs["reduced"], AtspmEvent.PHASE_MAX_OUT, "2")
