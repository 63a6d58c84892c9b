"""`rsu bench cabinet`: its checks catch what they exist for, and the bench runs both backends
(direct SUMO and the virtual NTCIP cabinet) through the whole unit, short."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from rsu.samples import SAMPLE_SITE
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.messages.signal import Indication
from rsu_tools.bench.cabinet import render_table, run_bench
from rsu_tools.cabinet.shown_check import shown_state_violations, spat_agreement
from signal_control.phasing import PhasePlan

RED, YELLOW, GREEN = Indication.RED, Indication.YELLOW, Indication.GREEN


def lamps_of(site: SiteConfig, **shown: Indication) -> dict[str, Indication]:
    return {group.id: shown.get(f"g{group.id}", RED) for group in site.signal_groups}


def cycle(site: SiteConfig, yellow_s: float) -> list[tuple[float, dict[str, Indication]]]:
    """All red, then 4+8 green for 20 s, their yellow for ``yellow_s``, all red, then 2+6 green."""
    return [
        (0.0, lamps_of(site)),
        (5.0, lamps_of(site, g4=GREEN, g8=GREEN)),
        (25.0, lamps_of(site, g4=YELLOW, g8=YELLOW)),
        (25.0 + yellow_s, lamps_of(site)),
        (25.0 + yellow_s + 5.0, lamps_of(site, g2=GREEN, g6=GREEN)),
    ]


def test_the_shown_state_check_passes_a_proper_cycle_and_catches_a_cut_yellow_and_conflicting_greens(
    sample_site: SiteConfig,
) -> None:
    plan = PhasePlan.from_site(sample_site)
    yellow_s = plan.groups["4"].change_interval_s
    assert shown_state_violations(cycle(sample_site, yellow_s), plan, tolerance_s=0.2) == []
    # A yellow shortened by more than the sampling tolerance is a violation; within it, not.
    assert shown_state_violations(cycle(sample_site, yellow_s - 0.1), plan, tolerance_s=0.2) == []
    [cut] = shown_state_violations(cycle(sample_site, yellow_s - 1.0), plan, tolerance_s=0.2)
    assert "group 4 yellow lasted" in cut or "group 8 yellow lasted" in cut
    clash = [*cycle(sample_site, yellow_s), (60.0, lamps_of(sample_site, g2=GREEN, g6=GREEN, g4=GREEN))]
    [conflict] = shown_state_violations(clash, plan, tolerance_s=0.2)
    assert "conflicting groups" in conflict


def test_a_first_interval_that_began_before_the_record_is_not_judged(sample_site: SiteConfig) -> None:
    plan = PhasePlan.from_site(sample_site)
    # The record starts 1 s before a cabinet's green ends: its length is unknown, not 1 s.
    joined = [
        (0.0, lamps_of(sample_site, g4=GREEN, g8=GREEN)),
        (1.0, lamps_of(sample_site, g4=YELLOW, g8=YELLOW)),
        (1.0 + plan.groups["4"].change_interval_s, lamps_of(sample_site)),
    ]
    assert shown_state_violations(joined, plan, tolerance_s=0.2) == []


def test_spat_agreement_counts_a_lie_and_excludes_the_poll_around_each_change(sample_site: SiteConfig) -> None:
    lamps = [(0.0, {"4": RED}), (10.0, {"4": GREEN})]
    truthful = [(0.0, {"4": "stop-And-Remain"}), (10.05, {"4": "protected-Movement-Allowed"})]
    honest = spat_agreement(lamps, truthful, 0.0, 20.0, period_s=0.1, exclude_s=0.1)
    assert honest.fraction == 1.0 and honest.excluded >= 2 and honest.samples > 190
    # SPaT that says green a second before the lamp does.
    early = [(0.0, {"4": "stop-And-Remain"}), (9.0, {"4": "protected-Movement-Allowed"})]
    lie = spat_agreement(lamps, early, 0.0, 20.0, period_s=0.1, exclude_s=0.1)
    assert lie.samples - lie.agreeing >= 9
    assert "group 4 shows red, SPaT protected-Movement-Allowed" in lie.disagreements[0]


@pytest.mark.services
@pytest.mark.sumo
@pytest.mark.slow
def test_the_bench_runs_both_backends_through_the_whole_unit(tmp_path: Path) -> None:
    result = run_bench(SAMPLE_SITE, duration_s=40.0, seed=42, workdir=tmp_path)
    assert [run.mode for run in result.runs] == ["direct", "cabinet"]
    for run in result.runs:
        assert run.invalid_messages == 0 and run.stage_restarts == 0, run
        assert run.lamp_changes > 5 and run.spat_samples > 1000, run
        assert run.shown_state_violations == 0, run.violations
        assert run.vehicles_departed > 0
    direct, cabinet = result.runs
    assert direct.cabinet is None
    assert cabinet.cabinet is not None and cabinet.cabinet["state"] == "in_control"
    table = render_table(result)
    assert "mean delay through the cabinet / direct" in table and "cabinet" in table
    json.dumps(asdict(result))  # the figures the command writes
