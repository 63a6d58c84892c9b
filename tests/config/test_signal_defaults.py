"""Site-wide signal timing defaults, and configured intervals below a safety floor refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import ConfigError, parse_site_config


def sample_raw() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(SAMPLE_SITE.read_text()))


def error_line(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as error:
        parse_site_config(raw)
    (line,) = [line.strip() for line in str(error.value).splitlines()[1:]]
    return line


def test_an_all_red_of_zero_is_refused_naming_the_field() -> None:
    raw = sample_raw()
    raw["signal_groups"][1]["all_red_s"] = 0
    assert error_line(raw).startswith("signal_groups.1.all_red_s: ")


def test_a_yellow_below_three_seconds_is_refused_naming_the_field() -> None:
    raw = sample_raw()
    raw["signal_groups"][1]["yellow_s"] = 2.5
    assert error_line(raw).startswith("signal_groups.1.yellow_s: ")


def test_a_site_default_all_red_below_the_floor_is_refused_naming_the_field() -> None:
    raw = sample_raw()
    raw["signal"] = {"defaults": {"all_red_s": 0.5}}
    assert error_line(raw).startswith("signal.defaults.all_red_s: ")


def test_site_defaults_apply_only_where_a_group_omits_the_value() -> None:
    raw = sample_raw()
    raw["signal"] = {"defaults": {"yellow_s": 4.0, "max_green_s": 30}}
    raw["signal_groups"][1]["yellow_s"] = 5.0
    site = parse_site_config(raw)
    through, left = site.signal_group("2"), site.signal_group("1")
    assert site.configured_yellow_s(through) == 5.0
    assert site.configured_yellow_s(left) == 4.0
    assert site.configured_all_red_s(left) is None  # no default: the ITE formula decides
    assert site.green_bounds_s(left) == (5, 20)  # the sample's group 1 sets both greens


def test_a_default_max_green_below_a_group_min_green_names_the_group() -> None:
    raw = sample_raw()
    raw["signal"] = {"defaults": {"max_green_s": 6}}
    del raw["signal_groups"][1]["max_green_s"]  # group 2 keeps its min green of 10 s
    line = error_line(raw)
    assert line.startswith("signal_groups.1.max_green_s: ") and "max green 6" in line and "min green 10" in line
