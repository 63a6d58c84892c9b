"""The SUMO network of the sample junction and its agreement with the site file."""

from __future__ import annotations

import itertools
import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rsu.samples import SAMPLE_SITE
from rsu.sim import network
from rsu_contracts.config import SiteConfig
from rsu_contracts.config.model import Point
from rsu_contracts.enums import CountingLineRole
from signal_control.backends.sumo import read_link_facts

pytestmark = pytest.mark.sumo

SUMO_DIR = SAMPLE_SITE.parent / "sumo"
NET_FILE = SUMO_DIR / network.NETWORK_FILE
GEOMETRY_TOLERANCE_M = 0.5
# Incoming edge -> (through, right, left) exit edges in right-hand traffic.
TURNS = {
    "N2C": ("C2S", "C2W", "C2E"),
    "S2C": ("C2N", "C2E", "C2W"),
    "E2C": ("C2W", "C2N", "C2S"),
    "W2C": ("C2E", "C2S", "C2N"),
}


@pytest.fixture(scope="module")
def net() -> network.sumolib.net.Net:
    return network.read_network(NET_FILE)


def _distance_to_polyline(point: Point, polyline: list[Point]) -> float:
    best = math.inf
    px, py = point
    for (x0, y0), (x1, y1) in itertools.pairwise(polyline):
        dx, dy = x1 - x0, y1 - y0
        t = max(0.0, min(1.0, ((px - x0) * dx + (py - y0) * dy) / (dx * dx + dy * dy)))
        best = min(best, math.hypot(px - (x0 + t * dx), py - (y0 + t * dy)))
    return best


def test_network_has_junction_c_with_the_four_legs(net: network.sumolib.net.Net) -> None:
    junction = net.getNode("C")
    assert junction.getCoord() == pytest.approx((0.0, 0.0))
    assert junction.getType() == "traffic_light"
    assert [tls.getID() for tls in net.getTrafficLights()] == ["C"]
    for leg, (x, y) in {"N": (0, 150), "S": (0, -150), "E": (150, 0), "W": (-150, 0)}.items():
        for edge_id in (f"{leg}2C", f"C2{leg}"):
            edge = net.getEdge(edge_id)
            assert edge.getLaneNumber() == 2
            assert edge.getSpeed() == pytest.approx(13.9)
            for lane in edge.getLanes():
                assert lane.getWidth() == pytest.approx(3.2)
                assert not lane.allows("pedestrian")
                assert lane.allows("bicycle") and lane.allows("bus") and lane.allows("truck")
        assert net.getNode(leg).getCoord() == pytest.approx((x, y))


def test_incoming_lane_0_goes_through_and_right_and_lane_1_only_left(net: network.sumolib.net.Net) -> None:
    for incoming, (through, right, left) in TURNS.items():
        lane_0, lane_1 = net.getEdge(incoming).getLanes()
        assert {c.getTo().getID() for c in lane_0.getOutgoing()} == {through, right}
        assert {c.getTo().getID() for c in lane_1.getOutgoing()} == {left}


def test_lane_changes_cannot_cut_into_the_left_turn_lane() -> None:
    lanes = {lane.get("id"): lane for lane in ET.parse(NET_FILE).getroot().iter("lane")}
    for incoming in TURNS:
        assert lanes[f"{incoming}_0"].get("changeLeft") == "emergency"
        assert lanes[f"{incoming}_1"].get("changeRight") == "emergency"


def test_site_lane_centerlines_match_the_sumo_lane_shapes(
    net: network.sumolib.net.Net, sample_site: SiteConfig
) -> None:
    for lane in sample_site.lanes:
        assert lane.sumo_lane is not None
        shape = net.getLane(lane.sumo_lane).getShape()
        site_line = list(lane.centerline_m)
        for point in site_line:
            assert _distance_to_polyline(point, shape) < GEOMETRY_TOLERANCE_M, (lane.id, point)
        for point in shape:
            assert _distance_to_polyline(point, site_line) < GEOMETRY_TOLERANCE_M, (lane.id, point)
        # The last point lies on the stop line: SUMO's lane ends there.
        assert math.dist(site_line[-1], shape[-1]) < GEOMETRY_TOLERANCE_M


def test_every_crosswalk_is_a_sumo_crossing_with_matching_polygon(
    net: network.sumolib.net.Net, sample_site: SiteConfig
) -> None:
    facts = read_link_facts(NET_FILE, "C", sample_site)
    assert sorted(facts.crossing_crosswalks.values()) == sorted(cw.id for cw in sample_site.crosswalks)
    crosswalks = {cw.id: cw for cw in sample_site.crosswalks}
    for crossing in network.crossings(net):
        crosswalk = crosswalks[facts.crossing_crosswalks[crossing.lane_id]]
        for corner in crossing.polygon_m:
            nearest = min(math.dist(corner, site_corner) for site_corner in crosswalk.polygon_m)
            assert nearest < GEOMETRY_TOLERANCE_M, (crosswalk.id, corner)


def _intersection(a: tuple[Point, Point], b: tuple[Point, Point]) -> Point | None:
    (x1, y1), (x2, y2) = a
    (x3, y3), (x4, y4) = b
    denominator = (x1 - x2) * (y3 - y4) - (y1 - y2) * (x3 - x4)
    if denominator == 0:
        return None
    t = ((x1 - x3) * (y3 - y4) - (y1 - y3) * (x3 - x4)) / denominator
    u = ((x1 - x3) * (y1 - y2) - (y1 - y3) * (x1 - x2)) / denominator
    if 0 <= t <= 1 and 0 <= u <= 1:
        return (x1 + t * (x2 - x1), y1 + t * (y2 - y1))
    return None


def test_entry_lines_cross_their_lanes_just_upstream_of_the_stop_line(sample_site: SiteConfig) -> None:
    entry_lines = [line for line in sample_site.counting_lines if line.role is CountingLineRole.ENTRY]
    assert len(entry_lines) == 4
    for line in entry_lines:
        approach = next(a for a in sample_site.approaches if a.id == line.approach)
        for lane in approach.lanes:
            last_segment = (lane.centerline_m[-2], lane.centerline_m[-1])
            crossing_point = _intersection(line.line_m, last_segment)
            assert crossing_point is not None, (line.id, lane.id)
            assert 0.5 <= math.dist(crossing_point, lane.centerline_m[-1]) <= 5.0, (line.id, lane.id)


def test_building_from_the_sources_reproduces_the_committed_network(tmp_path: Path) -> None:
    for name in (network.NODE_FILE, network.TYPE_FILE, network.EDGE_FILE, network.CONNECTION_FILE):
        shutil.copy(SUMO_DIR / name, tmp_path / name)
    built = network.build_network(tmp_path)

    def body(path: Path) -> str:
        # Everything after the header comment, which carries the build date.
        text = path.read_text(encoding="utf-8")
        return text[text.index("-->") :]

    assert body(built) == body(NET_FILE)
