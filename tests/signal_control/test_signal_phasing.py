"""PhasePlan.from_site: per-group intervals, conflicts and stages resolved from the site file."""

from __future__ import annotations

from typing import Any

import pytest

from rsu.config import SiteConfig
from signal_control import PhasePlan
from signal_control.phasing import ring_barrier_stages, transition_stages, with_ring_barrier_stages
from tests.signal_control.harness import (
    SAMPLE_ALL_RED_S,
    SAMPLE_PED_CLEARANCE_S,
    SAMPLE_STAGE_CLEARANCE_S,
    SAMPLE_YELLOW_S,
)


def _site_with(site: SiteConfig, edit: Any) -> SiteConfig:
    data = site.model_dump()
    edit(data)
    return SiteConfig.model_validate(data)


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


def test_configured_intervals_override_ite_and_are_floored(sample_site: SiteConfig) -> None:
    def explicit_intervals(data: dict[str, Any]) -> None:
        for group in data["signal_groups"]:
            if group["id"] == "2":
                group["yellow_s"] = 4.0
                group["all_red_s"] = 0.5

    plan = PhasePlan.from_site(_site_with(sample_site, explicit_intervals))
    assert plan.groups["2"].change_interval_s == 4.0
    assert plan.groups["2"].all_red_s == 1.0


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
    site = _site_with(sample_site, lambda data: data["conflicts"].append(["1", "6"]))
    assert "nema_1_6" not in {stage.id for stage in ring_barrier_stages(site)}


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
