"""Cross-field checks of the site file, and errors that name the field they found wrong."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import ConfigError, parse_site_config


def sample_raw() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(SAMPLE_SITE.read_text()))


def error_lines(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse_site_config(raw)
    return [line.strip() for line in str(error.value).splitlines()[1:]]


def test_ttc_critical_must_be_below_ttc_warning() -> None:
    raw = sample_raw()
    raw["v2x"]["warnings"] = {"ttc_warning_s": 2.0, "ttc_critical_s": 2.0}
    assert error_lines(raw) == [
        "v2x.warnings.ttc_critical_s: Value error, ttc_critical_s (2.0) must be below ttc_warning_s (2.0)"
    ]


def test_ttc_warning_beyond_the_prediction_horizon_is_rejected() -> None:
    raw = sample_raw()
    raw["v2x"]["warnings"] = {"ttc_warning_s": 5.0, "horizon_s": 4.0}
    (line,) = error_lines(raw)
    assert line.startswith("v2x.warnings.ttc_warning_s: ") and "exceeds horizon_s (4.0)" in line


def test_drac_critical_must_be_above_the_drac_threshold() -> None:
    raw = sample_raw()
    raw["v2x"]["warnings"] = {"drac_threshold_mps2": 5.0, "drac_critical_mps2": 4.0}
    (line,) = error_lines(raw)
    assert line.startswith("v2x.warnings.drac_critical_mps2: ") and "must be above drac_threshold_mps2" in line


def test_the_default_warning_thresholds_are_consistent() -> None:
    raw = sample_raw()
    raw["v2x"]["warnings"] = {"ttc_warning_s": 4.0, "ttc_critical_s": 1.0}
    assert parse_site_config(raw).v2x.warnings.ttc_warning_s == 4.0


def test_min_green_above_max_green_names_the_field() -> None:
    raw = sample_raw()
    raw["signal_groups"][2]["min_green_s"] = 30
    raw["signal_groups"][2]["max_green_s"] = 20
    assert error_lines(raw) == [
        "signal_groups.2.max_green_s: Value error, max_green_s (20.0) is below min_green_s (30.0)"
    ]


def test_a_lane_naming_an_unknown_signal_group_names_the_lane_field() -> None:
    raw = sample_raw()
    raw["approaches"][1]["lanes"][0]["signal_group"] = "99"
    (line,) = error_lines(raw)
    assert line.startswith("approaches.1.lanes.0.signal_group: ")
    assert "approaches[south].lanes[south_through_right].signal_group '99' is not a defined signal group" in line


def test_a_lane_released_by_a_pedestrian_group_is_rejected() -> None:
    raw = sample_raw()
    raw["approaches"][0]["lanes"][1]["signal_group"] = "p_north"
    (line,) = error_lines(raw)
    assert line.startswith("approaches.0.lanes.1.signal_group: ") and "is a pedestrian group" in line


def test_a_crosswalk_served_by_a_vehicle_group_is_rejected() -> None:
    raw = sample_raw()
    raw["crosswalks"][1]["signal_group"] = "2"
    (line,) = error_lines(raw)
    assert line.startswith("crosswalks.1.signal_group: ") and "is a vehicle group" in line


def test_a_counting_line_naming_an_unknown_approach_names_the_line_field() -> None:
    raw = sample_raw()
    raw["counting_lines"][3]["approach"] = "northwest"
    (line,) = error_lines(raw)
    assert line.startswith("counting_lines.3.approach: ")
    assert "counting_lines[west_in].approach 'northwest' is not a defined approach" in line


def test_a_stage_naming_an_unknown_group_names_its_position() -> None:
    raw = sample_raw()
    raw["controller"]["stages"][1]["signal_groups"][1] = "42"
    (line,) = error_lines(raw)
    assert line.startswith("controller.stages.1.signal_groups.1: ") and "'42' is not a defined signal group" in line


def test_a_stage_listing_a_group_twice_is_rejected() -> None:
    raw = sample_raw()
    stage = raw["controller"]["stages"][0]
    stage["signal_groups"].append(stage["signal_groups"][0])
    (line,) = error_lines(raw)
    assert line.startswith(f"controller.stages.0.signal_groups.{len(stage['signal_groups']) - 1}: ")
    assert "twice" in line


def test_repeated_ids_name_the_second_use() -> None:
    raw = sample_raw()
    raw["counting_lines"][5]["id"] = raw["counting_lines"][0]["id"]
    assert error_lines(raw) == ["counting_lines.5.id: Value error, counting_lines: id 'north_in' is used twice"]
    raw = sample_raw()
    raw["controller"]["stages"][2]["id"] = raw["controller"]["stages"][0]["id"]
    (line,) = error_lines(raw)
    assert line.startswith("controller.stages.2.id: ") and "is used twice" in line


def test_a_conflict_naming_an_unknown_group_names_its_entry() -> None:
    raw = sample_raw()
    raw["conflicts"][4] = [raw["conflicts"][4][0], "nine"]
    (line,) = error_lines(raw)
    assert line.startswith("conflicts.4.1: ") and "'nine' is not a defined signal group" in line


def test_a_permissive_partner_that_does_not_exist_names_the_field() -> None:
    raw = sample_raw()
    raw["signal_groups"][0]["permissive_with"] = "77"
    (line,) = error_lines(raw)
    assert line.startswith("signal_groups.0.permissive_with: ") and "'77' is not a defined signal group" in line


def test_unserved_groups_are_reported_at_the_stages() -> None:
    raw = sample_raw()
    raw["controller"]["stages"][3]["signal_groups"] = ["4", "8"]
    (line,) = error_lines(raw)
    assert line.startswith("controller.stages: ") and "never serve signal groups ['p_north', 'p_south']" in line


def test_no_cross_reference_error_is_reported_at_the_top_level() -> None:
    raw = sample_raw()
    raw["approaches"][2]["lanes"][0]["signal_group"] = "nope"
    assert not any(line.startswith("(top level)") for line in error_lines(raw))


@pytest.mark.parametrize(
    ("box", "where"),
    [([10, 10, 5, 20], "ignore_boxes_px.0"), ([-1, 0, 5, 5], "ignore_boxes_px.0")],
)
def test_a_motion_ignore_box_with_its_corners_out_of_order_is_rejected(box: list[float], where: str) -> None:
    raw = sample_raw()
    raw["cameras"][0]["detector"] = {"motion": {"ignore_boxes_px": [box]}}
    (line,) = error_lines(raw)
    assert line.startswith(f"cameras.0.detector.motion.{where}: ") and "must be x1 y1 x2 y2" in line


def test_a_video_camera_without_a_uri_names_the_uri_field() -> None:
    raw = sample_raw()
    raw["cameras"][0] = {"id": "cam", "source": "video"}
    (line,) = error_lines(raw)
    assert line.startswith("cameras.0.uri: ") and "needs uri" in line


def test_an_uplink_interval_that_is_not_a_multiple_names_its_entry() -> None:
    raw = sample_raw()
    raw["uplink"] = {"intervals_s": [60, 90]}
    (line,) = error_lines(raw)
    assert line.startswith("uplink.intervals_s.1: ") and "not a multiple of the shortest" in line


def test_a_requester_listed_twice_is_reported_at_its_second_entry() -> None:
    raw = sample_raw()
    raw["priority"]["requesters"] = [{"id": "a", "public_key": "k.pem", "kinds": ["transit"]}] * 2
    (line,) = error_lines(raw)
    assert line.startswith("priority.requesters.1.id: ") and "listed twice" in line
