"""Junction geometry the warning logic needs, derived once from the site config.

- Stop lines: per ingress lane, the last centre-line point, the travel direction there and the
  signal group.
- Junction box: the area between the stop lines, i.e. the convex hull of every approach's stop
  line and its mirror image across the approach axis (the site lists ingress lanes only; the
  mirror stands in for the egress half of the leg, as in v2x.mapdata).
- Carriageway: per approach a strip from the upstream end of its lanes to the junction centre,
  as wide as its ingress lanes and their mirror image. A pedestrian inside a strip but outside
  every crosswalk is in the road; outside all strips it is on a footway or corner.
- Crosswalks: polygon and pedestrian signal group.
- Roads: approaches on one straight line through the centre (north and south legs) form one
  road; which side of its axis a point lies on separates the two directions of travel, which
  tracked headings (a few degrees of noise) cannot do at 50 m.

All in the site's local frame (x east, y north, metres).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import Movement

FloatArray = npt.NDArray[np.float64]

# A pedestrian counts as in the road only this far inside the kerb line: tracked positions of
# people waiting at a corner scatter by a few decimetres.
KERB_MARGIN_M = 0.5
# Within this distance of a road's axis a point is on neither side of it.
AXIS_MARGIN_M = 0.3
# Approaches whose directions are this parallel (|cos|) belong to one road.
SAME_ROAD_MIN_ALIGNMENT = 0.94


@dataclass(frozen=True)
class StopLine:
    lane_id: str
    signal_group: str
    x_m: float
    y_m: float
    # Unit vector of travel at the stop line (east, north).
    direction: tuple[float, float]

    @property
    def heading_deg(self) -> float:
        return math.degrees(math.atan2(self.direction[0], self.direction[1])) % 360.0

    def distance_ahead_m(self, x_m: float, y_m: float) -> float:
        """Signed distance from a point to the stop line along the travel direction (> 0: before it)."""
        return (self.x_m - x_m) * self.direction[0] + (self.y_m - y_m) * self.direction[1]


@dataclass(frozen=True)
class _Strip:
    """Rectangle along an approach: `along` in [start, 0] from the junction centre, |lateral| <= half width."""

    centre: tuple[float, float]
    direction: tuple[float, float]
    start_m: float
    half_width_m: float
    road: int

    def contains(self, points: FloatArray, margin_m: float) -> npt.NDArray[np.bool_]:
        dx, dy = points[:, 0] - self.centre[0], points[:, 1] - self.centre[1]
        along = dx * self.direction[0] + dy * self.direction[1]
        lateral = dx * self.direction[1] - dy * self.direction[0]
        inside_length = (along >= self.start_m) & (along <= margin_m)
        return inside_length & (np.abs(lateral) <= self.half_width_m - margin_m)


@dataclass(frozen=True)
class CrosswalkArea:
    crosswalk_id: str
    signal_group: str | None
    polygon: FloatArray
    # Walking direction along the crosswalk's long axis, in [0, 180) (the other way is +180).
    axis_heading_deg: float

    def walking_heading_deg(self, heading_deg: float) -> float:
        """The direction along the crosswalk closest to a pedestrian's tracked heading."""
        forward = self.axis_heading_deg
        backward = (forward + 180.0) % 360.0
        off_forward = abs((heading_deg - forward + 180.0) % 360.0 - 180.0)
        return forward if off_forward <= 90.0 else backward


class JunctionGeometry:
    def __init__(self, site: SiteConfig) -> None:
        self.stop_lines: dict[str, StopLine] = {}
        self.approach_of_lane = {lane.id: approach.id for approach in site.approaches for lane in approach.lanes}
        # Movements allowed from each ingress lane (turn intent of a vehicle that came from it).
        self.movements_of_lane = {lane.id: frozenset(lane.movements) for lane in site.lanes}
        self._group_of_lane = {lane.id: lane.signal_group for lane in site.lanes}
        self._conflicting_groups = {frozenset(pair) for pair in site.conflicts}
        self.permissive_lanes = _permissive_lanes(site, self._conflicting_groups)
        # released_together as arrays: per lane its group's index (lanes on permissive turns have
        # none), and which groups conflict.
        group_ids = sorted(set(self._group_of_lane.values()))
        index_of_group = {group: n for n, group in enumerate(group_ids)}
        self._release_group_index = {
            lane: index_of_group[group]
            for lane, group in self._group_of_lane.items()
            if lane not in self.permissive_lanes
        }
        self._groups_conflict = np.zeros((len(group_ids), len(group_ids)), dtype=bool)
        for pair in self._conflicting_groups:
            members = [index_of_group[group] for group in pair if group in index_of_group]
            if len(members) == len(pair):  # both groups drive lanes; a pair with itself is one member
                self._groups_conflict[members[0], members[-1]] = self._groups_conflict[members[-1], members[0]] = True
        for lane in site.lanes:
            (x0, y0), (x1, y1) = lane.centerline_m[-2], lane.centerline_m[-1]
            length = math.hypot(x1 - x0, y1 - y0)
            direction = ((x1 - x0) / length, (y1 - y0) / length)
            self.stop_lines[lane.id] = StopLine(lane.id, lane.signal_group, x1, y1, direction)
        stop_points = [(line.x_m, line.y_m) for line in self.stop_lines.values()]
        self.centre = (
            sum(p[0] for p in stop_points) / len(stop_points),
            sum(p[1] for p in stop_points) / len(stop_points),
        )
        box_corners: list[tuple[float, float]] = []
        self._strips: list[_Strip] = []
        # Reference direction of each road (the first approach that made it).
        self._road_directions: list[tuple[float, float]] = []
        for approach in site.approaches:
            dx = sum(lane.centerline_m[-1][0] - lane.centerline_m[0][0] for lane in approach.lanes)
            dy = sum(lane.centerline_m[-1][1] - lane.centerline_m[0][1] for lane in approach.lanes)
            norm = math.hypot(dx, dy)
            ux, uy = dx / norm, dy / norm
            half_width = 0.0
            start = 0.0
            for lane in approach.lanes:
                sx, sy = lane.centerline_m[-1][0] - self.centre[0], lane.centerline_m[-1][1] - self.centre[1]
                lateral = sx * uy - sy * ux
                along = sx * ux + sy * uy
                half_width = max(half_width, abs(lateral) + lane.width_m / 2)
                fx, fy = lane.centerline_m[0][0] - self.centre[0], lane.centerline_m[0][1] - self.centre[1]
                start = min(start, fx * ux + fy * uy)
                # Both ends of the lane's stop line and their mirror image across the approach axis.
                for side in (lateral - lane.width_m / 2, lateral + lane.width_m / 2):
                    for mirrored in (side, -side):
                        box_corners.append(
                            (self.centre[0] + along * ux + mirrored * uy, self.centre[1] + along * uy - mirrored * ux)
                        )
            road = next(
                (
                    index
                    for index, (rx, ry) in enumerate(self._road_directions)
                    if abs(rx * ux + ry * uy) >= SAME_ROAD_MIN_ALIGNMENT
                ),
                None,
            )
            if road is None:
                road = len(self._road_directions)
                self._road_directions.append((ux, uy))
            self._strips.append(_Strip(self.centre, (ux, uy), start, half_width, road))
        self.box = _convex_hull(box_corners)
        self._box = _Polygon(self.box)
        self.crosswalks = [
            CrosswalkArea(
                crosswalk.id,
                crosswalk.signal_group,
                np.array(crosswalk.polygon_m, dtype=float),
                _long_axis_heading_deg(np.array(crosswalk.polygon_m, dtype=float)),
            )
            for crosswalk in site.crosswalks
        ]
        self._crosswalk_polygons = [_Polygon(crosswalk.polygon) for crosswalk in self.crosswalks]

    def released_together(self, lane_a: str | None, lane_b: str | None) -> bool:
        """Vehicles from these lanes move on groups the signal may show green together, on protected
        movements: by design their paths do not cross. False when either lane is unknown."""
        if lane_a is None or lane_b is None or lane_a in self.permissive_lanes or lane_b in self.permissive_lanes:
            return False
        group_a, group_b = self._group_of_lane.get(lane_a), self._group_of_lane.get(lane_b)
        if group_a is None or group_b is None:
            return False
        return frozenset((group_a, group_b)) not in self._conflicting_groups

    def released_together_pairs(
        self, lanes: Sequence[str | None], first: npt.NDArray[np.intp], second: npt.NDArray[np.intp]
    ) -> npt.NDArray[np.bool_]:
        """released_together(lanes[first[n]], lanes[second[n]]) for every pair at once."""
        group_index = np.array(
            [-1 if lane is None else self._release_group_index.get(lane, -1) for lane in lanes], dtype=np.intp
        )
        a, b = group_index[first], group_index[second]
        known = (a >= 0) & (b >= 0)
        together = np.zeros(len(a), dtype=bool)
        together[known] = ~self._groups_conflict[a[known], b[known]]
        return together

    def in_box(self, points: FloatArray) -> npt.NDArray[np.bool_]:
        """Which points (n, 2) lie inside the junction box."""
        return self._box.contains(points)

    def crosswalk_of(
        self, points: FloatArray, in_road: npt.NDArray[np.bool_] | None = None
    ) -> list[CrosswalkArea | None]:
        """The crosswalk each point (n, 2) stands on in the road (not on the kerb at its end), or None.

        in_road: in_road(points) if the caller has it already.
        """
        found: list[CrosswalkArea | None] = [None] * len(points)
        in_road = self.in_road(points) if in_road is None else in_road
        for crosswalk, polygon in zip(self.crosswalks, self._crosswalk_polygons, strict=True):
            for index in np.flatnonzero(polygon.contains(points) & in_road):
                if found[index] is None:
                    found[index] = crosswalk
        return found

    def road_sides(self, points: FloatArray) -> list[tuple[int, int] | None]:
        """Per point (n, 2) on a leg outside the junction box: (road index, side of its axis, -1 or 1)."""
        sides: list[tuple[int, int] | None] = [None] * len(points)
        outside_box = ~self.in_box(points)
        for strip in self._strips:
            inside = strip.contains(points, 0.0) & outside_box
            rx, ry = self._road_directions[strip.road]
            for index in np.flatnonzero(inside):
                lateral = (points[index, 0] - self.centre[0]) * ry - (points[index, 1] - self.centre[1]) * rx
                if sides[index] is None and abs(lateral) > AXIS_MARGIN_M:
                    sides[index] = (strip.road, 1 if lateral > 0 else -1)
        return sides

    def in_road(self, points: FloatArray) -> npt.NDArray[np.bool_]:
        """Which points (n, 2) are on the carriageway, at least KERB_MARGIN_M inside its edge."""
        inside = np.zeros(len(points), dtype=bool)
        for strip in self._strips:
            inside |= strip.contains(points, KERB_MARGIN_M)
        return inside


def points_in_polygon(points: FloatArray, polygon: FloatArray) -> npt.NDArray[np.bool_]:
    """Even-odd rule, vectorised over points (n, 2); polygon (m, 2) in either orientation."""
    return _Polygon(polygon).contains(points)


class _Polygon:
    """A polygon with its edges prepared for repeated point-in-polygon tests."""

    def __init__(self, vertices: FloatArray) -> None:
        vertices = np.asarray(vertices, dtype=float)
        x0, y0 = vertices[:, 0], vertices[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        self._x0, self._y0, self._y1 = x0[None, :], y0[None, :], y1[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            self._slope = ((x1 - x0) / (y1 - y0))[None, :]

    def contains(self, points: FloatArray) -> npt.NDArray[np.bool_]:
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        x, y = points[:, 0][:, None], points[:, 1][:, None]
        straddles = (self._y0 > y) != (self._y1 > y)
        with np.errstate(invalid="ignore"):
            crossings = straddles & (x < self._x0 + (y - self._y0) * self._slope)
        return np.asarray(crossings.sum(axis=1) % 2 == 1)


def _permissive_lanes(site: SiteConfig, conflicting_groups: set[frozenset[str]]) -> frozenset[str]:
    """Lanes with a left turn or U-turn that may be green together with opposing traffic going
    through or right: their vehicles give way to it instead of being protected by the signal."""
    directions = {}
    for approach in site.approaches:
        dx = sum(lane.centerline_m[-1][0] - lane.centerline_m[0][0] for lane in approach.lanes)
        dy = sum(lane.centerline_m[-1][1] - lane.centerline_m[0][1] for lane in approach.lanes)
        norm = math.hypot(dx, dy)
        directions[approach.id] = (dx / norm, dy / norm)
    permissive = set()
    for approach in site.approaches:
        ux, uy = directions[approach.id]
        opposing = [
            lane
            for other in site.approaches
            if ux * directions[other.id][0] + uy * directions[other.id][1] <= -SAME_ROAD_MIN_ALIGNMENT
            for lane in other.lanes
            if Movement.THROUGH in lane.movements or Movement.RIGHT in lane.movements
        ]
        for lane in approach.lanes:
            if not ({Movement.LEFT, Movement.UTURN} & set(lane.movements)):
                continue
            if any(frozenset((lane.signal_group, other.signal_group)) not in conflicting_groups for other in opposing):
                permissive.add(lane.id)
    return frozenset(permissive)


def _long_axis_heading_deg(polygon: FloatArray) -> float:
    """Heading (clockwise from north, in [0, 180)) of a polygon's principal axis through its vertices."""
    centred = polygon - polygon.mean(axis=0)
    sxx, syy = float((centred[:, 0] ** 2).sum()), float((centred[:, 1] ** 2).sum())
    sxy = float((centred[:, 0] * centred[:, 1]).sum())
    angle = 0.5 * math.atan2(2 * sxy, sxx - syy)  # counter-clockwise from east
    return math.degrees(math.atan2(math.cos(angle), math.sin(angle))) % 180.0


def _convex_hull(points: list[tuple[float, float]]) -> FloatArray:
    """Andrew's monotone chain; counter-clockwise, no repeated first point."""
    unique = sorted(set(points))
    if len(unique) < 3:
        return np.array(unique, dtype=float)

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    for point in unique:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], point) <= 0:
            lower.pop()
        lower.append(point)
    upper: list[tuple[float, float]] = []
    for point in reversed(unique):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], point) <= 0:
            upper.pop()
        upper.append(point)
    return np.array(lower[:-1] + upper[:-1], dtype=float)
