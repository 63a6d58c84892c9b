"""Junction geometry for the warning logic: box, carriageway, crosswalks, road sides, signal plan."""

from __future__ import annotations

import numpy as np
import yaml

from rsu.samples import SAMPLE_SITE
from rsu_contracts.config.model import SiteConfig
from v2x.junction import JunctionGeometry, points_in_polygon


def test_box_is_the_area_between_the_stop_lines(sample_site: SiteConfig) -> None:
    geometry = JunctionGeometry(sample_site)
    inside = geometry.in_box(np.array([[0.0, 0.0], [-4.8, 11.0], [11.0, 4.8], [6.0, -6.0]]))
    outside = geometry.in_box(np.array([[-4.8, 13.0], [20.0, 4.8], [0.0, -30.0], [11.5, 11.5]]))
    assert inside.all()
    assert not outside.any()


def test_pedestrians_on_the_crosswalk_not_on_the_kerb_at_its_end(sample_site: SiteConfig) -> None:
    geometry = JunctionGeometry(sample_site)
    points = np.array([[-3.0, 10.0], [-6.3, 9.2], [-8.0, 10.0], [10.0, 0.0], [0.0, 0.0]])
    found = [c.crosswalk_id if c else None for c in geometry.crosswalk_of(points)]
    assert found == ["cw_north", None, None, "cw_east", None]
    assert geometry.in_road(points).tolist() == [True, False, False, True, True]


def test_crosswalk_walking_direction(sample_site: SiteConfig) -> None:
    north = next(c for c in JunctionGeometry(sample_site).crosswalks if c.crosswalk_id == "cw_north")
    assert north.walking_heading_deg(80.0) == 90.0
    assert north.walking_heading_deg(281.0) == 270.0


def test_road_sides_separate_the_two_directions_of_a_leg(sample_site: SiteConfig) -> None:
    geometry = JunctionGeometry(sample_site)
    sides = geometry.road_sides(np.array([[-1.6, 40.0], [1.6, 40.0], [1.6, -40.0], [0.0, 0.0], [40.0, 4.8]]))
    assert sides[0] is not None and sides[1] is not None and sides[2] is not None
    assert sides[0][0] == sides[1][0] == sides[2][0]  # north and south legs: one road
    assert sides[0][1] != sides[1][1]
    assert sides[1][1] == sides[2][1]
    assert sides[3] is None  # in the box
    assert sides[4] is not None and sides[4][0] != sides[0][0]


def test_movements_released_together(sample_site: SiteConfig) -> None:
    geometry = JunctionGeometry(sample_site)
    assert geometry.permissive_lanes == frozenset()
    assert geometry.released_together("north_left", "south_left")  # protected lefts 5 and 1
    assert geometry.released_together("north_through_right", "south_through_right")
    assert not geometry.released_together("north_through_right", "west_through_right")
    assert not geometry.released_together("north_left", None)


def test_a_left_turn_sharing_the_opposing_through_green_is_permissive(sample_site: SiteConfig) -> None:
    raw = yaml.safe_load(SAMPLE_SITE.read_text())
    for approach in raw["approaches"]:
        if approach["id"] == "north":
            approach["lanes"][1]["signal_group"] = "2"  # north left turns on the through green
    site = SiteConfig.model_validate(raw)
    geometry = JunctionGeometry(site)
    assert geometry.permissive_lanes == frozenset({"north_left"})
    assert not geometry.released_together("north_left", "south_through_right")


def test_points_in_polygon_even_odd() -> None:
    square = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]])
    assert points_in_polygon(np.array([[1.0, 1.0], [3.0, 1.0], [-0.1, 1.0]]), square).tolist() == [True, False, False]
