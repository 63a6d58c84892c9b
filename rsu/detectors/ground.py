"""Ground placement: image boxes to road users on the ground, post-processing shared by every backend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rsu.detectors.base import FloatArray
from rsu.perception.detections import Detections
from rsu.perception.homography import Homography
from rsu_contracts.enums import RoadUserType


def place_on_ground(
    boxes_px: FloatArray,
    road_user: Sequence[RoadUserType],
    confidence: FloatArray,
    homography: Homography,
    capture_time_s: float,
    camera_id: str = "",
) -> Detections:
    """Detections at the ground contact point of each box (x1 y1 x2 y2): the bottom centre, projected.

    Boxes whose bottom lies at or above the horizon have no ground position and are left out
    (counted in extras["dropped_above_horizon"]).
    """
    ground_contact_px = np.column_stack(((boxes_px[:, 0] + boxes_px[:, 2]) / 2, boxes_px[:, 3]))
    ground_xy_m = homography.image_to_ground(ground_contact_px)
    on_ground = np.all(np.isfinite(ground_xy_m), axis=1)
    return Detections(
        capture_time_s=capture_time_s,
        ground_xy_m=ground_xy_m[on_ground],
        road_user=tuple(user for user, kept in zip(road_user, on_ground, strict=True) if kept),
        confidence=confidence[on_ground],
        boxes_px=boxes_px[on_ground],
        camera_id=camera_id,
        extras={"dropped_above_horizon": int(np.count_nonzero(~on_ground))},
    )
