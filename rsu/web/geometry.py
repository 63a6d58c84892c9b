"""Site geometry as the operator sees it: lanes, stop bars, detection zones, crosswalks, counting lines.

Everything here is derived from the site config (local metres, x east, y north). `site_layout`
gives the JSON the page draws its bird's-eye view from; `GroundProjector` maps the same geometry
into a camera image through the calibration homography, cutting away what lies behind the camera.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from rsu.perception.homography import Homography, HomographyError
from rsu.perception.lanes import LaneMap
from rsu_contracts.config.model import Lane, Point, SiteConfig
from rsu_contracts.enums import CameraSource

FloatArray = npt.NDArray[np.float64]

# The bird's-eye view opens on the junction (stop bars, crosswalks, counting lines) plus this margin,
# not on the whole length of the lanes, which may reach hundreds of metres upstream.
VIEW_MARGIN_M = 25.0
MIN_VIEW_SIZE_M = 40.0
# Ground points whose homogeneous image depth is below this share of the calibration points' depth
# are too close to the horizon (or behind the camera) to draw: their pixels would explode.
MIN_DEPTH_SHARE = 0.05


def _unit(dx: float, dy: float) -> tuple[float, float]:
    norm = math.hypot(dx, dy)
    return (dx / norm, dy / norm) if norm > 0 else (0.0, 0.0)


def stop_bar_m(lane: Lane) -> tuple[Point, Point]:
    """The stop bar across the lane at the end of its centre line, left end first (seen in travel direction)."""
    (ax, ay), (bx, by) = lane.centerline_m[-2], lane.centerline_m[-1]
    ux, uy = _unit(bx - ax, by - ay)
    half = 0.5 * lane.width_m
    return (bx - uy * half, by + ux * half), (bx + uy * half, by - ux * half)


def centerline_tail_m(centerline: Sequence[Point], length_m: float) -> list[Point]:
    """The last length_m of a polyline (fewer if the polyline is shorter), in travel order."""
    tail: list[Point] = [centerline[-1]]
    remaining = length_m
    for i in range(len(centerline) - 1, 0, -1):
        (ax, ay), (bx, by) = centerline[i - 1], centerline[i]
        segment = math.hypot(bx - ax, by - ay)
        if segment >= remaining:
            share = remaining / segment if segment > 0 else 0.0
            tail.append((bx + (ax - bx) * share, by + (ay - by) * share))
            break
        tail.append((ax, ay))
        remaining -= segment
    return tail[::-1]


def offset_outline_m(polyline: Sequence[Point], half_width_m: float) -> list[Point]:
    """A strip half_width_m to each side of a polyline: left edge forward, right edge back."""
    left: list[Point] = []
    right: list[Point] = []
    for i, (x, y) in enumerate(polyline):
        before = polyline[max(i - 1, 0)]
        after = polyline[min(i + 1, len(polyline) - 1)]
        ux, uy = _unit(after[0] - before[0], after[1] - before[1])
        left.append((x - uy * half_width_m, y + ux * half_width_m))
        right.append((x + uy * half_width_m, y - ux * half_width_m))
    return left + right[::-1]


def stop_bar_zone_m(lane: Lane) -> list[Point]:
    """The virtual loop just upstream of the stop bar (what `stop_bar_occupied` reports on)."""
    return offset_outline_m(centerline_tail_m(lane.centerline_m, lane.stop_bar_zone_length_m), 0.5 * lane.width_m)


def view_bounds_m(site: SiteConfig) -> tuple[float, float, float, float]:
    """(x_min, y_min, x_max, y_max) around the junction: stop bars, crosswalks and counting lines."""
    points: list[Point] = []
    for lane in site.lanes:
        points.extend(stop_bar_m(lane))
    for crosswalk in site.crosswalks:
        points.extend(crosswalk.polygon_m)
    for line in site.counting_lines:
        points.extend(line.line_m)
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    cx, cy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    half = max(max(xs) - min(xs), max(ys) - min(ys), MIN_VIEW_SIZE_M) / 2 + VIEW_MARGIN_M
    return (cx - half, cy - half, cx + half, cy + half)


def camera_homography(site: SiteConfig, camera_id: str) -> Homography | None:
    """The calibrated homography of a video camera, None for a simulated or uncalibrated one."""
    for camera in site.cameras:
        if camera.id == camera_id and camera.source is CameraSource.VIDEO and len(camera.calibration) >= 4:
            try:
                return Homography.from_points(camera.calibration)
            except HomographyError:
                return None
    return None


def site_layout(site: SiteConfig) -> dict[str, Any]:
    """Everything the page needs to draw the junction, as plain JSON-ready data."""
    lane_map = LaneMap.from_site(site)
    lanes = []
    for approach in site.approaches:
        for lane in approach.lanes:
            lanes.append(
                {
                    "id": lane.id,
                    "approach": approach.id,
                    "signal_group": lane.signal_group,
                    "movements": [m.value for m in lane.movements],
                    "width_m": lane.width_m,
                    "centerline_m": [list(p) for p in lane.centerline_m],
                    "outline_m": [list(p) for p in lane_map.lane(lane.id).polygon_m],
                    "stop_bar_m": [list(p) for p in stop_bar_m(lane)],
                    "zone_m": [list(p) for p in stop_bar_zone_m(lane)],
                }
            )
    cameras = []
    for camera in site.cameras:
        homography = camera_homography(site, camera.id)
        cameras.append(
            {
                "id": camera.id,
                "source": camera.source.value,
                "position_m": list(camera.position_m),
                "ground_to_image": None if homography is None else homography.ground_to_image_matrix.tolist(),
            }
        )
    return {
        "unit_id": site.unit_id,
        "name": site.name or site.unit_id,
        "simulated": site.is_simulated,
        "view_bounds_m": list(view_bounds_m(site)),
        "lanes": lanes,
        "crosswalks": [
            {"id": c.id, "signal_group": c.signal_group, "polygon_m": [list(p) for p in c.polygon_m]}
            for c in site.crosswalks
        ],
        "counting_lines": [
            {"id": line.id, "approach": line.approach, "line_m": [list(p) for p in line.line_m]}
            for line in site.counting_lines
        ],
        "signal_groups": [{"id": g.id, "kind": g.kind.value, "nema_phase": g.nema_phase} for g in site.signal_groups],
        "cameras": cameras,
    }


class GroundProjector:
    """Ground metres to image pixels through a camera's homography, scaled to the drawn image size.

    A homography maps the whole plane, including the part behind the camera, which lands mirrored
    in the image. Lines are therefore cut where their homogeneous depth falls below a small share
    of the calibration points' depth, so only the visible part of the road is drawn.
    """

    def __init__(self, homography: Homography, scale: float = 1.0) -> None:
        scaling = np.diag([scale, scale, 1.0])
        self.matrix: FloatArray = scaling @ homography.ground_to_image_matrix
        depths = self._depths(homography.ground_points_m)
        self._sign = 1.0 if float(np.median(depths)) > 0 else -1.0
        self._min_depth = MIN_DEPTH_SHARE * float(np.median(np.abs(depths)))

    def _depths(self, points_m: FloatArray) -> FloatArray:
        return np.asarray(points_m @ self.matrix[2, :2] + self.matrix[2, 2], dtype=np.float64)

    def visible(self, points_m: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        points = np.asarray(points_m, dtype=np.float64).reshape(-1, 2)
        return np.asarray(self._sign * self._depths(points) >= self._min_depth)

    def points(self, points_m: npt.ArrayLike) -> FloatArray:
        """Pixels of ground points; rows of points that are not visible are NaN."""
        points = np.asarray(points_m, dtype=np.float64).reshape(-1, 2)
        homogeneous = points @ self.matrix[:, :2].T + self.matrix[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            pixels = homogeneous[:, :2] / homogeneous[:, 2:3]
        pixels[~self.visible(points)] = np.nan
        return np.asarray(pixels, dtype=np.float64)

    def polyline(self, points_m: Sequence[Point] | FloatArray, closed: bool = False) -> list[FloatArray]:
        """The visible pieces of a ground polyline (or polygon outline), each an (N, 2) pixel array."""
        points: list[Point] = [(float(x), float(y)) for x, y in np.asarray(points_m, dtype=np.float64).reshape(-1, 2)]
        if closed and points:
            points.append(points[0])
        pieces: list[FloatArray] = []
        current: list[Point] = []
        for a, b in itertools.pairwise(points):
            clipped = self._clip_segment(a, b)
            if clipped is None:
                if len(current) >= 2:
                    pieces.append(self.points(current))
                current = []
                continue
            start, end = clipped
            if not current or current[-1] != start:
                if len(current) >= 2:
                    pieces.append(self.points(current))
                current = [start]
            current.append(end)
            if end != b:  # cut at the horizon: the next segment starts a new piece
                pieces.append(self.points(current))
                current = []
        if len(current) >= 2:
            pieces.append(self.points(current))
        return pieces

    def _clip_segment(self, a: Point, b: Point) -> tuple[Point, Point] | None:
        depth_a, depth_b = (self._sign * d for d in self._depths(np.array([a, b])))
        lowest = self._min_depth
        if depth_a < lowest and depth_b < lowest:
            return None
        if depth_a >= lowest and depth_b >= lowest:
            return a, b
        # Depth is linear along the segment on the ground plane: cut where it reaches the limit.
        share = (lowest - depth_a) / (depth_b - depth_a)
        cut = (a[0] + (b[0] - a[0]) * share, a[1] + (b[1] - a[1]) * share)
        return (cut, b) if depth_a < lowest else (a, cut)
