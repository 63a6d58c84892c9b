"""LaneMap: lane polygons, lane assignment with heading consistency, distances to the stop line."""

from __future__ import annotations

import numpy as np
import pytest

from rsu.perception.lanes import LaneMap, _lane_geometry
from rsu_contracts.config.model import Lane, SiteConfig
from rsu_contracts.enums import Movement
from tests.perception.perception_helpers import lane_heading_deg, lane_point


@pytest.fixture(scope="module")
def lane_map(sample_site: SiteConfig) -> LaneMap:
    return LaneMap.from_site(sample_site)


def bent_lane_map() -> LaneMap:
    # Northbound for 30 m, then a 90° bend to the east for 20 m; the stop line is at (20, -20).
    lane = Lane(
        id="bent",
        movements=[Movement.THROUGH],
        signal_group="1",
        width_m=4.0,
        centerline_m=[(0.0, -50.0), (0.0, -20.0), (20.0, -20.0)],
    )
    return LaneMap([_lane_geometry(lane, "a")])


def test_every_lane_of_the_sample_site_is_found_along_its_length(sample_site: SiteConfig, lane_map: LaneMap) -> None:
    for lane in sample_site.lanes:
        heading = lane_heading_deg(sample_site, lane.id)
        half = lane.width_m / 2
        for distance in (0.2, 5.0, 40.0):
            for lateral in (0.0, half - 0.1, -(half - 0.1)):
                x, y = lane_point(sample_site, lane.id, distance, lateral)
                assert lane_map.lane_of(x, y) == lane.id
                assert lane_map.lane_of(x, y, heading) == lane.id
        # In the junction past the stop line, or upstream of the lane's start: no lane.
        x, y = lane_point(sample_site, lane.id, -0.5)
        assert lane_map.lane_of(x, y) is None
        x, y = lane_point(sample_site, lane.id, lane_map.lane(lane.id).length_m + 0.5)
        assert lane_map.lane_of(x, y) is None


def test_points_beside_the_outer_lane_edge_are_in_no_lane(sample_site: SiteConfig, lane_map: LaneMap) -> None:
    # south_through_right is the right-hand (outer) lane of the south approach.
    x, y = lane_point(sample_site, "south_through_right", 20.0, -1.5)
    assert lane_map.lane_of(x, y) == "south_through_right"
    x, y = lane_point(sample_site, "south_through_right", 20.0, -1.7)
    assert lane_map.lane_of(x, y) is None


def test_heading_must_roughly_follow_the_lane(sample_site: SiteConfig, lane_map: LaneMap) -> None:
    x, y = lane_point(sample_site, "south_left", 30.0)
    lane_heading = lane_heading_deg(sample_site, "south_left")
    assert lane_map.lane_of(x, y, heading_deg=lane_heading) == "south_left"
    assert lane_map.lane_of(x, y, heading_deg=(lane_heading - 10.0) % 360) == "south_left"
    assert lane_map.lane_of(x, y, heading_deg=(lane_heading + 55.0) % 360) == "south_left"
    assert lane_map.lane_of(x, y, heading_deg=(lane_heading + 70.0) % 360) is None
    assert lane_map.lane_of(x, y, heading_deg=(lane_heading + 180.0) % 360) is None


def test_a_car_in_the_adjacent_opposite_direction_lane_is_not_assigned(
    sample_site: SiteConfig, lane_map: LaneMap
) -> None:
    # North leg: north_left carries southbound traffic; the lane to its left is the northbound exit.
    northbound = (lane_heading_deg(sample_site, "north_left") + 180.0) % 360.0
    x, y = lane_point(sample_site, "north_left", 30.0, lateral_m=3.2)
    assert lane_map.lane_of(x, y, heading_deg=northbound) is None
    # A northbound car drifting over the centre line into north_left is still not in it.
    x, y = lane_point(sample_site, "north_left", 30.0, lateral_m=1.2)
    assert lane_map.lane_of(x, y, heading_deg=northbound) is None
    assert lane_map.lane_of(x, y, heading_deg=(northbound + 180.0) % 360.0) == "north_left"


def test_distance_to_the_stop_line_runs_along_the_centre_line(sample_site: SiteConfig, lane_map: LaneMap) -> None:
    x, y = lane_point(sample_site, "south_through_right", 6.0)
    position = lane_map.locate(x, y)
    assert position is not None
    assert position.lane_id == "south_through_right"
    assert position.distance_to_stop_m == pytest.approx(6.0)
    assert position.lateral_offset_m == pytest.approx(0.0, abs=1e-9)
    x, y = lane_point(sample_site, "east_left", 16.0, lateral_m=0.8)
    left = lane_map.locate(x, y)
    assert left is not None and left.lane_id == "east_left"
    assert left.distance_to_stop_m == pytest.approx(16.0)
    assert left.lateral_offset_m == pytest.approx(0.8)


def test_distance_along_a_bent_lane() -> None:
    bent = bent_lane_map()
    before_bend = bent.locate(0.5, -40.0, heading_deg=0.0)
    after_bend = bent.locate(10.0, -20.5, heading_deg=90.0)
    assert before_bend is not None and before_bend.distance_to_stop_m == pytest.approx(40.0)
    assert after_bend is not None and after_bend.distance_to_stop_m == pytest.approx(10.0)
    # The outer corner of the bend is covered, and a point beyond the lane's end is not.
    assert bent.lane_of(-1.5, -18.5) == "bent"
    assert bent.lane_of(21.0, -20.0) is None
    assert bent.lane_of(10.0, -20.5, heading_deg=0.0) is None  # northbound on the eastbound part
    assert bent.lane("bent").length_m == pytest.approx(50.0)
    assert bent.lane("bent").heading_at_stop_deg == pytest.approx(90.0)


def test_lane_polygons_follow_the_centre_line_and_width() -> None:
    polygon = np.array(bent_lane_map().lane("bent").polygon_m)
    # Left edge upstream to the stop line (mitred outer corner at (-2, -18)), then the right edge back.
    expected = [(-2.0, -50.0), (-2.0, -18.0), (20.0, -18.0), (20.0, -22.0), (2.0, -22.0), (2.0, -50.0)]
    assert polygon == pytest.approx(np.array(expected))


def test_stop_bar_zone_uses_the_footprint(lane_map: LaneMap) -> None:
    lane = lane_map.lane("south_through_right")
    assert lane.stop_bar_zone_length_m == 8.0
    assert lane.in_stop_bar_zone(4.0)
    assert not lane.in_stop_bar_zone(9.0)
    assert lane.in_stop_bar_zone(9.0, length_m=4.5)  # its front reaches 6.75 m
    assert not lane.in_stop_bar_zone(10.5, length_m=4.5)
    assert lane.in_stop_bar_zone(-2.0, length_m=4.5)  # overran the line, the rear is still in
    assert not lane.in_stop_bar_zone(-2.5, length_m=4.5)


def test_lanes_can_be_extended_past_the_stop_line(sample_site: SiteConfig, lane_map: LaneMap) -> None:
    x, y = lane_point(sample_site, "south_through_right", -2.0)
    assert lane_map.locate(x, y) is None
    position = lane_map.locate(x, y, beyond_stop_line_m=6.0)
    assert position is not None
    assert position.lane_id == "south_through_right"
    assert position.distance_to_stop_m == pytest.approx(-2.0)
    assert not position.before_stop_line


def test_many_points_at_once_match_one_at_a_time(lane_map: LaneMap) -> None:
    rng = np.random.default_rng(5)
    points = rng.uniform(-40.0, 40.0, (300, 2))
    headings = rng.uniform(0.0, 360.0, 300)
    headings[::3] = np.nan
    many = lane_map.locate_many(points, headings, beyond_stop_line_m=3.0)
    single = [
        lane_map.locate(float(x), float(y), None if np.isnan(h) else float(h), beyond_stop_line_m=3.0)
        for (x, y), h in zip(points, headings, strict=True)
    ]
    assert many == single
    assert sum(p is not None for p in many) > 20
    assert lane_map.locate_many(np.zeros((0, 2))) == []


def _inside(polygon: tuple[tuple[float, float], ...], x: float, y: float) -> bool:
    inside = False
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


@pytest.mark.parametrize("turn_deg", [20.0, 45.0, 90.0, 120.0])
def test_lane_membership_is_the_lane_polygon(turn_deg: float) -> None:
    turn = np.radians(turn_deg)
    lane = Lane(
        id="turning",
        movements=[Movement.LEFT],
        signal_group="1",
        width_m=3.5,
        centerline_m=[(0.0, -30.0), (0.0, 0.0), (20.0 * float(np.sin(turn)), 20.0 * float(np.cos(turn)))],
    )
    lane_map = LaneMap([_lane_geometry(lane, "a")])
    polygon = lane_map.lane("turning").polygon_m
    rng = np.random.default_rng(int(turn_deg))
    points = rng.uniform(-25.0, 25.0, (4000, 2))
    points[:, 1] -= 5.0
    located = lane_map.locate_many(points)
    assert sum(p is not None for p in located) > 200
    for (x, y), position in zip(points, located, strict=True):
        assert (position is not None) == _inside(polygon, float(x), float(y)), (x, y)
