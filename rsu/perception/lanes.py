"""Lane geometry: which lane a ground point is in, and how far it is from the stop line.

A lane is its centre line (upstream to the stop line, the last point lying on the stop line)
swept by its width: the polygon of its edges, mitred at bends. A point belongs to a lane when it
lies in that polygon and (when its heading is known) travels within LANE_HEADING_TOLERANCE_DEG of
the lane direction, so traffic in an adjacent opposite-direction lane is never assigned to it.
Distances run along the centre line.

A whole frame of points is located at once with numpy (points x centre-line segments); a single
point in plain floats, with the same rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rsu_contracts.config.model import Lane, Point, SiteConfig
from rsu_contracts.enums import VEHICLE_TYPES, RoadUserType

FloatArray = npt.NDArray[np.float64]

# A road user moving more than this off the lane direction is not travelling in the lane.
LANE_HEADING_TOLERANCE_DEG = 60.0
# Road users that travel in lanes and call the signal; a cyclist waiting at the stop bar needs green too.
LANE_USERS = frozenset(VEHICLE_TYPES | {RoadUserType.BICYCLE})
# Mitre limit of the drawn polygon at hairpin bends (cosine of half the turn angle); lane membership
# uses the exact mitre, so the two differ only at bends sharper than about 150°.
_MITRE_MIN_COS = 0.25


@dataclass(frozen=True, slots=True)
class LaneGeometry:
    lane_id: str
    approach_id: str
    width_m: float
    centerline_m: tuple[Point, ...]
    length_m: float
    stop_bar_zone_length_m: float
    # Outline (left edge upstream to stop line, then the right edge back), mitred at the bends.
    polygon_m: tuple[Point, ...]
    # Direction of travel at the stop line, 0 = north, clockwise.
    heading_at_stop_deg: float

    def in_stop_bar_zone(self, distance_to_stop_m: float, length_m: float = 0.0) -> bool:
        """Whether a footprint of length_m centred distance_to_stop_m upstream overlaps the stop-bar zone."""
        half = 0.5 * length_m
        return distance_to_stop_m - half <= self.stop_bar_zone_length_m and distance_to_stop_m + half >= 0.0


@dataclass(frozen=True, slots=True)
class LanePosition:
    lane_id: str
    # Along the centre line, positive upstream of the stop line, negative past it.
    distance_to_stop_m: float
    # Perpendicular offset from the centre line, positive to the left of the direction of travel.
    lateral_offset_m: float

    @property
    def before_stop_line(self) -> bool:
        return self.distance_to_stop_m >= 0.0


def compass_heading_deg(dx: float, dy: float) -> float:
    heading = math.degrees(math.atan2(dx, dy)) % 360.0
    return 0.0 if heading >= 360.0 else heading


def _lane_polygon(points: FloatArray, half_width: float) -> tuple[Point, ...]:
    directions = np.diff(points, axis=0)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    normals = np.column_stack((-directions[:, 1], directions[:, 0]))  # left of travel
    vertex_normals = np.empty_like(points)
    vertex_normals[0] = normals[0]
    vertex_normals[-1] = normals[-1]
    for i in range(1, len(points) - 1):
        bisector = normals[i - 1] + normals[i]
        norm = np.linalg.norm(bisector)
        if norm < 1e-9:  # a U-turn in the centre line: no sensible mitre
            vertex_normals[i] = normals[i]
            continue
        bisector /= norm
        # Mitre: stretch the offset so both adjacent edges stay half a width away (capped at sharp bends).
        vertex_normals[i] = bisector / max(float(bisector @ normals[i]), _MITRE_MIN_COS)
    left = points + half_width * vertex_normals
    right = points - half_width * vertex_normals
    outline = np.vstack((left, right[::-1]))
    return tuple((float(x), float(y)) for x, y in outline)


def _lane_geometry(lane: Lane, approach_id: str) -> LaneGeometry:
    points = np.asarray(lane.centerline_m, dtype=np.float64)
    lengths = np.linalg.norm(np.diff(points, axis=0), axis=1)
    if np.any(lengths <= 1e-6):
        raise ValueError(f"lane {lane.id}: centerline_m has repeated points")
    last = points[-1] - points[-2]
    return LaneGeometry(
        lane_id=lane.id,
        approach_id=approach_id,
        width_m=lane.width_m,
        centerline_m=tuple((float(x), float(y)) for x, y in points),
        length_m=float(lengths.sum()),
        stop_bar_zone_length_m=lane.stop_bar_zone_length_m,
        polygon_m=_lane_polygon(points, 0.5 * lane.width_m),
        heading_at_stop_deg=compass_heading_deg(float(last[0]), float(last[1])),
    )


@dataclass(frozen=True, slots=True)
class _Segment:
    """One centre-line segment: the strip half a lane width to each side, cut at each bend by the
    mitre line (the bisector), so that the union of a lane's segments is its mitred polygon."""

    lane_id: str
    ax: float
    ay: float
    ux: float  # unit direction of travel
    uy: float
    length_m: float
    start_s: float  # distance along the lane at the segment's start
    lane_length_m: float
    half_width_m: float
    # Normals of the cut lines at the start and the end, pointing downstream: the direction halfway
    # between this segment and its neighbour (this segment's own at the lane's two ends).
    start_cut_x: float
    start_cut_y: float
    end_cut_x: float
    end_cut_y: float
    is_last: bool
    heading_deg: float


def _segments(lanes: Sequence[LaneGeometry]) -> list[_Segment]:
    segments = []
    for lane in lanes:
        points = np.asarray(lane.centerline_m, dtype=np.float64)
        vectors = np.diff(points, axis=0)
        lengths = np.linalg.norm(vectors, axis=1)
        units = vectors / lengths[:, None]
        cuts = [units[0]]
        for k in range(1, len(points) - 1):
            bisector = units[k - 1] + units[k]
            norm = float(np.linalg.norm(bisector))
            cuts.append(bisector / norm if norm > 1e-9 else units[k])  # a U-turn: cut square
        cuts.append(units[-1])
        cumulative = 0.0
        for k in range(len(vectors)):
            ux, uy = float(units[k][0]), float(units[k][1])
            segments.append(
                _Segment(
                    lane_id=lane.lane_id,
                    ax=float(points[k][0]),
                    ay=float(points[k][1]),
                    ux=ux,
                    uy=uy,
                    length_m=float(lengths[k]),
                    start_s=cumulative,
                    lane_length_m=lane.length_m,
                    half_width_m=0.5 * lane.width_m,
                    start_cut_x=float(cuts[k][0]),
                    start_cut_y=float(cuts[k][1]),
                    end_cut_x=float(cuts[k + 1][0]),
                    end_cut_y=float(cuts[k + 1][1]),
                    is_last=k == len(vectors) - 1,
                    heading_deg=compass_heading_deg(ux, uy),
                )
            )
            cumulative += float(lengths[k])
    return segments


def _heading_difference_deg(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


class LaneMap:
    """All lanes of a site; locates points in lanes."""

    def __init__(self, lanes: Sequence[LaneGeometry]) -> None:
        self.lanes: tuple[LaneGeometry, ...] = tuple(lanes)
        self._by_id = {lane.lane_id: lane for lane in self.lanes}
        self._segments = _segments(self.lanes)
        # The same segments as columns, for locating a whole frame of points at once.
        seg = self._segments

        def column(values: Sequence[float] | Sequence[tuple[float, float]]) -> FloatArray:
            return np.array(values, dtype=np.float64)

        self._unit_t = column([(g.ux, g.uy) for g in seg]).reshape(-1, 2).T  # (2, S)
        self._left_t = column([(-g.uy, g.ux) for g in seg]).reshape(-1, 2).T
        self._along_offset = column([g.ax * g.ux + g.ay * g.uy for g in seg])
        self._lateral_offset = column([-g.ax * g.uy + g.ay * g.ux for g in seg])
        self._length = column([g.length_m for g in seg])
        self._start_cut_t = column([(g.start_cut_x, g.start_cut_y) for g in seg]).reshape(-1, 2).T
        self._start_cut_offset = column([g.ax * g.start_cut_x + g.ay * g.start_cut_y for g in seg])
        self._end_cut_t = column([(g.end_cut_x, g.end_cut_y) for g in seg]).reshape(-1, 2).T
        self._end_cut_offset = column(
            [(g.ax + g.length_m * g.ux) * g.end_cut_x + (g.ay + g.length_m * g.uy) * g.end_cut_y for g in seg]
        )
        self._is_last = np.array([g.is_last for g in seg], dtype=bool)
        self._half_width = column([g.half_width_m for g in seg])
        self._heading = column([g.heading_deg for g in seg])

    @classmethod
    def from_site(cls, site: SiteConfig) -> LaneMap:
        return cls([_lane_geometry(lane, approach.id) for approach in site.approaches for lane in approach.lanes])

    def lane(self, lane_id: str) -> LaneGeometry:
        return self._by_id[lane_id]

    def lane_of(self, x_m: float, y_m: float, heading_deg: float | None = None) -> str | None:
        """The lane a point is in (before its stop line), or None."""
        position = self.locate(x_m, y_m, heading_deg)
        return position.lane_id if position is not None else None

    def locate(
        self, x_m: float, y_m: float, heading_deg: float | None = None, beyond_stop_line_m: float = 0.0
    ) -> LanePosition | None:
        """Lane position of one point; the same rules as locate_many, in plain floats (cheaper for one)."""
        if heading_deg is not None and math.isnan(heading_deg):
            heading_deg = None
        best: _Segment | None = None
        best_score = math.inf
        best_along = best_lateral = 0.0
        for g in self._segments:
            rx, ry = x_m - g.ax, y_m - g.ay
            along = rx * g.ux + ry * g.uy
            lateral = g.ux * ry - g.uy * rx
            if abs(lateral) > g.half_width_m or rx * g.start_cut_x + ry * g.start_cut_y < 0.0:
                continue
            past_end = (rx - g.length_m * g.ux) * g.end_cut_x + (ry - g.length_m * g.uy) * g.end_cut_y
            if past_end > (beyond_stop_line_m if g.is_last else 0.0):
                continue
            if heading_deg is not None and _heading_difference_deg(heading_deg, g.heading_deg) > (
                LANE_HEADING_TOLERANCE_DEG
            ):
                continue
            past_stop_line = g.is_last and along > g.length_m
            score = abs(lateral) / g.half_width_m + (2.0 if past_stop_line else 0.0)
            if score < best_score:
                best, best_score, best_along, best_lateral = g, score, along, lateral
        if best is None:
            return None
        return self._position(best, best_along, best_lateral)

    def locate_many(
        self, xy_m: FloatArray, heading_deg: FloatArray | None = None, beyond_stop_line_m: float = 0.0
    ) -> list[LanePosition | None]:
        """Lane positions of N points (shape (N, 2)); heading NaN (or None for all) skips the direction check.

        beyond_stop_line_m extends each lane straight past its stop line, so that a road user whose
        centre has just crossed the line (but whose body still covers the stop-bar zone) is found,
        with a negative distance to the stop line. Points properly inside a lane win over such matches,
        then the point goes to the lane whose centre line is nearest relative to the lane width.
        """
        n = len(xy_m)
        if n == 0 or not self._segments:
            return [None] * n
        along = xy_m @ self._unit_t - self._along_offset  # (N, S)
        lateral = xy_m @ self._left_t - self._lateral_offset  # positive to the left of travel
        offset = np.abs(lateral)
        past_start = xy_m @ self._start_cut_t - self._start_cut_offset
        past_end = xy_m @ self._end_cut_t - self._end_cut_offset
        ok = (
            (offset <= self._half_width)
            & (past_start >= 0.0)
            & (past_end <= np.where(self._is_last, beyond_stop_line_m, 0.0))
        )
        if not ok.any():
            return [None] * n
        if heading_deg is not None:
            known = ~np.isnan(heading_deg)
            if known.any():
                difference = np.abs((heading_deg[known, None] - self._heading + 180.0) % 360.0 - 180.0)
                ok[known] &= difference <= LANE_HEADING_TOLERANCE_DEG
        past_stop_line = self._is_last & (along > self._length)
        score = np.where(ok, offset / self._half_width + past_stop_line * 2.0, np.inf)
        best = np.argmin(score, axis=1)
        positions: list[LanePosition | None] = [None] * n
        for i in np.flatnonzero(np.isfinite(score[np.arange(n), best])):
            k = int(best[i])
            positions[i] = self._position(self._segments[k], float(along[i, k]), float(lateral[i, k]))
        return positions

    @staticmethod
    def _position(segment: _Segment, along: float, lateral: float) -> LanePosition:
        # In the wedge of a bend the position counts as at the bend; only past the stop line does the
        # distance go negative.
        along_lane = max(along, 0.0) if segment.is_last else min(max(along, 0.0), segment.length_m)
        return LanePosition(
            lane_id=segment.lane_id,
            distance_to_stop_m=segment.lane_length_m - (segment.start_s + along_lane),
            lateral_offset_m=lateral,
        )
