"""Conflicts from the NEMA dual ring: derived when none are listed, and the listed ones cross-checked."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import ConfigError, parse_site_config
from rsu_contracts.config.model import SignalGroup, nema_conflicts, nema_phases_conflict


def sample_raw() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(SAMPLE_SITE.read_text()))


def vehicle_only_raw() -> dict[str, Any]:
    """The sample junction without its pedestrian groups and crosswalks."""
    raw = sample_raw()
    raw["signal_groups"] = [g for g in raw["signal_groups"] if g.get("kind") != "pedestrian"]
    raw["crosswalks"] = []
    pedestrian = {"p_north", "p_south", "p_east", "p_west"}
    raw["conflicts"] = [pair for pair in raw["conflicts"] if not pedestrian & set(pair)]
    for stage in raw["controller"]["stages"]:
        stage["signal_groups"] = [g for g in stage["signal_groups"] if g not in pedestrian]
    return raw


def error_lines(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse_site_config(raw)
    return [line.strip() for line in str(error.value).splitlines()[1:]]


def eight_phases() -> list[SignalGroup]:
    return [SignalGroup(id=f"g{phase}", nema_phase=phase) for phase in range(1, 9)]


@pytest.mark.parametrize(
    ("a", "b"),
    [(1, 2), (5, 6), (3, 4), (7, 8), (2, 4), (1, 8), (6, 3), (5, 7), (1, 3), (2, 8)],
)
def test_phases_in_one_ring_or_across_the_barrier_conflict(a: int, b: int) -> None:
    assert nema_phases_conflict(a, b) and nema_phases_conflict(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    # both throughs, both lefts, and a left with the through of its own approach, on each side of the barrier
    [(2, 6), (1, 5), (1, 6), (2, 5), (4, 8), (3, 7), (3, 8), (4, 7)],
)
def test_phases_in_different_rings_on_one_side_of_the_barrier_run_together(a: int, b: int) -> None:
    assert not nema_phases_conflict(a, b) and not nema_phases_conflict(b, a)


def test_eight_phases_have_the_twenty_standard_conflicts() -> None:
    pairs = {frozenset(pair) for pair in nema_conflicts(eight_phases())}
    assert len(pairs) == 20
    assert frozenset(("g1", "g2")) in pairs and frozenset(("g1", "g6")) not in pairs


def test_pedestrian_groups_and_phases_above_eight_take_no_part_in_the_derivation() -> None:
    groups = [
        *eight_phases()[:2],
        SignalGroup(id="walk", kind="pedestrian", nema_phase=3, crossing_length_m=12),
        SignalGroup(id="overlap", nema_phase=9),
    ]
    assert nema_conflicts(groups) == [("g1", "g2")]


def test_the_sample_lists_every_dual_ring_conflict() -> None:
    site = parse_site_config(sample_raw())
    listed = {frozenset(pair) for pair in site.conflicts}
    assert {frozenset(pair) for pair in nema_conflicts(site.signal_groups)} <= listed


def test_with_no_conflicts_listed_they_are_derived_from_the_rings() -> None:
    listed_by_hand = parse_site_config(vehicle_only_raw())
    raw = vehicle_only_raw()
    del raw["conflicts"]
    derived = parse_site_config(raw)
    assert {frozenset(p) for p in derived.conflicts} == {frozenset(p) for p in listed_by_hand.conflicts}
    assert len(derived.conflicts) == 20


def test_a_missing_left_versus_opposing_through_pair_is_named() -> None:
    raw = sample_raw()
    raw["conflicts"].remove(["2", "1"])
    assert error_lines(raw) == [
        "conflicts: Value error, conflicts: '1' (NEMA 1) and '2' (NEMA 2) conflict in the dual ring but are not listed"
    ]


def test_two_groups_with_one_nema_number_are_rejected() -> None:
    raw = sample_raw()
    raw["signal_groups"][5]["nema_phase"] = 2
    (line,) = error_lines(raw)
    assert line.startswith("signal_groups.5.nema_phase: ")
    assert "nema_phase 2 is also signal group '2''s phase" in line


def test_no_conflicts_with_pedestrian_groups_asks_for_them_to_be_listed() -> None:
    raw = sample_raw()
    raw["conflicts"] = []
    (line,) = error_lines(raw)
    assert line.startswith("conflicts: ") and "p_north" in line and "list the conflicts" in line
