"""Detections: the one type every camera source produces and the tracker consumes.

Parallel numpy arrays, checked at construction (as in supervision). Positions are the ground
contact point of each road user in the site's local frame (metres east, north); a real camera
fills them through the homography, the simulated camera directly. Image boxes are optional.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rsu_contracts.enums import RoadUserType

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Detections:
    capture_time_s: float
    ground_xy_m: FloatArray  # shape (N, 2)
    road_user: tuple[RoadUserType, ...]  # length N
    confidence: FloatArray  # shape (N,), 0..1
    boxes_px: FloatArray | None = None  # shape (N, 4), x1 y1 x2 y2
    camera_id: str = ""
    extras: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.road_user)
        if self.ground_xy_m.shape != (n, 2):
            raise ValueError(f"ground_xy_m must have shape ({n}, 2), got {self.ground_xy_m.shape}")
        if self.confidence.shape != (n,):
            raise ValueError(f"confidence must have shape ({n},), got {self.confidence.shape}")
        if self.boxes_px is not None and self.boxes_px.shape != (n, 4):
            raise ValueError(f"boxes_px must have shape ({n}, 4), got {self.boxes_px.shape}")
        if not np.all(np.isfinite(self.ground_xy_m)):
            raise ValueError("ground_xy_m holds non-finite values")

    def __len__(self) -> int:
        return len(self.road_user)

    @classmethod
    def empty(cls, capture_time_s: float, camera_id: str = "") -> Detections:
        return cls(
            capture_time_s=capture_time_s,
            ground_xy_m=np.zeros((0, 2)),
            road_user=(),
            confidence=np.zeros(0),
            camera_id=camera_id,
        )

    def subset(self, mask: npt.NDArray[np.bool_]) -> Detections:
        indices = np.flatnonzero(mask)
        return Detections(
            capture_time_s=self.capture_time_s,
            ground_xy_m=self.ground_xy_m[indices],
            road_user=tuple(self.road_user[i] for i in indices),
            confidence=self.confidence[indices],
            boxes_px=None if self.boxes_px is None else self.boxes_px[indices],
            camera_id=self.camera_id,
        )
