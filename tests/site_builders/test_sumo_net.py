"""`rsu site from-sumo`: a site file from one traffic light of a SUMO network."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest
import yaml

from rsu_cli import main as rsu_main
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_tools.bench.resco import COLOGNE1_TLS, scenario_dir
from rsu_tools.site_builders.sumo_net import ImportedSite, SumoNetError, import_site, read_traffic_light
from signal_control.phasing import PhasePlan

REPO = Path(__file__).resolve().parents[2]
SAMPLE_NET = REPO / "datasets/sample_intersection/sumo/intersection.net.xml"
SAMPLE_SITE = REPO / "datasets/sample_intersection/site.yaml"
MUNICH = (48.137154, 11.576124)


@pytest.fixture(scope="module")
def cologne1_net() -> Path:
    net = scenario_dir() / "cologne1.net.xml"
    if not net.is_file():
        pytest.skip(f"RESCO cologne1 not found at {net} (set RSU_SCENARIOS_DIR or RSU_SHARED_DIR)")
    return net


def _write(tmp_path: Path, net: Path, tls: str, *extra: str) -> Path:
    out = tmp_path / "site.yaml"
    assert rsu_main(["site", "from-sumo", str(net), "--tls", tls, "--out", str(out), *extra]) == 0
    return out


def _check_links_and_conflicts(imported: ImportedSite, net: Path, tls: str) -> None:
    facts = read_traffic_light(net, tls)
    width = len(facts.phases[0].state)
    groups = {group["id"] for group in imported.site["signal_groups"]}
    # Every link index of the light belongs to exactly one defined group.
    assert sorted(imported.link_groups) == list(range(width))
    assert set(imported.link_groups.values()) == groups
    # Links in one group show the same signal over the whole program (green major or minor).
    for group in groups:
        columns = {
            "".join("G" if phase.state[index] in "Gg" else phase.state[index] for phase in facts.phases)
            for index, owner in imported.link_groups.items()
            if owner == group
        }
        assert len(columns) == 1, group
    # The foe matrix, lifted to groups, is exactly the declared conflicts, apart from the pairs the
    # program itself shows green together (a turn giving way to pedestrians) and the stricter pairs a
    # permissive turn needs.
    foe_pairs = {
        frozenset((imported.link_groups[a], imported.link_groups[b]))
        for a, others in facts.foes.items()
        for b in others
        if imported.link_groups[a] != imported.link_groups[b]
    }
    conflicts = {frozenset(pair) for pair in imported.site["conflicts"]}
    assert conflicts - imported.added_conflicts == foe_pairs - imported.yielding_pairs
    assert not imported.added_conflicts & foe_pairs


def test_the_sample_junction_imports_with_the_sample_sites_numbering_and_vehicle_conflicts(tmp_path: Path) -> None:
    out = _write(tmp_path, SAMPLE_NET, "C", "--reference", f"{MUNICH[0]},{MUNICH[1]}")
    site = load_site_config(out)
    sample = load_site_config(SAMPLE_SITE)
    # The same lane -> signal group assignment (NEMA: 2/6 north-south through, 5/1 their lefts, ...).
    assert {lane.sumo_lane: lane.signal_group for lane in site.lanes} == {
        lane.sumo_lane: lane.signal_group for lane in sample.lanes
    }
    assert {g.id: g.nema_phase for g in site.signal_groups if g.nema_phase} == {
        g.id: g.nema_phase for g in sample.signal_groups if g.nema_phase
    }
    vehicle = {g.id for g in sample.signal_groups if g.kind.value == "vehicle"}
    assert {frozenset(p) for p in site.conflicts if set(p) <= vehicle} == {
        frozenset(p) for p in sample.conflicts if set(p) <= vehicle
    }
    # Protected/permissive lefts as in the sample: each left gives way to the opposing through.
    assert {g.id: g.permissive_with for g in site.signal_groups if g.permissive_with} == {
        "1": "2", "3": "4", "5": "6", "7": "8"
    }  # fmt: skip
    assert [set(stage.signal_groups) for stage in site.controller.stages] == [
        {"2", "6", "p_east", "p_west"}, {"1", "5"}, {"4", "8", "p_north", "p_south"}, {"3", "7"}
    ]  # fmt: skip
    # Geometry in metres about the junction centre; each centre line ends at its stop line.
    north = next(lane for lane in site.lanes if lane.sumo_lane == "N2C_0")
    assert north.centerline_m[-1] == pytest.approx((-4.8, 12.14), abs=0.05)
    assert site.reference is not None and site.reference.latitude_deg == pytest.approx(MUNICH[0])
    PhasePlan.from_site(site)
    imported = import_site(SAMPLE_NET, "C", out, reference=MUNICH)
    _check_links_and_conflicts(imported, SAMPLE_NET, "C")


def test_cologne1_imports_with_shared_lanes_nema_numbers_and_the_foe_matrix_as_conflicts(
    tmp_path: Path, cologne1_net: Path
) -> None:
    out = _write(tmp_path, cologne1_net, COLOGNE1_TLS)
    site = load_site_config(out)
    imported = import_site(cologne1_net, COLOGNE1_TLS, out)
    _check_links_and_conflicts(imported, cologne1_net, COLOGNE1_TLS)
    # No pair is left out or added: the conflicts are the foe matrix.
    assert not imported.yielding_pairs and not imported.added_conflicts
    assert sorted(g.nema_phase for g in site.signal_groups if g.nema_phase) == list(range(1, 9))
    assert len(site.conflicts) == 20
    # Each approach: a through+right lane and a shared left / through / U-turn lane.
    assert len(site.approaches) == 4
    for approach in site.approaches:
        assert [sorted(lane.movements) for lane in approach.lanes] == [
            ["right", "through"], ["left", "through", "uturn"]
        ]  # fmt: skip
    assert sum("(shared)" in note for note in imported.notes) == 4
    # The network's UTM projection gives the geographic reference: Cologne.
    assert site.reference is not None
    assert math.dist((site.reference.latitude_deg, site.reference.longitude_deg), (50.93, 6.93)) < 0.02
    assert yaml.safe_load(out.read_text())["simulation"]["routes"].endswith("cologne1.rou.xml")
    # The controller's phase plan takes it as written: a left released only from a shared lane
    # clears (ITE, its own approach) within the opposing through it gives way to.
    plan = PhasePlan.from_site(site)
    for group in plan.groups.values():
        if group.permissive_with is not None:
            partner = plan.groups[group.permissive_with]
            assert group.change_interval_s <= partner.change_interval_s
            assert group.all_red_s <= partner.all_red_s
        assert group.change_interval_s >= 3.0 and group.all_red_s >= 1.0


def test_an_unknown_traffic_light_is_named_with_the_ones_the_network_has() -> None:
    with pytest.raises(SumoNetError, match=r"--tls 'nope'.*\['C'\]"):
        read_traffic_light(SAMPLE_NET, "nope")


def test_a_network_without_projection_is_written_without_a_made_up_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.yaml"
    code = rsu_main(["site", "from-sumo", str(SAMPLE_NET), "--tls", "C", "--out", str(out)])
    if SiteConfig.model_fields["reference"].is_required():
        # The site model still needs one: the command says which option gives it, and writes nothing.
        assert code == 2
        assert "--reference LAT,LON" in capsys.readouterr().err
        assert not out.exists()
    else:
        assert code == 0
        assert "reference" not in yaml.safe_load(out.read_text())


@pytest.fixture(scope="module")
def grid_net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3x3 grid from netgenerate: two-lane legs, SUMO's guessed two-phase programs."""
    from rsu.sim.network import sumo_tool

    net = tmp_path_factory.mktemp("grid") / "grid.net.xml"
    subprocess.run(
        [
            sumo_tool("netgenerate"), "--grid", "--grid.number", "3", "--grid.length", "200",
            "--default.lanenumber", "2", "--default-junction-type", "traffic_light", "-o", str(net),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return net


@pytest.mark.sumo
def test_a_two_phase_junction_leaves_lefts_giving_way_within_their_own_green(tmp_path: Path, grid_net: Path) -> None:
    out = _write(tmp_path, grid_net, "B1", "--reference", f"{MUNICH[0]},{MUNICH[1]}")
    site = load_site_config(out)
    imported = import_site(grid_net, "B1", out, reference=MUNICH)
    _check_links_and_conflicts(imported, grid_net, "B1")
    # One group per approach (its left shows the same column as its through), numbered 2/4/6/8.
    assert sorted(g.nema_phase for g in site.signal_groups if g.nema_phase) == [2, 4, 6, 8]
    assert [set(stage.signal_groups) for stage in site.controller.stages] == [{"2", "6"}, {"4", "8"}]
    # The opposing approaches cross (left against through) but run together: not a declared conflict.
    assert imported.yielding_pairs == {frozenset(("2", "6")), frozenset(("4", "8"))}
    PhasePlan.from_site(site)


@pytest.mark.sumo
def test_a_light_with_nothing_to_control_is_refused_with_the_reason(grid_net: Path, tmp_path: Path) -> None:
    # A0 is a corner of the grid: two legs that never conflict.
    with pytest.raises(SumoNetError, match=r"'A0'.*at least two stages and one conflict"):
        import_site(grid_net, "A0", tmp_path / "a0.yaml", reference=MUNICH)
