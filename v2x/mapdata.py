"""The intersection MAP as a JSON message, and the numeric identifiers shared with the UPER MAPEM.

Geometry comes from the site config: x east, y north, metres from the site reference point.

Numbering (deterministic from the site config, identical in the JSON MAP and in MAPEM/SPATEM):

* SignalGroupID (J2735 / ISO 19091, 1..254): the group's ``nema_phase`` if set, else its id when
  that is a number (``"2"`` -> 2); every other group (e.g. ``"p_north"``) gets the next free number
  from 17 upward (above the 16 NEMA phases) in the order the site lists its signal groups, so
  adding a numbered group never renumbers the others. Two groups mapping to one number is an error.
* LaneID (1..255): ingress lanes 1..n in site order (approach by approach), then one egress lane
  per approach, then the crosswalks.
* ApproachID (1..15): approaches in site order.
* IntersectionID (1..65535): from a hash of the unit id unless given.
* MAP revision (MsgCount 0..127): from a hash of the geometry, so it changes when the map does.

Node order follows J2735: the first node of an ingress lane lies on the stop line and the nodes run
upstream, away from the junction; egress lanes start at the junction and run outward.

Egress lanes are synthesised: the site config describes ingress lanes only, so each approach's
leg gets one egress lane, the mirror image of its innermost ingress lane across the leg's axis
(the line through the junction centre along the approach direction). Connections point at these.
The junction centre is the centroid of the stop-line points.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from rsu_contracts.config.model import Approach, GeoReference, Lane, Point, SiteConfig
from rsu_contracts.enums import Movement, SignalGroupKind
from rsu_contracts.messages.envelope import Message
from v2x.geo import LocalFrame

NEMA_PHASE_COUNT = 16
FIRST_ALLOCATED_SIGNAL_GROUP_ID = NEMA_PHASE_COUNT + 1
MAX_SIGNAL_GROUP_ID = 254  # 0 = unknown, 255 reserved
MAX_LANE_ID = 255
MAX_APPROACH_ID = 15
# Cosine of the largest angle between a movement's exit direction and a leg's outbound direction
# for the leg to count as that movement's destination (about 60 degrees).
MIN_DESTINATION_ALIGNMENT = 0.5

# Exit direction of each movement as a rotation of the approach's travel direction, counter-
# clockwise in the east-north plane: a left turn is counter-clockwise whichever side traffic drives.
MOVEMENT_ROTATION_DEG: dict[Movement, float] = {
    Movement.THROUGH: 0.0,
    Movement.LEFT: 90.0,
    Movement.RIGHT: -90.0,
    Movement.UTURN: 180.0,
}


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MapPoint(_Part):
    x_m: float = Field(description="metres east of the site reference point")
    y_m: float = Field(description="metres north of the site reference point")
    latitude_deg: float
    longitude_deg: float


class MapSignalGroup(_Part):
    id: str
    numeric_id: int = Field(ge=1, le=MAX_SIGNAL_GROUP_ID, description="J2735 SignalGroupID used in SPATEM/MAPEM")
    kind: SignalGroupKind


class MapConnection(_Part):
    movement: Movement
    to_approach: str = Field(description="approach (leg) the movement leaves the junction by")
    to_lane_numeric_id: int = Field(ge=1, le=MAX_LANE_ID, description="LaneID of that leg's egress lane")
    signal_group: str
    signal_group_numeric_id: int = Field(ge=1, le=MAX_SIGNAL_GROUP_ID)


class MapLane(_Part):
    id: str
    lane_numeric_id: int = Field(ge=1, le=MAX_LANE_ID, description="J2735 LaneID")
    approach: str
    approach_numeric_id: int = Field(ge=1, le=MAX_APPROACH_ID, description="J2735 ApproachID")
    movements: list[Movement] = Field(min_length=1)
    signal_group: str
    signal_group_numeric_id: int = Field(ge=1, le=MAX_SIGNAL_GROUP_ID)
    width_m: float = Field(gt=0)
    speed_limit_mps: float = Field(gt=0)
    nodes: list[MapPoint] = Field(min_length=2, description="centre line from the stop line upstream (J2735 order)")
    stop_line: MapPoint = Field(description="centre of the lane on the stop line")
    connections: list[MapConnection]


class MapEgressLane(_Part):
    id: str
    lane_numeric_id: int = Field(ge=1, le=MAX_LANE_ID)
    approach: str = Field(description="the leg this lane leaves the junction by")
    approach_numeric_id: int = Field(ge=1, le=MAX_APPROACH_ID)
    width_m: float = Field(gt=0)
    nodes: list[MapPoint] = Field(min_length=2, description="centre line from the junction outward")
    synthesized: bool = Field(default=True, description="mirrored from the ingress lanes, not surveyed")


class MapCrosswalk(_Part):
    id: str
    lane_numeric_id: int = Field(ge=1, le=MAX_LANE_ID)
    signal_group: str | None
    signal_group_numeric_id: int | None = Field(default=None, ge=1, le=MAX_SIGNAL_GROUP_ID)
    width_m: float = Field(gt=0)
    length_m: float = Field(gt=0)
    nodes: list[MapPoint] = Field(min_length=2, description="walking axis across the road")


class MapData(Message):
    """The intersection's lanes, stop lines, connections and signal groups (JSON twin of MAPEM)."""

    SCHEMA: ClassVar[str] = "rsu.v2x.map"
    intersection_id: str
    intersection_numeric_id: int = Field(ge=1, le=65535, description="J2735 IntersectionID used in SPATEM/MAPEM")
    name: str = ""
    revision: int = Field(ge=0, le=127, description="changes whenever the geometry changes")
    reference: GeoReference
    signal_groups: list[MapSignalGroup]
    lanes: list[MapLane] = Field(min_length=1)
    egress_lanes: list[MapEgressLane]
    crosswalks: list[MapCrosswalk]

    def lane_by_numeric_id(self) -> dict[int, MapLane | MapEgressLane | MapCrosswalk]:
        lanes: dict[int, MapLane | MapEgressLane | MapCrosswalk] = {}
        for collection in (self.lanes, self.egress_lanes, self.crosswalks):
            for lane in collection:
                lanes[lane.lane_numeric_id] = lane
        return lanes


class NumberingError(ValueError):
    """The site cannot be numbered for J2735 (too many lanes, clashing signal group numbers)."""


def signal_group_numeric_ids(site: SiteConfig) -> dict[str, int]:
    """rsu signal group id -> J2735 SignalGroupID (see the module docstring), in site order."""
    fixed: dict[str, int] = {}
    owner: dict[int, str] = {}
    for group in site.signal_groups:
        number = group.nema_phase
        if number is None and group.id.isdigit() and 1 <= int(group.id) <= MAX_SIGNAL_GROUP_ID:
            number = int(group.id)
        if number is None:
            continue
        if number in owner:
            raise NumberingError(f"signal groups {owner[number]!r} and {group.id!r} both map to SignalGroupID {number}")
        owner[number] = group.id
        fixed[group.id] = number
    numbers: dict[str, int] = {}
    candidate = FIRST_ALLOCATED_SIGNAL_GROUP_ID
    for group in site.signal_groups:
        if group.id in fixed:
            numbers[group.id] = fixed[group.id]
            continue
        while candidate in owner:
            candidate += 1
        if candidate > MAX_SIGNAL_GROUP_ID:
            raise NumberingError(f"no SignalGroupID left for signal group {group.id!r}")
        owner[candidate] = group.id
        numbers[group.id] = candidate
    return numbers


def default_intersection_numeric_id(unit_id: str) -> int:
    """A stable IntersectionID (1..65535) for a unit; configure a real one where a road authority assigns it."""
    return int.from_bytes(hashlib.sha256(unit_id.encode()).digest()[:4], "big") % 65535 + 1


def build_map(site: SiteConfig, header: Mapping[str, Any], intersection_numeric_id: int | None = None) -> MapData:
    """The JSON MAP of a site; header holds unit_id, seq, capture_time_s, publish_time_s (Sequencer.header)."""
    geometry = _MapGeometry(site)
    lanes = geometry.ingress_lanes()
    egress_lanes = geometry.egress_lanes()
    crosswalks = geometry.crosswalks()
    content = {
        "lanes": [lane.model_dump(mode="json") for lane in lanes],
        "egress": [lane.model_dump(mode="json") for lane in egress_lanes],
        "crosswalks": [crosswalk.model_dump(mode="json") for crosswalk in crosswalks],
        "reference": site.geo_reference.model_dump(mode="json"),
    }
    revision = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).digest()[0] % 128
    return MapData(
        **header,
        intersection_id=site.unit_id,
        intersection_numeric_id=intersection_numeric_id or default_intersection_numeric_id(site.unit_id),
        name=site.name,
        revision=revision,
        reference=site.geo_reference,
        signal_groups=[
            MapSignalGroup(id=group.id, numeric_id=geometry.group_numeric_ids[group.id], kind=group.kind)
            for group in site.signal_groups
        ],
        lanes=lanes,
        egress_lanes=egress_lanes,
        crosswalks=crosswalks,
    )


class _MapGeometry:
    """Numbering and geometry derived once from a site."""

    def __init__(self, site: SiteConfig) -> None:
        self.site = site
        self.frame = LocalFrame.from_reference(site.geo_reference)
        self.group_numeric_ids = signal_group_numeric_ids(site)
        if len(site.approaches) > MAX_APPROACH_ID:
            raise NumberingError(f"{len(site.approaches)} approaches; J2735 ApproachID allows {MAX_APPROACH_ID}")
        lane_count = len(site.lanes) + len(site.approaches) + len(site.crosswalks)
        if lane_count > MAX_LANE_ID:
            raise NumberingError(f"{lane_count} lanes incl. egress and crosswalks; J2735 LaneID allows {MAX_LANE_ID}")
        self.approach_numeric_ids = {approach.id: index for index, approach in enumerate(site.approaches, start=1)}
        self.lane_numeric_ids = {lane.id: index for index, lane in enumerate(site.lanes, start=1)}
        first_egress = len(site.lanes) + 1
        self.egress_numeric_ids = {approach.id: first_egress + index for index, approach in enumerate(site.approaches)}
        stop_points = [lane.centerline_m[-1] for lane in site.lanes]
        self.centre = (
            sum(point[0] for point in stop_points) / len(stop_points),
            sum(point[1] for point in stop_points) / len(stop_points),
        )
        self.directions = {approach.id: _approach_direction(approach) for approach in site.approaches}

    def point(self, x_m: float, y_m: float) -> MapPoint:
        latitude, longitude = self.frame.to_geodetic(x_m, y_m)
        return MapPoint(x_m=x_m, y_m=y_m, latitude_deg=latitude, longitude_deg=longitude)

    def ingress_lanes(self) -> list[MapLane]:
        lanes = []
        for approach in self.site.approaches:
            for lane in approach.lanes:
                nodes = [self.point(x, y) for x, y in reversed(lane.centerline_m)]
                lanes.append(
                    MapLane(
                        id=lane.id,
                        lane_numeric_id=self.lane_numeric_ids[lane.id],
                        approach=approach.id,
                        approach_numeric_id=self.approach_numeric_ids[approach.id],
                        movements=lane.movements,
                        signal_group=lane.signal_group,
                        signal_group_numeric_id=self.group_numeric_ids[lane.signal_group],
                        width_m=lane.width_m,
                        speed_limit_mps=approach.speed_limit_mps,
                        nodes=nodes,
                        stop_line=nodes[0],
                        connections=self._connections(approach, lane),
                    )
                )
        return lanes

    def _connections(self, approach: Approach, lane: Lane) -> list[MapConnection]:
        connections = []
        for movement in lane.movements:
            destination = self._destination(approach, movement)
            if destination is None:
                continue  # no leg in that direction (e.g. the missing leg of a T junction)
            connections.append(
                MapConnection(
                    movement=movement,
                    to_approach=destination.id,
                    to_lane_numeric_id=self.egress_numeric_ids[destination.id],
                    signal_group=lane.signal_group,
                    signal_group_numeric_id=self.group_numeric_ids[lane.signal_group],
                )
            )
        return connections

    def _destination(self, approach: Approach, movement: Movement) -> Approach | None:
        travel = self.directions[approach.id]
        exit_direction = _rotate(travel, MOVEMENT_ROTATION_DEG[movement])
        best: tuple[float, Approach] | None = None
        for leg in self.site.approaches:
            if (leg.id == approach.id) != (movement is Movement.UTURN):
                continue
            inbound = self.directions[leg.id]
            alignment = -(inbound[0] * exit_direction[0] + inbound[1] * exit_direction[1])
            if alignment >= MIN_DESTINATION_ALIGNMENT and (best is None or alignment > best[0]):
                best = (alignment, leg)
        return None if best is None else best[1]

    def egress_lanes(self) -> list[MapEgressLane]:
        lanes = []
        used_ids = {lane.id for lane in self.site.lanes}
        for approach in self.site.approaches:
            direction = self.directions[approach.id]
            innermost = min(
                approach.lanes, key=lambda lane: abs(self._offset_from_axis(lane.centerline_m[-1], direction))
            )
            mirrored = [self._mirror(point, direction) for point in reversed(innermost.centerline_m)]
            lane_id = f"{approach.id}_egress"
            while lane_id in used_ids:
                lane_id += "_"
            used_ids.add(lane_id)
            lanes.append(
                MapEgressLane(
                    id=lane_id,
                    lane_numeric_id=self.egress_numeric_ids[approach.id],
                    approach=approach.id,
                    approach_numeric_id=self.approach_numeric_ids[approach.id],
                    width_m=innermost.width_m,
                    nodes=[self.point(x, y) for x, y in mirrored],
                )
            )
        return lanes

    def _offset_from_axis(self, point: Point, direction: Point) -> float:
        dx, dy = point[0] - self.centre[0], point[1] - self.centre[1]
        return dx * direction[1] - dy * direction[0]

    def _mirror(self, point: Point, direction: Point) -> Point:
        dx, dy = point[0] - self.centre[0], point[1] - self.centre[1]
        along = dx * direction[0] + dy * direction[1]
        return (
            self.centre[0] + 2 * along * direction[0] - dx,
            self.centre[1] + 2 * along * direction[1] - dy,
        )

    def crosswalks(self) -> list[MapCrosswalk]:
        first_number = len(self.site.lanes) + len(self.site.approaches) + 1
        crosswalks = []
        for index, crosswalk in enumerate(self.site.crosswalks):
            start, end, width_m = _principal_axis(crosswalk.polygon_m)
            group = crosswalk.signal_group
            crosswalks.append(
                MapCrosswalk(
                    id=crosswalk.id,
                    lane_numeric_id=first_number + index,
                    signal_group=group,
                    signal_group_numeric_id=None if group is None else self.group_numeric_ids[group],
                    width_m=max(width_m, 1.0),
                    length_m=crosswalk.length_m,
                    nodes=[self.point(*start), self.point(*end)],
                )
            )
        return crosswalks


def _approach_direction(approach: Approach) -> Point:
    """Unit vector of travel towards the junction, averaged over the approach's lanes."""
    dx = sum(lane.centerline_m[-1][0] - lane.centerline_m[0][0] for lane in approach.lanes)
    dy = sum(lane.centerline_m[-1][1] - lane.centerline_m[0][1] for lane in approach.lanes)
    norm = math.hypot(dx, dy)
    if norm == 0:
        raise ValueError(f"approach {approach.id!r}: lanes have no direction (first point equals the stop point)")
    return dx / norm, dy / norm


def _rotate(vector: Point, degrees: float) -> Point:
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    return vector[0] * cos - vector[1] * sin, vector[0] * sin + vector[1] * cos


def _principal_axis(polygon: Sequence[Point]) -> tuple[Point, Point, float]:
    """Ends of the polygon's long axis through its vertex centroid, and its extent across that axis."""
    count = len(polygon)
    cx = sum(point[0] for point in polygon) / count
    cy = sum(point[1] for point in polygon) / count
    sxx = sum((point[0] - cx) ** 2 for point in polygon)
    syy = sum((point[1] - cy) ** 2 for point in polygon)
    sxy = sum((point[0] - cx) * (point[1] - cy) for point in polygon)
    angle = 0.5 * math.atan2(2 * sxy, sxx - syy)
    ux, uy = math.cos(angle), math.sin(angle)
    along = [(point[0] - cx) * ux + (point[1] - cy) * uy for point in polygon]
    across = [-(point[0] - cx) * uy + (point[1] - cy) * ux for point in polygon]
    start = (cx + ux * min(along), cy + uy * min(along))
    end = (cx + ux * max(along), cy + uy * max(along))
    return start, end, max(across) - min(across)
