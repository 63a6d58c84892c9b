"""The conflict monitor, fed hand-written output sequences: what it accepts and what it faults."""

from __future__ import annotations

import pytest

from rsu_contracts.config import SiteConfig
from rsu_contracts.messages.signal import Indication, SignalGroupState
from signal_control import ConflictMonitor, PhasePlan, conflicting_greens

R, G, Y = Indication.RED, Indication.GREEN, Indication.YELLOW
PC, FR = Indication.PED_CLEARANCE, Indication.FLASHING_RED


class Feed:
    """All sample groups red except the ones given, fed at the given time."""

    def __init__(self, site: SiteConfig) -> None:
        self.groups = [group.id for group in site.signal_groups]
        self.monitor = ConflictMonitor(PhasePlan.from_site(site))

    def at(self, time_s: float, **shown: Indication) -> str | None:
        indications = {group: R for group in self.groups}
        indications.update({_group(name): value for name, value in shown.items()})
        return self.monitor.check(time_s, indications)


def _group(keyword: str) -> str:
    # Keyword arguments cannot be "2"; tests write g2 for group "2" and p_east as is.
    return keyword[1:] if keyword.startswith("g") else keyword


@pytest.fixture
def feed(sample_site: SiteConfig) -> Feed:
    return Feed(sample_site)


def _serve_main_street(feed: Feed) -> None:
    """2 and 6 green 10 s (their min), yellow 3.28 s, then red; p_east walk 7 s, clearance 12.15 s."""
    assert feed.at(0.0) is None
    assert feed.at(2.0, g2=G, g6=G, p_east=G) is None
    assert feed.at(9.0, g2=G, g6=G, p_east=PC) is None
    assert feed.at(21.2, g2=G, g6=G) is None
    assert feed.at(22.0, g2=Y, g6=Y) is None
    assert feed.at(25.3) is None


def test_a_correct_sequence_raises_no_fault(feed: Feed) -> None:
    _serve_main_street(feed)
    # all-red of 2 and 6 is 1.8777 s: 4 and 8 may start at 25.3 + 1.88 = 27.18 s
    assert feed.at(27.2, g4=G, g8=G) is None
    assert feed.monitor.fault is None


def test_conflicting_groups_not_red_together_fault(feed: Feed) -> None:
    assert feed.at(0.0) is None
    fault = feed.at(2.0, g2=G, g4=G)
    assert fault is not None and "conflicting groups 2" in fault and "4" in fault


@pytest.mark.parametrize("other", [Y, PC, Indication.RED_YELLOW, Indication.FLASHING_YELLOW, Indication.DARK])
def test_any_indication_but_red_counts_as_open_for_conflicts(other: Indication) -> None:
    assert conflicting_greens({"2": G, "4": other}, [("2", "4")]) == [("2", "4")]


def test_red_and_flashing_red_are_safe_beside_anything() -> None:
    assert conflicting_greens({"2": G, "4": R, "8": FR}, [("2", "4"), ("8", "2")]) == []


def test_conflicting_greens_reads_signal_group_states() -> None:
    states = [
        SignalGroupState(
            signal_group=group,
            indication=shown,
            since_s=0.0,
            min_end_time_s=1.0,
            max_end_time_s=1.0,
            likely_time_s=1.0,
        )
        for group, shown in (("2", G), ("4", Y), ("6", G))
    ]
    assert conflicting_greens(states, [("4", "2"), ("2", "8"), ("6", "4")]) == [("2", "4"), ("4", "6")]


def test_green_straight_to_red_faults(feed: Feed) -> None:
    assert feed.at(0.0) is None
    assert feed.at(2.0, g2=G) is None
    fault = feed.at(20.0)
    assert fault is not None and "from green to red" in fault


def test_short_yellow_faults(feed: Feed) -> None:
    assert feed.at(0.0) is None
    assert feed.at(2.0, g2=G) is None
    assert feed.at(20.0, g2=Y) is None
    fault = feed.at(23.0)  # 3.0 s of a 3.28 s yellow
    assert fault is not None and "yellow lasted 3.000 s" in fault


def test_green_shorter_than_min_green_faults(feed: Feed) -> None:
    assert feed.at(0.0) is None
    assert feed.at(2.0, g2=G) is None
    fault = feed.at(11.0, g2=Y)  # 9 s of a 10 s min green
    assert fault is not None and "green lasted 9.000 s" in fault


def test_entry_before_the_all_red_of_the_ended_group_faults(feed: Feed) -> None:
    _serve_main_street(feed)
    fault = feed.at(27.0, g4=G)  # 1.7 s after 2 turned red; its all-red is 1.8777 s
    assert fault is not None and "all-red" in fault


def test_walk_must_run_its_time_and_be_followed_by_clearance(sample_site: SiteConfig) -> None:
    short_walk = Feed(sample_site)
    assert short_walk.at(0.0) is None
    assert short_walk.at(2.0, p_east=G) is None
    fault = short_walk.at(8.0, p_east=PC)
    assert fault is not None and "walk lasted 6.000 s" in fault

    walk_to_red = Feed(sample_site)
    assert walk_to_red.at(0.0) is None
    assert walk_to_red.at(2.0, p_east=G) is None
    fault = walk_to_red.at(12.0)
    assert fault is not None and "from green to red" in fault

    short_clearance = Feed(sample_site)
    assert short_clearance.at(0.0) is None
    assert short_clearance.at(2.0, p_east=G) is None
    assert short_clearance.at(9.0, p_east=PC) is None
    fault = short_clearance.at(21.0)  # 12.0 s of 12.15 s
    assert fault is not None and "pedestrian clearance lasted" in fault


def test_fault_latches_until_reset(feed: Feed) -> None:
    assert feed.at(0.0) is None
    first = feed.at(2.0, g2=G, g4=G)
    assert first is not None
    assert feed.at(3.0) == first
    assert feed.monitor.fault == first
    feed.monitor.reset()
    assert feed.monitor.fault is None
    assert feed.at(4.0) is None


def test_flash_is_always_allowed(feed: Feed) -> None:
    assert feed.at(0.0) is None
    assert feed.at(2.0, g2=G) is None
    assert feed.at(3.0, **{f"g{n}": FR for n in range(1, 9)}) is None


def test_an_output_missing_a_group_faults(feed: Feed) -> None:
    fault = feed.monitor.check(0.0, {"2": R})
    assert fault is not None and "missing" in fault


def test_time_must_increase(feed: Feed) -> None:
    assert feed.at(5.0) is None
    with pytest.raises(ValueError, match="time must increase"):
        feed.at(5.0)


# -- protected/permissive lefts (the sample's 1, 3, 5, 7 give way to the opposing through) -----

FYA = Indication.FLASHING_YELLOW


def test_a_flashing_yellow_arrow_beside_its_partners_green_and_a_walk_is_accepted(feed: Feed) -> None:
    # Left 1 turns giving way to 2 (and to the walk on its way out) while 2 is green, then clears
    # with 2's yellow.
    assert feed.at(0.0) is None
    assert feed.at(2.0, g2=G, g6=G, g1=FYA, g5=FYA, p_east=G) is None
    assert feed.at(9.0, g2=G, g6=G, g1=FYA, g5=FYA, p_east=PC) is None
    assert feed.at(21.2, g2=G, g6=G, g1=FYA, g5=FYA) is None
    assert feed.at(22.0, g2=Y, g6=Y, g1=Y, g5=Y) is None
    assert feed.at(25.3) is None
    assert feed.at(27.2, g4=G, g8=G) is None
    assert feed.monitor.fault is None


def test_a_flashing_yellow_arrow_without_its_partners_green_faults(feed: Feed) -> None:
    assert feed.at(0.0) is None
    fault = feed.at(2.0, g6=G, g1=FYA)
    assert fault is not None and "flashing yellow arrow without its permissive partner 2 green" in fault


def test_a_flashing_yellow_arrow_beside_a_crossing_vehicle_group_faults(feed: Feed) -> None:
    # 3 and 7 (the side-street lefts) are never released with the main street, permissive or not.
    assert feed.at(0.0) is None
    fault = feed.at(2.0, g2=G, g1=FYA, g3=FYA)
    assert fault is not None and "conflicting groups" in fault


def test_a_flashing_yellow_arrow_must_clear_with_a_yellow(feed: Feed) -> None:
    assert feed.at(0.0) is None
    assert feed.at(2.0, g2=G, g1=FYA) is None
    fault = feed.at(12.0, g2=Y)
    assert fault is not None and "group 1 went from flashing_yellow to red" in fault


def test_a_permissive_yellow_shorter_than_the_lefts_yellow_faults(feed: Feed) -> None:
    assert feed.at(0.0) is None
    assert feed.at(2.0, g2=G, g1=FYA) is None
    assert feed.at(12.0, g2=Y, g1=Y) is None
    fault = feed.at(14.0, g2=Y)
    assert fault is not None and "group 1 yellow lasted 2.000 s" in fault


def test_a_group_without_a_permissive_partner_may_never_flash_yellow(feed: Feed) -> None:
    assert feed.at(0.0) is None
    fault = feed.at(2.0, g2=G, g6=FYA)
    assert fault is not None and "6" in fault
