"""Drawing the unit's view onto a camera frame: zones, lines, stop bars, boxes, track ids and trails.

Pure drawing with OpenCV on a BGR image, no I/O. Ground geometry and tracks are projected through
the camera's homography (see GroundProjector), so what is drawn is what the unit computes with:
a zone that sits beside the painted lane on the image means the calibration is off.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

import cv2
import numpy as np
import numpy.typing as npt

from rsu.web.geometry import GroundProjector, stop_bar_m, stop_bar_zone_m
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages.perception import LaneObservation, TrackedObject

ImageArray = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float64]

# BGR colours; the page's legend uses the same ones.
ROAD_USER_COLOURS: dict[RoadUserType, tuple[int, int, int]] = {
    RoadUserType.CAR: (255, 170, 60),
    RoadUserType.TRUCK: (200, 90, 40),
    RoadUserType.BUS: (180, 60, 160),
    RoadUserType.MOTORCYCLE: (60, 200, 255),
    RoadUserType.BICYCLE: (60, 220, 120),
    RoadUserType.PEDESTRIAN: (80, 80, 255),
}
LANE_EDGE = (200, 200, 200)
ZONE_FREE = (160, 160, 160)
ZONE_OCCUPIED = (0, 165, 255)
STOP_BAR = (255, 255, 255)
COUNTING_LINE = (255, 255, 0)
CROSSWALK = (0, 230, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX

# Trails: this many positions per track, tracks forgotten this long after they were last seen.
TRAIL_POINTS = 40
TRAIL_FORGET_S = 2.0


class TrailBook:
    """Recent ground positions per track, bounded in points per track and in the number of tracks."""

    def __init__(self, max_points: int = TRAIL_POINTS, forget_after_s: float = TRAIL_FORGET_S, max_tracks: int = 500):
        self.max_points = max_points
        self.forget_after_s = forget_after_s
        self.max_tracks = max_tracks
        self._trails: dict[int, deque[tuple[float, float]]] = {}
        self._last_seen_s: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._trails)

    def update(self, tracks: Iterable[TrackedObject], time_s: float) -> None:
        for track in tracks:
            trail = self._trails.setdefault(track.track_id, deque(maxlen=self.max_points))
            trail.append((track.x_m, track.y_m))
            self._last_seen_s[track.track_id] = time_s
        stale = [tid for tid, seen in self._last_seen_s.items() if time_s - seen > self.forget_after_s]
        # Over the bound (a flood of short tracks), forget the longest-unseen first.
        overflow = len(self._trails) - len(stale) - self.max_tracks
        if overflow > 0:
            fresh = sorted((seen, tid) for tid, seen in self._last_seen_s.items() if tid not in set(stale))
            stale.extend(tid for _, tid in fresh[:overflow])
        for tid in stale:
            self._trails.pop(tid, None)
            self._last_seen_s.pop(tid, None)

    def trail(self, track_id: int) -> list[tuple[float, float]]:
        return list(self._trails.get(track_id, ()))


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A stable, well-spread colour per track id (golden-ratio hue steps)."""
    hue = int((track_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.array([[[hue, 200, 255]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _int_points(pixels: FloatArray) -> npt.NDArray[np.int32]:
    # Far-off pixels are clamped: cv2 draws with int32 and clips lines to the image itself.
    return np.clip(np.round(pixels), -1e5, 1e5).astype(np.int32).reshape(-1, 1, 2)


def _polylines(image: ImageArray, pieces: Sequence[FloatArray], colour: tuple[int, int, int], thickness: int) -> None:
    for piece in pieces:
        cv2.polylines(image, [_int_points(piece)], False, colour, thickness, cv2.LINE_AA)


def _label(image: ImageArray, text: str, origin: tuple[int, int], colour: tuple[int, int, int], scale: float) -> None:
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, 1)
    x, y = origin
    cv2.rectangle(image, (x, y - height - baseline), (x + width + 2, y + 1), (0, 0, 0), -1)
    cv2.putText(image, text, (x + 1, y - baseline + 1), FONT, scale, colour, 1, cv2.LINE_AA)


def draw_site(
    image: ImageArray,
    site: SiteConfig,
    projector: GroundProjector,
    lanes: Sequence[LaneObservation] = (),
) -> None:
    """Lane edges, stop-bar zones (filled when occupied), stop bars, crosswalks and counting lines."""
    occupied = {lane.lane_id for lane in lanes if lane.stop_bar_occupied}
    fill = image.copy()
    for lane in site.lanes:
        zone = stop_bar_zone_m(lane)
        if lane.id in occupied:
            for piece in projector.polyline(zone, closed=True):
                cv2.fillPoly(fill, [_int_points(piece)], ZONE_OCCUPIED, cv2.LINE_AA)
    cv2.addWeighted(fill, 0.35, image, 0.65, 0, dst=image)
    scale = max(0.35, image.shape[1] / 2000)
    for lane in site.lanes:
        _polylines(image, projector.polyline(lane.centerline_m), LANE_EDGE, 1)
        zone_colour = ZONE_OCCUPIED if lane.id in occupied else ZONE_FREE
        _polylines(image, projector.polyline(stop_bar_zone_m(lane), closed=True), zone_colour, 1)
        bar = projector.polyline(stop_bar_m(lane))
        _polylines(image, bar, STOP_BAR, 3)
        if bar:
            x, y = bar[0][0]
            _label(image, lane.id, (int(x), int(y) - 4), STOP_BAR, scale)
    for crosswalk in site.crosswalks:
        _polylines(image, projector.polyline(crosswalk.polygon_m, closed=True), CROSSWALK, 1)
    for line in site.counting_lines:
        pieces = projector.polyline(line.line_m)
        _polylines(image, pieces, COUNTING_LINE, 2)
        if pieces:
            x, y = pieces[0][-1]
            _label(image, line.id, (int(x) + 4, int(y)), COUNTING_LINE, scale)


def draw_boxes(
    image: ImageArray,
    boxes_px: FloatArray,
    road_users: Sequence[RoadUserType],
    confidence: FloatArray,
    scale: float = 1.0,
) -> None:
    """Detector boxes (x1 y1 x2 y2, in the original frame's pixels) with class and confidence."""
    text_scale = max(0.35, image.shape[1] / 2200)
    for box, user, conf in zip(boxes_px, road_users, confidence, strict=True):
        x1, y1, x2, y2 = (round(float(v) * scale) for v in box)
        colour = ROAD_USER_COLOURS.get(user, (255, 255, 255))
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, 2)
        _label(image, f"{user.value} {conf:.2f}", (x1, max(y1, 12)), colour, text_scale)


def draw_tracks(
    image: ImageArray, tracks: Sequence[TrackedObject], trails: TrailBook, projector: GroundProjector
) -> None:
    """Each confirmed track: its trail and its id at the point where it touches the road."""
    text_scale = max(0.4, image.shape[1] / 1800)
    for track in tracks:
        colour = track_colour(track.track_id)
        _polylines(image, projector.polyline(trails.trail(track.track_id)), colour, 2)
        pixel = projector.points([(track.x_m, track.y_m)])[0]
        if not np.all(np.isfinite(pixel)):
            continue
        x, y = round(float(pixel[0])), round(float(pixel[1]))
        cv2.circle(image, (x, y), 4, colour, -1, cv2.LINE_AA)
        _label(image, f"#{track.track_id} {track.speed_mps * 3.6:.0f} km/h", (x + 5, y + 14), colour, text_scale)


def draw_caption(image: ImageArray, text: str) -> None:
    _label(image, text, (6, 20), (255, 255, 255), max(0.45, image.shape[1] / 1600))
