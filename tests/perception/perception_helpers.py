"""Builders for synthetic detections and tracks (no video, no broker)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rsu.perception.detections import Detections
from rsu.perception.tracker import Track
from rsu_contracts.config.model import SiteConfig
from rsu_contracts.enums import RoadUserType

CAR = RoadUserType.CAR
PEDESTRIAN = RoadUserType.PEDESTRIAN
FRAME_S = 0.1


def detections(
    time_s: float,
    objects: Sequence[tuple[float, float, RoadUserType] | tuple[float, float, RoadUserType, float]],
    camera_id: str = "",
) -> Detections:
    """Detections at time_s from (x, y, road_user[, confidence]) tuples; confidence defaults to 0.9."""
    if not objects:
        return Detections.empty(time_s, camera_id)
    return Detections(
        capture_time_s=time_s,
        ground_xy_m=np.array([(o[0], o[1]) for o in objects], dtype=np.float64),
        road_user=tuple(o[2] for o in objects),
        confidence=np.array([o[3] if len(o) > 3 else 0.9 for o in objects], dtype=np.float64),
        camera_id=camera_id,
    )


def make_track(
    track_id: int,
    x_m: float,
    y_m: float,
    *,
    road_user: RoadUserType = CAR,
    speed_mps: float = 0.0,
    heading_deg: float = 0.0,
    heading_known: bool = True,
    confirmed: bool = True,
    time_s: float = 0.0,
    age_s: float = 5.0,
    coasting_s: float = 0.0,
) -> Track:
    """A track snapshot with a consistent velocity from speed and compass heading."""
    vx = speed_mps * float(np.sin(np.radians(heading_deg)))
    vy = speed_mps * float(np.cos(np.radians(heading_deg)))
    return Track(
        track_id=track_id,
        road_user=road_user,
        x_m=x_m,
        y_m=y_m,
        vx_mps=vx,
        vy_mps=vy,
        speed_mps=speed_mps,
        heading_deg=heading_deg,
        heading_known=heading_known,
        acceleration_mps2=0.0,
        hits=10 if confirmed else 1,
        confirmed=confirmed,
        first_seen_s=time_s - age_s,
        last_seen_s=time_s - coasting_s,
        age_s=age_s,
        coasting_s=coasting_s,
    )


def _last_segment(site: SiteConfig, lane_id: str) -> tuple[np.ndarray, np.ndarray]:
    (lane,) = [lane for lane in site.lanes if lane.id == lane_id]
    stop = np.array(lane.centerline_m[-1], dtype=np.float64)
    direction = stop - np.array(lane.centerline_m[-2], dtype=np.float64)
    return stop, direction / np.linalg.norm(direction)


def lane_point(
    site: SiteConfig, lane_id: str, distance_to_stop_m: float, lateral_m: float = 0.0
) -> tuple[float, float]:
    """The point distance_to_stop_m upstream of a (straight) lane's stop line, lateral_m to the left of travel."""
    stop, unit = _last_segment(site, lane_id)
    left = np.array([-unit[1], unit[0]])
    point = stop - distance_to_stop_m * unit + lateral_m * left
    return float(point[0]), float(point[1])


def lane_heading_deg(site: SiteConfig, lane_id: str) -> float:
    _, unit = _last_segment(site, lane_id)
    return float(np.degrees(np.arctan2(unit[0], unit[1])) % 360.0)


def lane_velocity(site: SiteConfig, lane_id: str, speed_mps: float) -> tuple[float, float]:
    _, unit = _last_segment(site, lane_id)
    return float(unit[0] * speed_mps), float(unit[1] * speed_mps)
