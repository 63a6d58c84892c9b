"""What the command line prints reads like something a person wrote: complete help, YAML errors
that name the file, a start line saying where things are, summaries with reasons for zeros."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import pytest

from rsu.demo import DemoSummary, Observation
from rsu.samples import SAMPLE_SITE
from rsu_cli import _why_no_aggregates, build_parser, main, start_line, status_line
from rsu_contracts.config import ConfigError, load_site_config


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_subcommand_and_option_has_help_text() -> None:
    commands = _subcommands(build_parser())
    assert {"demo", "run", "check-config"} <= set(commands)
    for name, command in commands.items():
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            assert action.help, f"rsu {name} {'/'.join(action.option_strings) or action.dest}: no help text"


def test_every_command_at_every_level_says_what_it_does_and_every_option_has_help() -> None:
    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                described = {choice.dest for choice in action._choices_actions if choice.help}
                for name, command in action.choices.items():
                    if name not in described:
                        missing.append(" ".join([*path, name]))
                    walk(command, [*path, name])
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(" ".join([*path, *action.option_strings]) or action.dest)

    walk(build_parser(), ["rsu"])
    assert missing == []


def test_run_and_check_config_have_descriptions_and_demo_shows_its_defaults() -> None:
    commands = _subcommands(build_parser())
    assert commands["run"].description and commands["check-config"].description
    seed = next(a for a in commands["demo"]._actions if a.dest == "seed")
    site = next(a for a in commands["demo"]._actions if a.dest == "site")
    assert seed.help is not None and "default 42" in seed.help
    assert site.help is not None and str(SAMPLE_SITE) in site.help


def test_a_yaml_error_names_the_file_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "junction.yaml"
    path.write_text("unit_id: x\napproaches: [\n  a: b\n")
    with pytest.raises(ConfigError) as error:
        load_site_config(path)
    assert str(error.value).startswith(f"{path}:4:1: not valid YAML:")
    assert "<unicode string>" not in str(error.value)
    assert main(["check-config", str(path)]) == 2
    assert f"{path}:4:1" in capsys.readouterr().err


def test_the_start_line_names_unit_site_web_page_and_logs() -> None:
    site = load_site_config(SAMPLE_SITE)
    line = start_line("run", SAMPLE_SITE, verbose=False)
    assert f"unit {site.unit_id}" in line
    assert str(SAMPLE_SITE) in line
    assert f"http://{site.web.host}:{site.web.port}/" in line
    assert "logs to stderr" in line


def test_a_zero_in_the_run_summary_says_why() -> None:
    short = Observation(first_capture_s=100.0, last_capture_s=110.0)
    assert _why_no_aggregates(short, 60.0) == " (the input covered 10 s, shorter than the 60 s interval)"
    assert "see the uplink" in _why_no_aggregates(Observation(first_capture_s=0.0, last_capture_s=300.0), 60.0)


def test_the_demo_summary_has_no_python_reprs_and_explains_its_zeros() -> None:
    summary = DemoSummary(
        duration_s=10.0,
        wall_time_s=5.0,
        vehicles_served=0,
        vehicles_departed=2,
        mean_delay_s=None,
        warnings_sent={},
        aggregates_expected=0,
        aggregates_delivered=0,
        long_aggregates_delivered=0,
        messages_per_topic={"rsu/u/health": 3},
        invalid_messages=[],
        stage_restarts={"v2x": 0},
        line_counts=dict(Counter({("north_in", "car"): 2})),
        interval_s=60.0,
    )
    text = summary.render()
    assert "(the run covered 10 s, shorter than the 60 s interval)" in text
    assert "warnings sent          0 (no conflict or violation was detected)" in text
    for repr_mark in ("{", "}", "[]", "Counter(", "None"):
        assert repr_mark not in text


def test_the_run_status_line_shows_frames_tracks_mode_warnings_and_aggregates() -> None:
    seen = Observation(latest_objects=7, latest_mode="normal")
    seen.messages_per_topic["rsu/u/perception/tracks"] = 120
    seen.warnings_new["crossing"] = 2
    assert status_line(seen, "rsu/u/perception/tracks", 12.2) == (
        "rsu run: 12 s: frames 120, tracks 7, mode normal, warnings 2, aggregates 0"
    )
    assert "mode not yet decided" in status_line(Observation(), "rsu/u/perception/tracks", 1.0)
