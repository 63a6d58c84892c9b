"""fixed_time greens per stage: a stage's own, else Webster's split of design flows, else the site-wide green."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import ConfigError, parse_site_config
from signal_control.phasing import PhasePlan
from signal_control.strategies.fixed_time import FixedTimeStrategy, fixed_time_greens_s

FLOWS_VPH = {
    "north_through_right": 900.0,
    "south_through_right": 700.0,
    "north_left": 150.0,
    "south_left": 120.0,
    "east_through_right": 400.0,
    "west_through_right": 350.0,
    "east_left": 80.0,
    "west_left": 60.0,
}


def sample_raw() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(SAMPLE_SITE.read_text()))


def plan_of(raw: dict[str, Any]) -> PhasePlan:
    return PhasePlan.from_site(parse_site_config(raw))


def test_without_stage_greens_or_flows_every_stage_gets_the_site_wide_green() -> None:
    raw = sample_raw()
    raw["controller"]["fixed_green_s"] = 25
    plan = plan_of(raw)
    assert fixed_time_greens_s(plan) == [25.0] * len(plan.stages)


def test_a_stage_own_green_wins_over_the_site_wide_one() -> None:
    raw = sample_raw()
    raw["controller"]["stages"][0]["fixed_green_s"] = 8
    greens = fixed_time_greens_s(plan_of(raw))
    assert greens[0] == 8.0 and set(greens[1:]) == {raw["controller"].get("fixed_green_s", 20.0)}


def test_design_flows_give_webster_greens_per_stage_lefts_shorter_than_throughs() -> None:
    raw = sample_raw()
    raw["controller"]["design_flows_vph"] = FLOWS_VPH
    plan = plan_of(raw)
    greens = fixed_time_greens_s(plan)
    assert greens == list(FixedTimeStrategy.webster(plan, FLOWS_VPH).greens_s)
    by_stage = dict(zip((stage.stage_id for stage in plan.stages), greens, strict=True))
    assert by_stage["ns_left"] < by_stage["ns_through"]
    assert len(set(greens)) > 1


def test_a_stage_own_green_overrides_its_webster_green_only() -> None:
    raw = sample_raw()
    raw["controller"]["design_flows_vph"] = FLOWS_VPH
    raw["controller"]["stages"][0]["fixed_green_s"] = 12
    plan = plan_of(raw)
    webster = list(FixedTimeStrategy.webster(plan, FLOWS_VPH).greens_s)
    assert fixed_time_greens_s(plan) == [12.0, *webster[1:]]


def test_a_design_flow_for_an_unknown_lane_is_refused_naming_it() -> None:
    raw = sample_raw()
    raw["controller"]["design_flows_vph"] = {"nowhere": 100.0}
    with pytest.raises(ConfigError, match=r"controller\.design_flows_vph\.nowhere: .*'nowhere' is not a defined lane"):
        parse_site_config(raw)


def test_the_strategy_from_the_plan_runs_those_greens() -> None:
    raw = sample_raw()
    raw["controller"]["design_flows_vph"] = FLOWS_VPH
    plan = plan_of(raw)
    assert list(FixedTimeStrategy.from_plan(plan).greens_s) == fixed_time_greens_s(plan)
