"""`rsu bench signal`: its quick mode end to end, the SUMO programs it compares against, its
scenario demand and its independent safety check of the shown link states."""

from __future__ import annotations

import json
import math
import pickle
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from rsu.samples import SAMPLE_SITE
from rsu_cli import main
from rsu_contracts.config import SiteConfig
from rsu_contracts.config.load import resolve_relative
from rsu_tools.bench.signal import _cached, _run_in_worker, _store
from rsu_tools.sil.programs import BUILTIN_PROGRAMS, REFERENCE_PROGRAMS, signal_heads_for_network, write_program
from rsu_tools.sil.runner import ALL_PROGRAMS, RunResult, RunSpec
from rsu_tools.sil.safety import ShownStateChecker
from rsu_tools.sil.scenarios import SCENARIOS, write_scenario_demand
from signal_control import PhasePlan

STEP_S = 0.2


def _checker(site: SiteConfig) -> tuple[ShownStateChecker, dict[str, list[int]]]:
    heads = signal_heads_for_network(site, resolve_relative(SAMPLE_SITE, site.simulation.network))
    links_of: dict[str, list[int]] = {}
    for index, group in heads.link_groups.items():
        links_of.setdefault(group, []).append(index)
    return ShownStateChecker(heads.link_groups, PhasePlan.from_site(site), STEP_S), links_of


def _state(links_of: dict[str, list[int]], shown: dict[str, str], size: int = 16) -> str:
    chars = ["r"] * size
    for group, char in shown.items():
        for index in links_of[group]:
            chars[index] = char
    return "".join(chars)


def test_the_safety_check_flags_conflicting_greens_it_is_shown(sample_site: SiteConfig) -> None:
    checker, links_of = _checker(sample_site)
    checker.observe(0.2, _state(links_of, {}))
    checker.observe(0.4, _state(links_of, {"2": "G", "6": "G"}))
    assert checker.total == 0
    checker.observe(0.6, _state(links_of, {"2": "G", "6": "G", "4": "G"}))  # main and side street together
    assert checker.counts == {"conflicting_green": 2}  # 2+4 and 6+4
    assert any("conflicting groups" in v for v in checker.violations)


def test_the_safety_check_flags_a_missing_yellow_and_a_short_all_red(sample_site: SiteConfig) -> None:
    checker, links_of = _checker(sample_site)
    checker.observe(0.2, _state(links_of, {"2": "G", "6": "G"}))
    checker.observe(10.2, _state(links_of, {}))  # green straight to red
    checker.observe(10.4, _state(links_of, {"4": "G", "8": "G"}))  # 0.2 s after the conflicting red
    # 2 and 6 skipped yellow; 4 and 8 each turned green too soon after both.
    assert checker.counts == {"no_yellow": 2, "short_all_red": 4}


def test_a_proper_change_passes_the_safety_check(sample_site: SiteConfig) -> None:
    checker, links_of = _checker(sample_site)
    plan = PhasePlan.from_site(sample_site)
    yellow_s = plan.groups["2"].change_interval_s
    all_red_s = plan.groups["2"].all_red_s
    checker.observe(0.2, _state(links_of, {"2": "G", "6": "G"}))
    checker.observe(10.2, _state(links_of, {"2": "y", "6": "y"}))
    checker.observe(10.2 + yellow_s + 0.1, _state(links_of, {}))
    checker.observe(10.2 + yellow_s + all_red_s + 0.2, _state(links_of, {"4": "G", "8": "G"}))
    assert checker.total == 0, checker.violations


def test_a_permissive_left_giving_way_beside_its_partner_passes_and_beside_anything_else_is_flagged(
    sample_site: SiteConfig,
) -> None:
    checker, links_of = _checker(sample_site)
    plan = PhasePlan.from_site(sample_site)
    yellow_s = plan.groups["2"].change_interval_s
    checker.observe(0.2, _state(links_of, {}))
    # Left 1 turns on SUMO's minor green beside its partner 2 (and beside the walk it crosses).
    checker.observe(2.2, _state(links_of, {"2": "G", "6": "G", "1": "g", "5": "g", "p_west": "G"}))
    checker.observe(12.2, _state(links_of, {"2": "y", "6": "y", "1": "y", "5": "y"}))
    checker.observe(12.2 + yellow_s + 0.1, _state(links_of, {}))
    assert checker.total == 0, checker.violations
    # Beside the side street it is a conflict; straight from minor green to red it skipped yellow.
    checker.observe(30.0, _state(links_of, {"4": "G", "1": "g"}))
    checker.observe(30.2, _state(links_of, {"4": "G"}))
    assert checker.counts == {"conflicting_green": 1, "no_yellow": 1}, checker.violations


@pytest.mark.parametrize("program", [*BUILTIN_PROGRAMS, *REFERENCE_PROGRAMS])
def test_sumo_programs_never_show_conflicting_groups(sample_site: SiteConfig, tmp_path: Path, program: str) -> None:
    net_file = resolve_relative(SAMPLE_SITE, sample_site.simulation.network)
    flows = SCENARIOS["balanced"].lane_flows_pcu_per_hour()
    phases = ET.parse(write_program(tmp_path / "p.add.xml", program, sample_site, net_file, flows)).getroot()
    checker, _ = _checker(sample_site)
    time_s = STEP_S
    states = [phase.get("state", "") for phase in phases.iter("phase")]
    # 4 stages: walk (through stages), green, yellow, all-red; without the 2 protected-left stages 8
    assert len(states) == (8 if program in REFERENCE_PROGRAMS else 14)
    for _cycle in range(2):
        for phase in phases.iter("phase"):
            checker.observe(time_s, phase.get("state", ""))
            # Each phase at its shortest, as an actuated program may run it.
            time_s += float(phase.get("minDur", phase.get("duration", "0")))
    assert checker.total == 0, checker.violations


def test_scenario_demand_is_deterministic_and_the_peak_peaks(tmp_path: Path) -> None:
    a = write_scenario_demand(tmp_path / "a.rou.xml", SCENARIOS["peak"], seed=3, duration_s=1800).read_bytes()
    b = write_scenario_demand(tmp_path / "b.rou.xml", SCENARIOS["peak"], seed=3, duration_s=1800).read_bytes()
    assert a == b
    departs = [float(v.get("depart", "0")) for v in ET.fromstring(a).iter("vehicle")]
    types = {v.get("type") for v in ET.fromstring(a).iter("vehicle")}
    assert {"truck", "bus", "car"} <= types
    first, middle = sum(t < 300 for t in departs), sum(750 <= t < 1050 for t in departs)
    assert middle > 1.4 * first


def test_demand_is_replaced_whole_so_parallel_runs_never_read_half_a_file(tmp_path: Path) -> None:
    # Every program of one scenario and seed writes the same route file; with --workers 2 one run
    # may start SUMO on it while another rewrites it.
    path = tmp_path / "balanced_s1.rou.xml"
    path.write_text("<routes>stale", encoding="utf-8")
    written = write_scenario_demand(path, SCENARIOS["balanced"], seed=1, duration_s=60)
    assert ET.parse(written).getroot().tag == "routes"
    assert [p.name for p in tmp_path.iterdir()] == ["balanced_s1.rou.xml"], "a partial file was left behind"


def test_a_run_that_fails_in_a_worker_is_reported_by_name(tmp_path: Path) -> None:
    # SUMO's own exceptions cannot cross the process boundary; the bench names the failed run.
    missing_site = str(tmp_path / "none.yaml")
    spec = RunSpec("balanced", 1, "delay_based", 10.0, 0.0, STEP_S, str(tmp_path), site_path=missing_site)
    with pytest.raises(RuntimeError, match=r"run balanced_s1_delay_based failed: .*none\.yaml") as failure:
        _run_in_worker(spec)
    assert pickle.loads(pickle.dumps(failure.value)).args == failure.value.args


@pytest.mark.sumo
def test_quick_bench_runs_every_program_and_writes_table_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "signal", "--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for program in ALL_PROGRAMS:
        assert program in printed
    data = json.loads((tmp_path / "signal_bench.json").read_text())
    runs = data["runs"]
    assert {run["program"] for run in runs} == set(ALL_PROGRAMS)
    for run in runs:
        assert run["vehicles"] > 20 and run["completed"] > 0
        assert run["safety_violations"] == 0, run["safety_examples"]
        assert run["mean_delay_s"] > 0
    unit_runs = [run for run in runs if run["program"].startswith("unit:")]
    for run in unit_runs:
        assert run["fault"] is None
        assert run["decision_p99_ms"] is not None
        log = Path(run["events_file"]).read_text().splitlines()
        assert log[0] == "time_s,event_code,parameter" and len(log) > 10
    assert "balanced" in data["summary"]["targets"]
    markdown = (tmp_path / "signal_bench.md").read_text()
    assert markdown.startswith("| scenario | program |") and "unit:adaptive" in markdown


def _result(spec: RunSpec, mean_delay_s: float) -> RunResult:
    return RunResult(
        scenario=spec.scenario,
        seed=spec.seed,
        program=spec.program,
        vehicles=100,
        completed=99,
        mean_delay_s=mean_delay_s,
        p95_delay_s=2 * mean_delay_s,
        max_delay_s=3 * mean_delay_s,
        starved=0,
        max_queue_vehicles=7,
        safety_violations=0,
        safety_by_kind={},
        safety_examples=[],
        pedestrian_mean_wait_s=12.0,
        wall_s=1.0,
    )


def test_sumo_baselines_are_reused_from_the_cache_for_the_same_run_only(tmp_path: Path) -> None:
    spec = RunSpec("balanced", 1, "delay_based", 1800.0, 180.0, STEP_S, str(tmp_path / "runs"))
    _store(tmp_path, spec, _result(spec, 29.5))
    cached = _cached(tmp_path, spec)
    assert cached is not None and cached.mean_delay_s == 29.5 and math.isnan(cached.decision_p99_ms)
    # Another seed, duration or program is another run.
    assert _cached(tmp_path, replace(spec, seed=2)) is None
    assert _cached(tmp_path, replace(spec, duration_s=900.0)) is None
    assert _cached(tmp_path, replace(spec, program="actuated")) is None
    # The unit's own runs are always run afresh.
    unit = replace(spec, program="unit:adaptive")
    _store(tmp_path, unit, _result(unit, 20.0))
    assert _cached(tmp_path, unit) is None
    # Without a cache folder nothing is kept.
    assert _cached(None, spec) is None
