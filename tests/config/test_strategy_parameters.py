"""The strategies' parameters in the site file: one typed block per strategy under `controller`,
each field bounded, unknown keys refused, errors naming the field (also through `rsu check-config`),
and every strategy `controller.strategy` names runnable by the deployed unit's controller."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from rsu.samples import SAMPLE_SITE
from rsu_cli import main
from rsu_contracts.config import ConfigError, load_site_config, parse_site_config
from rsu_contracts.enums import ControllerStrategy
from signal_control import SignalController

REPO = Path(__file__).resolve().parents[2]
SITE_FILES = sorted({SAMPLE_SITE.resolve(), *(REPO / "datasets").glob("*/site.yaml")})

# One changed value in every block (all within bounds).
BLOCKS: dict[str, dict[str, Any]] = {
    "fixed_time": {"saturation_flow_vph_per_lane": 1700, "min_cycle_s": 40, "max_cycle_s": 120},
    "actuated": {"minimum_gap_s": 1.2, "time_before_reduction_s": 8, "time_to_reduce_s": 20},
    "adaptive": {"max_wait_s": 90, "stop_penalty_s": 6.0, "skip_max_vehicles": 0},
    "schedule": {"cluster_gap_s": 4.0, "max_clusters_per_stage": 2, "wait_weight_per_min": 0.5},
}


def sample_raw() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(SAMPLE_SITE.read_text()))


def with_block(strategy: str, values: dict[str, Any]) -> dict[str, Any]:
    raw = sample_raw()
    raw["controller"][strategy] = values
    return raw


def error_lines(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse_site_config(raw)
    return [line.strip() for line in str(error.value).splitlines()[1:]]


def test_a_site_file_with_every_block_parses_and_keeps_the_values() -> None:
    raw = sample_raw()
    raw["controller"].update(copy.deepcopy(BLOCKS))
    controller = parse_site_config(raw).controller
    for strategy, values in BLOCKS.items():
        block = getattr(controller, strategy)
        assert {name: getattr(block, name) for name in values} == values


def test_a_block_left_out_takes_the_defaults_the_strategy_was_tuned_with() -> None:
    raw = sample_raw()
    raw["controller"]["adaptive"] = {"max_wait_s": 90}
    controller = parse_site_config(raw).controller
    default = type(controller.adaptive)()
    assert controller.adaptive == default.model_copy(update={"max_wait_s": 90.0})
    assert controller.schedule == type(controller.schedule)()


@pytest.mark.parametrize(
    ("strategy", "field", "value"),
    [
        ("adaptive", "headway_s", 0.5),
        ("adaptive", "max_wait_s", 5),
        ("adaptive", "red_arrival_share", 1.5),
        ("schedule", "max_clusters_per_stage", 9),
        ("schedule", "future_horizon_s", -1),
        ("schedule", "replan_interval_s", 0),
        ("actuated", "minimum_gap_s", 0.0),
        ("actuated", "time_to_reduce_s", 500),
        ("fixed_time", "saturation_flow_vph_per_lane", 5000),
        ("fixed_time", "max_cycle_s", 400),
    ],
)
def test_a_value_out_of_bounds_is_refused_naming_the_field(strategy: str, field: str, value: float) -> None:
    (line,) = error_lines(with_block(strategy, {field: value}))
    assert line.startswith(f"controller.{strategy}.{field}: "), line
    assert "greater than" in line or "less than" in line


@pytest.mark.parametrize(
    ("strategy", "values", "field"),
    [
        ("fixed_time", {"min_cycle_s": 90, "max_cycle_s": 60}, "max_cycle_s"),
        ("adaptive", {"critical_gap_s": 3.0, "follow_up_s": 3.5}, "follow_up_s"),
        ("schedule", {"critical_gap_s": 3.0, "follow_up_s": 3.5}, "follow_up_s"),
    ],
)
def test_values_that_contradict_each_other_are_refused_naming_the_field(
    strategy: str, values: dict[str, float], field: str
) -> None:
    (line,) = error_lines(with_block(strategy, values))
    assert line.startswith(f"controller.{strategy}.{field}: "), line


@pytest.mark.parametrize("strategy", sorted(BLOCKS))
def test_an_unknown_key_in_a_block_is_refused_naming_it(strategy: str) -> None:
    (line,) = error_lines(with_block(strategy, {"headway": 2.0}))
    assert line == f"controller.{strategy}.headway: unknown key (not part of the site config schema)"


def test_a_parameter_of_another_strategy_is_refused_in_a_block() -> None:
    # cluster_gap_s belongs to schedule: in the adaptive block it is a typo, not a setting.
    (line,) = error_lines(with_block("adaptive", {"cluster_gap_s": 3.0}))
    assert line.startswith("controller.adaptive.cluster_gap_s: unknown key")


def test_check_config_shows_the_field_of_a_bad_parameter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.yaml"
    raw = with_block("schedule", {"max_wait_s": 5})
    raw["simulation"]["network"] = str(SAMPLE_SITE.parent / raw["simulation"]["network"])
    raw["simulation"]["routes"] = str(SAMPLE_SITE.parent / raw["simulation"]["routes"])
    path.write_text(yaml.safe_dump(raw))
    assert main(["check-config", str(path)]) == 2
    error = capsys.readouterr().err
    assert "controller.schedule.max_wait_s" in error and "greater than or equal to 20" in error


@pytest.mark.parametrize("strategy", [s.value for s in ControllerStrategy])
def test_every_strategy_the_site_file_names_runs_in_the_units_controller(strategy: str) -> None:
    raw = sample_raw()
    raw["controller"]["strategy"] = strategy
    controller = SignalController(parse_site_config(raw))
    assert controller.strategy == strategy
    assert controller.step(1000.0, []).strategy == strategy


def test_schedule_is_a_strategy_the_site_file_may_choose() -> None:
    raw = sample_raw()
    raw["controller"]["strategy"] = "schedule"
    assert parse_site_config(raw).controller.strategy is ControllerStrategy.SCHEDULE


@pytest.mark.parametrize("path", SITE_FILES, ids=lambda p: str(Path(p).relative_to(REPO)))
def test_the_sample_and_every_dataset_site_still_load_and_build_their_controller(path: Path) -> None:
    site = load_site_config(path)
    assert SignalController(site).strategy == site.controller.strategy.value
