"""`rsu bench signal` runs the unit's strategies with the site file's parameter blocks, and a
program such as ``unit:schedule[headway_s=2.2]`` changes only the named parameters, validated as
the site file's are (no SUMO needed)."""

from __future__ import annotations

import copy

import pytest
import yaml

from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import SiteConfig, parse_site_config
from rsu_tools.sil.runner import _unit_program, with_strategy_parameters


@pytest.fixture
def tuned_site() -> SiteConfig:
    raw = copy.deepcopy(yaml.safe_load(SAMPLE_SITE.read_text()))
    raw["controller"]["schedule"] = {"cluster_gap_s": 4.0}
    return parse_site_config(raw)


def test_a_program_changes_only_the_named_parameters_of_the_sites_block(tuned_site: SiteConfig) -> None:
    name, overrides = _unit_program("unit:schedule[headway_s=2.2;max_clusters_per_stage=2]")
    site = with_strategy_parameters(tuned_site, name, overrides)
    schedule = site.controller.schedule
    assert (schedule.headway_s, schedule.max_clusters_per_stage) == (2.2, 2)
    assert schedule.cluster_gap_s == 4.0  # the site file's value stays
    assert site.controller.adaptive == tuned_site.controller.adaptive
    assert with_strategy_parameters(tuned_site, "schedule", {}) is tuned_site


def test_an_optional_parameter_can_be_set_and_unset(sample_site: SiteConfig) -> None:
    reduced = with_strategy_parameters(sample_site, "actuated", {"minimum_gap_s": "1.5"})
    assert reduced.controller.actuated.minimum_gap_s == 1.5
    assert with_strategy_parameters(reduced, "actuated", {"minimum_gap_s": "none"}).controller.actuated == (
        sample_site.controller.actuated
    )


def test_an_unknown_or_out_of_bounds_parameter_is_refused_by_name(sample_site: SiteConfig) -> None:
    with pytest.raises(ValueError, match=r"unknown adaptive parameters \['cluster_gap_s'\]"):
        with_strategy_parameters(sample_site, "adaptive", {"cluster_gap_s": "3"})
    with pytest.raises(ValueError, match=r"controller\.schedule:\n  max_wait_s: Input should be greater than"):
        with_strategy_parameters(sample_site, "schedule", {"max_wait_s": "5"})
    with pytest.raises(ValueError, match="has no parameters"):
        with_strategy_parameters(sample_site, "recall", {"headway_s": "2"})
