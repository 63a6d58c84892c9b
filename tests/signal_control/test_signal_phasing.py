"""PhasePlan.from_site: per-group intervals, conflicts and stages resolved from the site file, and
how the controller changes between dual-ring stages."""

from __future__ import annotations

from typing import Any

import pytest

from rsu_contracts.config import SiteConfig
from signal_control import PhasePlan, SignalController
from signal_control.events import AtspmEvent
from signal_control.phasing import ring_barrier_stages, transition_stages, with_ring_barrier_stages
from signal_control.strategies import Decision, DecisionContext, Termination
from tests.signal_control.harness import (
    SAMPLE_ALL_RED_S,
    SAMPLE_PED_CLEARANCE_S,
    SAMPLE_STAGE_CLEARANCE_S,
    SAMPLE_YELLOW_S,
    SafetyChecker,
    drive,
    events_of,
    green_starts,
    lanes_for,
)


def _site_with(site: SiteConfig, edit: Any) -> SiteConfig:
    data = site.model_dump()
    edit(data)
    return SiteConfig.model_validate(data)


def _protected_lefts_only(data: dict[str, Any]) -> None:
    """The sample's lefts without their permissive turn, for edits a permissive left would refuse."""
    for group in data["signal_groups"]:
        group["permissive_with"] = None


def test_vehicle_group_intervals_come_from_its_approach(sample_site: SiteConfig) -> None:
    plan = PhasePlan.from_site(sample_site)
    through = plan.groups["2"]
    assert through.change_interval_s == pytest.approx(SAMPLE_YELLOW_S, abs=1e-5)
    assert through.all_red_s == pytest.approx(SAMPLE_ALL_RED_S, abs=1e-5)
    assert (through.min_green_s, through.max_green_s, through.passage_s) == (10.0, 45.0, 2.5)
    assert through.lane_ids == ("north_through_right",)


def test_pedestrian_group_walks_then_clears_its_crossing(sample_site: SiteConfig) -> None:
    plan = PhasePlan.from_site(sample_site)
    east = plan.groups["p_east"]
    assert east.is_pedestrian
    assert east.min_green_s == 7.0
    assert east.change_interval_s == pytest.approx(SAMPLE_PED_CLEARANCE_S, abs=1e-5)
    assert east.all_red_s == 1.0
    assert east.crosswalk_ids == ("cw_east",)


def test_approach_speed_and_grade_change_the_group_intervals(sample_site: SiteConfig) -> None:
    def faster_east_and_downhill_north(data: dict[str, Any]) -> None:
        _protected_lefts_only(data)  # lefts no longer clear within their partner's intervals
        for approach in data["approaches"]:
            if approach["id"] == "east":
                approach["speed_limit_mps"] = 17.9
            if approach["id"] == "north":
                approach["grade_percent"] = -5.0

    plan = PhasePlan.from_site(_site_with(sample_site, faster_east_and_downhill_north))
    # east lanes feed groups 4 and 7: 1 + 17.9 / 6.1 = 3.93443 s; (20 + 6.1) / 17.9 = 1.45810 s
    assert plan.groups["4"].change_interval_s == pytest.approx(3.93443, abs=1e-5)
    assert plan.groups["7"].all_red_s == pytest.approx(1.45810, abs=1e-5)
    # north lanes feed groups 2 and 5: 1 + 13.9 / (6.1 - 0.981) = 3.71537 s
    assert plan.groups["5"].change_interval_s == pytest.approx(3.71537, abs=1e-5)
    assert plan.groups["6"].change_interval_s == pytest.approx(SAMPLE_YELLOW_S, abs=1e-5)


def test_configured_intervals_override_ite(sample_site: SiteConfig) -> None:
    def explicit_intervals(data: dict[str, Any]) -> None:
        _protected_lefts_only(data)
        for group in data["signal_groups"]:
            if group["id"] == "2":
                group["yellow_s"] = 4.0
                group["all_red_s"] = 1.5

    plan = PhasePlan.from_site(_site_with(sample_site, explicit_intervals))
    assert plan.groups["2"].change_interval_s == 4.0
    assert plan.groups["2"].all_red_s == 1.5


def test_site_defaults_fill_what_a_group_omits_and_the_group_own_values_win(sample_site: SiteConfig) -> None:
    def with_defaults(data: dict[str, Any]) -> None:
        _protected_lefts_only(data)
        data["signal"] = {"defaults": {"yellow_s": 4.5, "all_red_s": 2.5, "min_green_s": 6, "max_green_s": 30}}
        for group in data["signal_groups"]:
            if group["id"] == "2":
                group["yellow_s"] = 4.0
            if group["id"] == "4":
                for field in ("min_green_s", "max_green_s"):
                    group.pop(field, None)

    plan = PhasePlan.from_site(_site_with(sample_site, with_defaults))
    assert (plan.groups["2"].change_interval_s, plan.groups["2"].all_red_s) == (4.0, 2.5)
    assert (plan.groups["4"].change_interval_s, plan.groups["4"].all_red_s) == (4.5, 2.5)
    assert (plan.groups["4"].min_green_s, plan.groups["4"].max_green_s) == (6, 30)
    # Group 2 sets its own greens in the sample (10 / 45 s).
    assert (plan.groups["2"].min_green_s, plan.groups["2"].max_green_s) == (10, 45)


def test_conflicts_are_symmetric(sample_site: SiteConfig) -> None:
    plan = PhasePlan.from_site(sample_site)
    assert plan.in_conflict("2", "4") and plan.in_conflict("4", "2")
    assert plan.in_conflict("p_east", "8") and plan.in_conflict("8", "p_east")
    assert not plan.in_conflict("2", "6")
    assert not plan.in_conflict("2", "p_east")
    for group, others in plan.conflicts_of.items():
        for other in others:
            assert group in plan.conflicts_of[other]


def test_stages_keep_site_order_and_know_their_lanes_and_pedestrians(sample_site: SiteConfig) -> None:
    plan = PhasePlan.from_site(sample_site)
    assert [stage.stage_id for stage in plan.stages] == ["ns_left", "ns_through", "ew_left", "ew_through"]
    through = plan.stages[1]
    assert through.vehicle_group_ids == ("2", "6")
    assert through.pedestrian_group_ids == ("p_east", "p_west")
    assert through.lane_ids == ("north_through_right", "south_through_right")
    # a served pedestrian holds the stage for walk + clearance: 7 + 12.14953 s
    assert through.min_green_with_pedestrians_s == pytest.approx(19.14953, abs=1e-5)
    assert plan.stages[0].min_green_with_pedestrians_s == 5.0
    assert plan.stage_index("ew_left") == 2


def test_clearance_between_stages_is_yellow_plus_all_red(sample_site: SiteConfig) -> None:
    plan = PhasePlan.from_site(sample_site)
    assert plan.transition_clearance_s(0, 1) == pytest.approx(SAMPLE_STAGE_CLEARANCE_S, abs=1e-5)
    assert plan.max_all_red_s == pytest.approx(SAMPLE_ALL_RED_S, abs=1e-5)


def test_the_dual_ring_stages_pair_each_lead_left_with_the_opposing_rings_through(sample_site: SiteConfig) -> None:
    # NEMA: ring 1 is 1-2 | 3-4, ring 2 is 5-6 | 7-8; a left may run beside the through of the
    # other ring on its own side of the barrier, never across it.
    derived = {stage.id: stage.signal_groups for stage in ring_barrier_stages(sample_site)}
    assert derived == {"nema_1_6": ["1", "6"], "nema_2_5": ["2", "5"], "nema_3_8": ["3", "8"], "nema_4_7": ["4", "7"]}


def test_a_pair_the_site_declares_conflicting_is_never_derived(sample_site: SiteConfig) -> None:
    def one_and_six_conflict(data: dict[str, Any]) -> None:
        _protected_lefts_only(data)
        data["conflicts"].append(["1", "6"])

    site = _site_with(sample_site, one_and_six_conflict)
    assert "nema_1_6" not in {stage.id for stage in ring_barrier_stages(site)}


def test_a_permissive_left_turns_beside_the_opposing_through_it_gives_way_to(sample_site: SiteConfig) -> None:
    plan = PhasePlan.from_site(sample_site)
    assert {g: t.permissive_with for g, t in plan.groups.items() if t.permissive_with} == {
        "1": "2",
        "3": "4",
        "5": "6",
        "7": "8",
    }


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda g, c: g.__setitem__("permissive_with", "9"), "'9' is not a defined signal group"),
        (lambda g, c: g.__setitem__("permissive_with", "p_east"), "not pedestrian ones"),
        (lambda g, c: g.__setitem__("permissive_with", "6"), "must be declared conflicting"),
        (lambda g, c: c.append(["1", "6"]), "'1' crosses '6', which does not conflict with '2'"),
    ],
)
def test_a_permissive_left_must_give_way_to_a_conflicting_partner_and_clear_with_it(
    sample_site: SiteConfig, edit: Any, message: str
) -> None:
    data = sample_site.model_dump()
    (left,) = [group for group in data["signal_groups"] if group["id"] == "1"]
    edit(left, data["conflicts"])
    with pytest.raises(ValueError, match=message):
        SiteConfig.model_validate(data)


def test_a_permissive_left_with_a_longer_clearance_than_its_partner_is_refused(sample_site: SiteConfig) -> None:
    def longer_left_yellow(data: dict[str, Any]) -> None:
        for group in data["signal_groups"]:
            if group["id"] == "1":
                group["yellow_s"] = 4.5

    with pytest.raises(ValueError, match=r"'1' turns permissively with '2'.*yellow \(4.50 s\) is longer"):
        PhasePlan.from_site(_site_with(sample_site, longer_left_yellow))


def test_the_dual_ring_stages_follow_the_sites_own_and_lead_from_one_to_the_next(sample_site: SiteConfig) -> None:
    plan = PhasePlan.from_site(with_ring_barrier_stages(sample_site))
    ids = [stage.stage_id for stage in plan.stages]
    assert ids[:4] == ["ns_left", "ns_through", "ew_left", "ew_through"]
    ns_left, ns_through, ew_left, ew_through = range(4)
    assert transition_stages(plan) == {
        ids.index("nema_1_6"): (ns_left, ns_through),
        ids.index("nema_2_5"): (ns_left, ns_through),
        ids.index("nema_3_8"): (ew_left, ew_through),
        ids.index("nema_4_7"): (ew_left, ew_through),
    }
    # Sequential stages overlap nothing.
    assert transition_stages(PhasePlan.from_site(sample_site)) == {}


class _ScriptedStrategy:
    """Asks for the next stage of a fixed script as soon as the controller lets it."""

    name = "scripted"
    serves_every_stage = False

    def __init__(self, plan: PhasePlan, script: list[str]) -> None:
        self._plan = plan
        self._script = script

    def expected_green_s(self, stage_index: int) -> float:
        return self._plan.stages[stage_index].vehicle_min_green_s

    def decide(self, context: DecisionContext) -> Decision:
        current = self._plan.stages[context.stage_index].stage_id
        if current not in self._script[:-1]:
            return Decision.hold("off script", 0.0)
        following = self._script[self._script.index(current) + 1]
        return Decision.terminate(Termination.GAP_OUT, self._plan.stage_index(following), f"to {following}")


def test_a_dual_ring_change_waits_only_for_the_minimum_of_the_phase_that_ends(sample_site: SiteConfig) -> None:
    # {1, 5} -> {2, 5} -> {2, 6}: when {2, 5} begins, phase 5 has had its 5 s minimum and may end
    # at once; phase 2, which stays green into {2, 6}, runs its own 10 s minimum out there.
    site = with_ring_barrier_stages(sample_site)
    controller = SignalController(site)
    controller.set_strategy(_ScriptedStrategy(controller.plan, ["ns_left", "nema_2_5", "ns_through"]))
    checker = SafetyChecker.for_site(site)
    outputs = drive(controller, 1000.0, 40.0, lambda _t: lanes_for(waiting=["1", "2", "5", "6"]))
    for output in outputs:
        checker.observe(output)  # safety, and no green ends before the minEndTime it published
    (two_green_s,) = green_starts(outputs, "2")
    five_yellow_s = events_of(outputs, AtspmEvent.PHASE_BEGIN_YELLOW_CLEARANCE, "5")[0].time_s
    assert five_yellow_s - two_green_s < 0.15, "phase 5 was held for phase 2's minimum green"
    six_green_s = green_starts(outputs, "6")[0]
    two_yellow = events_of(outputs, AtspmEvent.PHASE_BEGIN_YELLOW_CLEARANCE, "2")
    assert not two_yellow or two_yellow[0].time_s - two_green_s >= 10.0
    assert six_green_s == pytest.approx(five_yellow_s + SAMPLE_STAGE_CLEARANCE_S, abs=0.15)
