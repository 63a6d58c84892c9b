"""A site with no camera and no geographic reference loads for signal-only library use."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import parse_site_config
from signal_control.phasing import PhasePlan


def signal_only_raw() -> dict[str, Any]:
    raw = copy.deepcopy(yaml.safe_load(SAMPLE_SITE.read_text()))
    del raw["reference"]
    del raw["cameras"]
    return raw


def test_a_site_without_cameras_or_reference_loads_and_plans_its_phases() -> None:
    site = parse_site_config(signal_only_raw())
    assert site.cameras == [] and site.reference is None
    assert not site.is_simulated  # no simulated camera either
    plan = PhasePlan.from_site(site)
    assert set(plan.groups) == {group.id for group in site.signal_groups}


def test_it_says_what_the_unit_would_need() -> None:
    site = parse_site_config(signal_only_raw())
    missing = site.unit_requirements_missing()
    assert len(missing) == 2 and missing[0].startswith("reference") and missing[1].startswith("cameras")


def test_asking_it_for_its_geographic_reference_is_a_clear_error() -> None:
    site = parse_site_config(signal_only_raw())
    with pytest.raises(ValueError, match=r"has no reference .*set reference"):
        _ = site.geo_reference


def test_the_sample_site_has_everything_the_unit_needs() -> None:
    assert parse_site_config(yaml.safe_load(SAMPLE_SITE.read_text())).unit_requirements_missing() == []
