"""SUMO signal heads: the link map, the indication translation and the refusal of conflicts."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from rsu.samples import SAMPLE_SITE
from rsu_contracts.config import SiteConfig
from rsu_contracts.messages.signal import Indication, SignalGroupState
from signal_control.backends import ConflictingGreensError, SignalHeads
from signal_control.backends.sumo import SumoLinkFacts, SumoSignalHeads, read_link_facts
from tests.sim.conftest import WorldFactory
from tests.sim.sim_helpers import group_states

pytestmark = pytest.mark.sumo

NET_FILE = SAMPLE_SITE.parent / "sumo" / "intersection.net.xml"
# Link indices of the sample network (see intersection.net.xml, tl="C").
N_RIGHT, N_THROUGH, N_LEFT = 0, 1, 2
S_RIGHT, S_THROUGH, S_LEFT = 6, 7, 8
CROSSING_NORTH, CROSSING_EAST, CROSSING_SOUTH, CROSSING_WEST = 12, 13, 14, 15


class RecordingTrafficLight:
    """Stands in for libsumo.trafficlight (SUMO's method names): links read from the network file."""

    def __init__(self) -> None:
        links: dict[int, list[tuple[str, str, str]]] = {}
        for c in ET.parse(NET_FILE).getroot().iter("connection"):
            if c.get("tl") == "C":
                link = (f"{c.get('from')}_{c.get('fromLane')}", f"{c.get('to')}_{c.get('toLane')}", c.get("via", ""))
                links.setdefault(int(c.get("linkIndex", "-1")), []).append(link)
        self.links = [links[i] for i in range(len(links))]
        self.states: list[str] = []

    def getControlledLinks(self, tlsID: str) -> list[list[tuple[str, str, str]]]:
        return self.links

    def getRedYellowGreenState(self, tlsID: str) -> str:
        return self.states[-1] if self.states else "x"

    def setRedYellowGreenState(self, tlsID: str, state: str) -> None:
        self.states.append(state)


@pytest.fixture
def light() -> RecordingTrafficLight:
    return RecordingTrafficLight()


@pytest.fixture
def facts(sample_site: SiteConfig) -> SumoLinkFacts:
    return read_link_facts(NET_FILE, "C", sample_site)


@pytest.fixture
def heads(sample_site: SiteConfig, light: RecordingTrafficLight, facts: SumoLinkFacts) -> SumoSignalHeads:
    return SumoSignalHeads("C", sample_site, light, facts)


def _state(site: SiteConfig, **indications: Indication) -> list[SignalGroupState]:
    """All groups red except the given ones (keyword g2=... means group "2")."""
    states = group_states(site)
    named = {name.removeprefix("g"): value for name, value in indications.items()}
    return [s.model_copy(update={"indication": named.get(s.signal_group, s.indication)}) for s in states]


def test_the_heads_are_a_signal_heads_backend(heads: SumoSignalHeads) -> None:
    backend: SignalHeads = heads
    assert callable(backend.apply)


def test_the_link_map_follows_site_lanes_and_crosswalks(heads: SumoSignalHeads) -> None:
    groups = heads.link_groups
    assert sorted(groups) == list(range(16))
    assert groups[N_RIGHT] == groups[N_THROUGH] == "2" and groups[N_LEFT] == "5"
    assert groups[S_RIGHT] == groups[S_THROUGH] == "6" and groups[S_LEFT] == "1"
    assert [groups[i] for i in (3, 4, 5, 9, 10, 11)] == ["4", "4", "7", "8", "8", "3"]
    assert groups[CROSSING_NORTH] == "p_north" and groups[CROSSING_EAST] == "p_east"
    assert groups[CROSSING_SOUTH] == "p_south" and groups[CROSSING_WEST] == "p_west"


def test_the_link_map_covers_every_link_sumo_controls(open_world: WorldFactory) -> None:
    world = open_world()
    controlled = world.api.trafficlight.getControlledLinks("C")
    assert len(controlled) == 16
    assert sorted(world.signal_heads.link_groups) == list(range(len(controlled)))
    assert len(world.api.trafficlight.getRedYellowGreenState("C")) == len(controlled)


def test_conflicting_greens_are_refused_with_all_red(
    heads: SumoSignalHeads, light: RecordingTrafficLight, sample_site: SiteConfig
) -> None:
    heads.apply(group_states(sample_site, green=["2", "6", "p_east", "p_west"]))
    assert light.states[-1] != "r" * 16
    with pytest.raises(ConflictingGreensError) as refused:
        heads.apply(group_states(sample_site, green=["2", "4"]))
    assert ("2", "4") in refused.value.pairs
    assert light.states[-1] == "r" * 16 and heads.state == "r" * 16


def test_a_yellow_against_a_conflicting_green_is_refused_too(
    heads: SumoSignalHeads, light: RecordingTrafficLight, sample_site: SiteConfig
) -> None:
    with pytest.raises(ConflictingGreensError):
        heads.apply(group_states(sample_site, green=["4"], yellow=["2"]))
    assert light.states[-1] == "r" * 16


def test_a_walk_against_a_conflicting_green_is_refused(heads: SumoSignalHeads, sample_site: SiteConfig) -> None:
    with pytest.raises(ConflictingGreensError):
        heads.apply(group_states(sample_site, green=["2", "p_north"]))


def test_right_turns_yield_to_walking_pedestrians_and_protected_lefts_do_not_yield(
    heads: SumoSignalHeads, light: RecordingTrafficLight, sample_site: SiteConfig
) -> None:
    heads.apply(group_states(sample_site, green=["2", "6", "p_east", "p_west"]))
    state = light.states[-1]
    assert state[N_THROUGH] == "G" and state[S_THROUGH] == "G"
    # North's right turn crosses the west crosswalk, south's the east one: both walking.
    assert state[N_RIGHT] == "g" and state[S_RIGHT] == "g"
    assert state[CROSSING_EAST] == "G" and state[CROSSING_WEST] == "G"
    assert state[CROSSING_NORTH] == "r" and state[CROSSING_SOUTH] == "r"
    heads.apply(group_states(sample_site, green=["2", "6"]))
    assert light.states[-1][N_RIGHT] == "G"  # nobody walking: the right turn is unopposed
    heads.apply(group_states(sample_site, green=["1", "5"]))
    assert light.states[-1][N_LEFT] == "G" and light.states[-1][S_LEFT] == "G"


@pytest.mark.parametrize(
    ("indication", "vehicle_char", "pedestrian_char"),
    [
        (Indication.YELLOW, "y", "r"),
        (Indication.RED_YELLOW, "u", "r"),
        (Indication.RED, "r", "r"),
        (Indication.FLASHING_YELLOW, "g", "r"),
        (Indication.FLASHING_RED, "r", "r"),
        (Indication.PED_CLEARANCE, "r", "r"),
    ],
)
def test_indications_translate_to_sumo_link_states(
    heads: SumoSignalHeads,
    light: RecordingTrafficLight,
    sample_site: SiteConfig,
    indication: Indication,
    vehicle_char: str,
    pedestrian_char: str,
) -> None:
    heads.apply(_state(sample_site, g2=indication, gp_west=indication))
    state = light.states[-1]
    assert state[N_THROUGH] == vehicle_char
    assert state[CROSSING_WEST] == pedestrian_char


def test_flashing_red_is_shown_as_red_with_a_note(heads: SumoSignalHeads, sample_site: SiteConfig) -> None:
    heads.apply(_state(sample_site, g2=Indication.FLASHING_RED))
    assert any("flashing_red" in note for note in heads.notes)


def test_groups_missing_from_the_command_stay_red(heads: SumoSignalHeads, light: RecordingTrafficLight) -> None:
    heads.apply([])
    assert light.states[-1] == "r" * 16


def test_reassert_restores_the_applied_state(
    heads: SumoSignalHeads, light: RecordingTrafficLight, sample_site: SiteConfig
) -> None:
    heads.apply(group_states(sample_site, green=["4", "8"]))
    applied = light.states[-1]
    light.states.append("G" * 16)  # something else showed SUMO's own program
    heads.reassert()
    assert light.states[-1] == applied


def test_a_crossing_without_a_crosswalk_is_an_error(
    sample_site: SiteConfig, light: RecordingTrafficLight, facts: SumoLinkFacts
) -> None:
    without_crossings = SumoLinkFacts(facts.yields, facts.foes, {}, facts.link_of_internal_lane)
    with pytest.raises(ValueError, match="without a signal group"):
        SumoSignalHeads("C", sample_site, light, without_crossings)


def test_the_world_refuses_conflicting_greens_and_goes_all_red(
    open_world: WorldFactory, sample_site: SiteConfig
) -> None:
    world = open_world()
    world.apply_signals(group_states(sample_site, green=["2", "6"]))
    world.run_until(5.0)
    with pytest.raises(ConflictingGreensError):
        world.apply_signals(group_states(sample_site, green=["2", "8"]))
    world.step()
    assert world.api.trafficlight.getRedYellowGreenState("C") == "r" * 16
