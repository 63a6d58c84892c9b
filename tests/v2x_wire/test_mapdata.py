"""The JSON MAP built from the sample site."""

from __future__ import annotations

import math

import pytest

from rsu_contracts.config import SiteConfig
from rsu_contracts.enums import Movement
from rsu_contracts.messages import decode
from tests.v2x_wire.builders import NOW_S
from v2x.geo import LocalFrame
from v2x.mapdata import MapData, NumberingError, build_map, signal_group_numeric_ids


@pytest.fixture(scope="module")
def map_data(sample_site: SiteConfig) -> MapData:
    header = {"unit_id": sample_site.unit_id, "seq": 4, "capture_time_s": NOW_S, "publish_time_s": NOW_S}
    return build_map(sample_site, header)


def test_map_validates_through_its_schema(map_data: MapData) -> None:
    decoded = decode(MapData, map_data.to_json())
    assert decoded == map_data
    assert decoded.schema_name == "rsu.v2x.map"
    assert decoded.seq == 4 and decoded.unit_id == map_data.intersection_id


def test_every_site_lane_is_in_the_map_with_a_signal_group(sample_site: SiteConfig, map_data: MapData) -> None:
    numbers = signal_group_numeric_ids(sample_site)
    assert [lane.id for lane in map_data.lanes] == [lane.id for lane in sample_site.lanes]
    for lane, site_lane in zip(map_data.lanes, sample_site.lanes, strict=True):
        assert lane.signal_group == site_lane.signal_group
        assert lane.signal_group_numeric_id == numbers[site_lane.signal_group]
        assert lane.approach == sample_site.approach_of(lane.id).id
        assert lane.width_m == site_lane.width_m
        assert lane.movements == site_lane.movements
    numeric_ids = [lane.lane_numeric_id for lane in map_data.lanes + map_data.egress_lanes + map_data.crosswalks]
    assert len(numeric_ids) == len(set(numeric_ids))


def test_nodes_start_at_the_stop_line_and_carry_wgs84(sample_site: SiteConfig, map_data: MapData) -> None:
    frame = LocalFrame.from_reference(sample_site.reference)
    for lane, site_lane in zip(map_data.lanes, sample_site.lanes, strict=True):
        assert (lane.stop_line.x_m, lane.stop_line.y_m) == site_lane.centerline_m[-1]
        assert [(node.x_m, node.y_m) for node in lane.nodes] == list(reversed(site_lane.centerline_m))
        for node in lane.nodes:
            assert frame.to_local(node.latitude_deg, node.longitude_deg) == pytest.approx((node.x_m, node.y_m))


def test_connections_cover_each_movement_and_leave_by_the_right_leg(map_data: MapData) -> None:
    egress_by_number = {lane.lane_numeric_id: lane for lane in map_data.egress_lanes}
    for lane in map_data.lanes:
        assert sorted(c.movement for c in lane.connections) == sorted(lane.movements)
        stop, upstream = lane.nodes[0], lane.nodes[-1]
        travel = math.atan2(stop.y_m - upstream.y_m, stop.x_m - upstream.x_m)
        for connection in lane.connections:
            egress = egress_by_number[connection.to_lane_numeric_id]
            assert egress.approach == connection.to_approach
            outbound = math.atan2(
                egress.nodes[-1].y_m - egress.nodes[0].y_m, egress.nodes[-1].x_m - egress.nodes[0].x_m
            )
            turn_deg = math.degrees((outbound - travel + math.pi) % (2 * math.pi) - math.pi)
            expected = {Movement.THROUGH: 0.0, Movement.LEFT: 90.0, Movement.RIGHT: -90.0}[connection.movement]
            assert turn_deg == pytest.approx(expected, abs=20.0)
            assert connection.signal_group == lane.signal_group


def test_crosswalks_carry_their_pedestrian_groups(sample_site: SiteConfig, map_data: MapData) -> None:
    by_id = {crosswalk.id: crosswalk for crosswalk in map_data.crosswalks}
    for crosswalk in sample_site.crosswalks:
        mapped = by_id[crosswalk.id]
        assert mapped.signal_group == crosswalk.signal_group
        start, end = mapped.nodes
        assert math.hypot(end.x_m - start.x_m, end.y_m - start.y_m) == pytest.approx(crosswalk.length_m, rel=0.1)


def test_revision_follows_the_geometry(sample_site: SiteConfig, map_data: MapData) -> None:
    header = {"unit_id": sample_site.unit_id, "seq": 5, "capture_time_s": NOW_S + 60, "publish_time_s": NOW_S + 60}
    assert build_map(sample_site, header).revision == map_data.revision
    moved = sample_site.model_copy(
        update={"reference": sample_site.reference.model_copy(update={"latitude_deg": 48.2})}
    )
    assert build_map(moved, header).revision != map_data.revision


def test_clashing_signal_group_numbers_are_refused(sample_site: SiteConfig) -> None:
    groups = list(sample_site.signal_groups)
    clashing = groups[1].model_copy(update={"nema_phase": groups[0].nema_phase})
    site = sample_site.model_copy(update={"signal_groups": [groups[0], clashing, *groups[2:]]})
    with pytest.raises(NumberingError, match="both map to SignalGroupID"):
        signal_group_numeric_ids(site)
