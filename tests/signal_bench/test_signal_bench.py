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
from rsu_tools.bench.signal import (
    SignalBenchOptions,
    _cached,
    _run_in_worker,
    _store,
    _summarise,
    parse_scenarios,
    parse_seeds,
    render_markdown,
)
from rsu_tools.sil.programs import BUILTIN_PROGRAMS, REFERENCE_PROGRAMS, signal_heads_for_network, write_program
from rsu_tools.sil.runner import (
    ALL_PROGRAMS,
    PLANS,
    PROTECTED_ONLY_PLAN,
    RunResult,
    RunSpec,
    programs_for_plan,
    site_for_plan,
)
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
    with pytest.raises(RuntimeError, match=r"run permissive_balanced_s1_delay_based failed: .*none\.yaml") as failure:
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
    # Every scenario runs on both plans; the permissive-only reference only where it means something.
    assert {(run["plan"], run["program"]) for run in runs} == {
        (plan, program) for plan in PLANS for program in programs_for_plan(ALL_PROGRAMS, plan)
    }
    unit_runs = [run for run in runs if run["program"].startswith("unit:")]
    for run in unit_runs:
        assert run["fault"] is None
        assert run["decision_p99_ms"] is not None
        log = Path(run["events_file"]).read_text().splitlines()
        assert log[0] == "time_s,event_code,parameter" and len(log) > 10
    for plan in PLANS:
        assert "unit:schedule" in data["summary"]["targets"][plan]["balanced"]
    markdown = (tmp_path / "signal_bench.md").read_text()
    assert markdown.startswith("| plan | scenario | program |") and "unit:schedule" in markdown


def _result(spec: RunSpec, mean_delay_s: float) -> RunResult:
    return RunResult(
        scenario=spec.scenario,
        seed=spec.seed,
        program=spec.program,
        plan=spec.plan,
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
    assert _cached(tmp_path, replace(spec, plan=PROTECTED_ONLY_PLAN)) is None
    # The unit's own runs are always run afresh.
    unit = replace(spec, program="unit:adaptive")
    _store(tmp_path, unit, _result(unit, 20.0))
    assert _cached(tmp_path, unit) is None
    # Without a cache folder nothing is kept.
    assert _cached(None, spec) is None


def test_the_protected_only_plan_takes_every_permissive_turn_away_and_nothing_else(sample_site: SiteConfig) -> None:
    protected = site_for_plan(sample_site, PROTECTED_ONLY_PLAN)
    assert [g.permissive_with for g in protected.signal_groups] == [None] * len(protected.signal_groups)
    assert [g.id for g in protected.signal_groups] == [g.id for g in sample_site.signal_groups]
    assert protected.conflicts == sample_site.conflicts and protected.controller == sample_site.controller
    assert any(g.permissive_with for g in sample_site.signal_groups), "the sample's own plan is permissive"
    # The permissive-only reference would never serve a protected-only left: not run there.
    assert "delay_based_permissive_only" not in programs_for_plan(ALL_PROGRAMS, PROTECTED_ONLY_PLAN)
    with pytest.raises(ValueError, match="unknown signal plan 'fya'"):
        site_for_plan(sample_site, "fya")


def test_seeds_and_scenarios_can_be_named_so_tuning_and_reporting_use_different_demand() -> None:
    assert parse_seeds("3") == (1, 2, 3)
    assert parse_seeds("101-105") == (101, 102, 103, 104, 105)
    assert parse_seeds("1,7, 9") == (1, 7, 9)
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds("a-b")
    assert parse_scenarios("default") == ("light", "balanced", "unbalanced", "peak")
    assert parse_scenarios("peak,stress,peak") == ("peak", "heavy_lefts", "saturated", "asymmetric_peak")
    assert set(parse_scenarios("unseen")) <= set(SCENARIOS)


def test_the_summary_compares_each_unit_program_with_the_best_sumo_program_per_plan_and_counts_seeds_won(
    tmp_path: Path,
) -> None:
    delays = {  # (plan, program) -> mean delay per seed 1..3
        ("permissive", "delay_based"): (30.0, 30.0, 30.0),
        ("permissive", "actuated"): (40.0, 40.0, 40.0),
        ("permissive", "unit:schedule"): (20.0, 35.0, 20.0),
        (PROTECTED_ONLY_PLAN, "delay_based"): (50.0, 50.0, 50.0),
        (PROTECTED_ONLY_PLAN, "actuated"): (45.0, 44.0, 46.0),
        (PROTECTED_ONLY_PLAN, "unit:schedule"): (40.0, 50.0, 40.0),
    }
    results = [
        _result(RunSpec("balanced", seed, program, 600.0, 60.0, STEP_S, str(tmp_path), plan=plan), per_seed[seed - 1])
        for (plan, program), per_seed in delays.items()
        for seed in (1, 2, 3)
    ]
    options = SignalBenchOptions(
        scenarios=("balanced",), seeds=(1, 2, 3), programs=("unit:schedule", "delay_based", "actuated")
    )
    summary = _summarise(results, options)
    permissive = summary["targets"]["permissive"]["balanced"]["unit:schedule"]
    assert permissive["best_sumo_program"] == "delay_based"
    assert permissive["delay_ratio"] == pytest.approx(25.0 / 30.0) and permissive["delay_target_met"]
    assert (permissive["seeds_won"], permissive["seeds"]) == (2, 3)
    protected = summary["targets"][PROTECTED_ONLY_PLAN]["balanced"]["unit:schedule"]
    # On the other plan the best SUMO program is another one; seeds are won against its own runs.
    assert protected["best_sumo_program"] == "actuated"
    assert protected["delay_ratio"] == pytest.approx((130.0 / 3) / 45.0) and not protected["delay_target_met"]
    assert protected["seeds_won"] == 2
    table = render_markdown(summary)
    assert "| permissive | balanced | unit:schedule |" in table and "(2/3 seeds won)" in table
    assert f"| {PROTECTED_ONLY_PLAN} | balanced | actuated |" in table and "1.00x (best)" in table
