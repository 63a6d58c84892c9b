"""The cologne1 bench: RESCO's delay metric, ports of its controllers, and short runs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rsu_tools.bench.resco import (
    BEGIN_S,
    COLOGNE1_LANE_SETS,
    COLOGNE1_PHASE_PAIRS,
    BoxWatch,
    RescoObserver,
    RunSpec,
    best_pair,
    create_yellows,
    pressure_state,
    resco_delay,
    run_in_subprocess,
    scenario_dir,
    wave_state,
)

COLOGNE1_GREENS = ("rrrrrGGGggrrrrrGGGgg", "rrrrrrrrGGrrrrrrrrGG", "GGGggrrrrrGGGggrrrrr", "rrrGGrrrrrrrrGGrrrrr")
LANES = tuple(dict.fromkeys(lane for lanes in COLOGNE1_LANE_SETS.values() for lane in lanes))


def test_the_delay_is_the_mean_of_time_loss_and_depart_delay_over_every_trip_unfinished_included(
    tmp_path: Path,
) -> None:
    tripinfo = tmp_path / "tripinfo.xml"
    tripinfo.write_text(
        """<tripinfos>
  <tripinfo id="a" depart="25201.00" departDelay="2.00" arrival="25300.00" timeLoss="10.00"/>
  <tripinfo id="b" depart="25210.00" departDelay="0.00" arrival="25290.00" timeLoss="5.00"/>
  <tripinfo id="c" depart="28700.00" departDelay="1.00" arrival="-1" timeLoss="30.00"/>
  <personinfo id="p" depart="25200.00"/>
</tripinfos>"""
    )
    delays = resco_delay(tripinfo)
    # (10 + 2) + (5 + 0) + (30 + 1) over 3 trips; the person is not a trip.
    assert delays.mean_delay_s == pytest.approx(16.0)
    assert (delays.vehicles, delays.unfinished) == (3, 1)


def _counts(**per_lane: tuple[int, int]) -> dict[str, tuple[int, int]]:
    counts = dict.fromkeys(LANES, (0, 0))
    counts.update({lane.replace("m", "-").replace("h", "#"): value for lane, value in per_lane.items()})
    return counts


def test_greedy_counts_every_vehicle_in_range_and_max_pressure_only_the_queued_ones() -> None:
    # South (27115123#3) through lanes: 1 queued + 6 approaching; west (-32038056#3) through: 4 queued.
    counts = _counts(**{"27115123h3_0": (1, 6), "m32038056h3_0": (4, 0)})
    wave = wave_state(counts, COLOGNE1_LANE_SETS)
    pressure = pressure_state(counts, COLOGNE1_LANE_SETS)
    # Phase 0 serves S-S + N-N; phase 2 serves W-W + E-E.
    assert best_pair(wave, COLOGNE1_PHASE_PAIRS) == 0
    assert best_pair(pressure, COLOGNE1_PHASE_PAIRS) == 2
    # A shared lane counts in every movement it serves: lane _0 of the south approach feeds S-W and S-S.
    assert wave[0] == 7 and wave[1] == 7


def test_on_a_tie_the_first_phase_wins_as_numpy_argmax() -> None:
    assert best_pair([0.0] * 12, COLOGNE1_PHASE_PAIRS) == 0
    values = [0.0] * 12
    values[2], values[4] = 3.0, 3.0  # S-E (phase 1) against W-W (phase 2)
    assert best_pair(values, COLOGNE1_PHASE_PAIRS) == 1


def test_a_vehicle_that_has_waited_stays_queued_until_it_leaves_the_range() -> None:
    observer = RescoObserver(["a"])
    assert observer.observe({"a": [("v", 0.0)]}, 10.0) == {"a": (0, 1)}
    assert observer.observe({"a": [("v", 2.0)]}, 10.0) == {"a": (1, 0)}
    # Moving again (SUMO's waiting time back to 0): RESCO's own bookkeeping keeps it queued.
    assert observer.observe({"a": [("v", 0.0)]}, 10.0) == {"a": (1, 0)}
    assert observer.waiting_times["v"] == pytest.approx(12.0)  # 2 s seen, then one 10 s step
    assert observer.observe({"a": []}, 10.0) == {"a": (0, 0)}
    assert "v" not in observer.waiting_times


def test_yellows_are_built_only_where_a_green_turns_red() -> None:
    states, yellow_of = create_yellows(COLOGNE1_GREENS)
    assert states[: len(COLOGNE1_GREENS)] == list(COLOGNE1_GREENS)
    assert states[yellow_of[(0, 1)]] == "rrrrryyyggrrrrryyygg"
    # From the protected lefts back to the through phase nothing turns red: no yellow.
    assert (1, 0) not in yellow_of
    assert len(states) == len(COLOGNE1_GREENS) + len(yellow_of)


def test_box_conflicts_count_clearing_vehicles_on_foe_links_but_not_turns_giving_way() -> None:
    watch = BoxWatch({":j_0": 0, ":j_1": 1, ":j_2": 2}, {0: frozenset({1, 2}), 1: frozenset({0}), 2: frozenset({0})})
    watch.observe(1.0, {"late": ":j_0"}, "yrg")  # entered on yellow, still clearing
    watch.observe(2.0, {"late": ":j_0", "turn": ":j_2"}, "rGg")  # a turn giving way: fine
    assert watch.pairs == set()
    watch.observe(3.0, {"late": ":j_0", "turn": ":j_2", "early": ":j_1"}, "rGg")
    assert watch.pairs == {frozenset(("late", "early"))}
    watch.observe(4.0, {"early": ":j_1"}, "rGr")
    assert watch.last_exit_s == 4.0
    # Two vehicles both entering on the same yellow were released together: not counted.
    watch.observe(5.0, {"early": ":j_1", "y1": ":j_0"}, "yyr")
    watch.observe(6.0, {"early": ":j_1", "y1": ":j_0", "y2": ":j_1"}, "yyr")
    assert watch.pairs == {frozenset(("late", "early")), frozenset(("early", "y1"))}


@pytest.fixture(scope="module")
def cologne1_dir() -> Path:
    folder = scenario_dir()
    if not (folder / "cologne1.sumocfg").is_file():
        pytest.skip(f"RESCO cologne1 not found at {folder} (set RSU_SCENARIOS_DIR or RSU_SHARED_DIR)")
    return folder


@pytest.mark.sumo
@pytest.mark.parametrize("program", ["greedy", "unit:actuated"])
def test_a_short_cologne1_run_in_a_fresh_process(program: str, cologne1_dir: Path, tmp_path: Path) -> None:
    record = run_in_subprocess(RunSpec(program, 1, str(tmp_path), str(cologne1_dir), BEGIN_S, BEGIN_S + 300.0))
    assert record.vehicles > 50
    assert math.isfinite(record.mean_delay_s) and record.mean_delay_s > 0
    assert not record.gridlocked and record.notes == []
    if program == "greedy":
        assert (record.yellow_s, record.all_red_s) == ([3.0], [0.0])
    else:
        # The unit clears with the ITE yellow and a red clearance on every group.
        assert min(record.yellow_s) >= 3.0 and min(record.all_red_s) > 0.0
        assert record.decision_p99_ms is not None
