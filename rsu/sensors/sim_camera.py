"""A camera that sees the simulated world: SUMO's ground truth, degraded like a real detector.

Objects within ``range_m`` of the camera are detected unless dropped with ``miss_probability``;
each position gets Gaussian noise (``position_noise_m`` standard deviation per axis) and a
confidence that falls with distance. Detections captured at t are released at t + ``latency_s``
and keep t as their capture time. Everything random comes from one generator seeded at
construction, so a seed and the same inputs give the same detections.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np

from rsu.perception.detections import Detections
from rsu.sim.truth import TruthObject
from rsu_contracts.config.model import CameraConfig

# Confidence of a detection right at the camera and at the edge of its range (means; each draw
# also gets some spread), clipped to what a detector typically reports above its threshold.
CONFIDENCE_NEAR = 0.92
CONFIDENCE_FAR = 0.45
CONFIDENCE_SPREAD = 0.06
CONFIDENCE_MIN = 0.30
CONFIDENCE_MAX = 0.95
# Latency is honoured to within this margin, so a float sum of steps does not slip a frame.
_TIME_EPS_S = 1e-6


class SimulatedCamera:
    def __init__(self, camera: CameraConfig, seed: int) -> None:
        self.camera = camera
        self._settings = camera.simulation
        self._rng = np.random.default_rng(seed)
        self._pending: deque[tuple[float, Detections]] = deque()
        self._calls = 0

    def observe(self, truth: Sequence[TruthObject], time_s: float) -> Detections | None:
        """Capture the truth at ``time_s``; return the oldest frame due by now, or None."""
        if self._calls % self.camera.frame_stride == 0:
            frame = self._capture(truth, time_s)
            self._pending.append((time_s + self._settings.latency_s, frame))
        self._calls += 1
        if self._pending and self._pending[0][0] <= time_s + _TIME_EPS_S:
            return self._pending.popleft()[1]
        return None

    def _capture(self, truth: Sequence[TruthObject], time_s: float) -> Detections:
        cam_x, cam_y = self.camera.position_m
        range_m = self._settings.range_m
        centres: list[tuple[float, float]] = []
        visible: list[TruthObject] = []
        for obj in truth:
            x, y = obj.ground_center_m
            if math.hypot(x - cam_x, y - cam_y) <= range_m:
                centres.append((x, y))
                visible.append(obj)
        count = len(visible)
        # Draw every random number for every visible object, kept or not, so one object's
        # miss does not shift the noise of the others.
        kept = self._rng.random(count) >= self._settings.miss_probability
        noise = self._rng.normal(0.0, self._settings.position_noise_m, size=(count, 2))
        spread = self._rng.normal(0.0, CONFIDENCE_SPREAD, size=count)
        if count == 0 or not kept.any():
            return Detections.empty(time_s, camera_id=self.camera.id)
        positions = np.asarray(centres, dtype=np.float64) + noise
        distance = np.hypot(positions[:, 0] - cam_x, positions[:, 1] - cam_y)
        mean_confidence = CONFIDENCE_NEAR + (CONFIDENCE_FAR - CONFIDENCE_NEAR) * np.clip(distance / range_m, 0, 1)
        confidence = np.clip(mean_confidence + spread, CONFIDENCE_MIN, CONFIDENCE_MAX)
        indices = np.flatnonzero(kept)
        return Detections(
            capture_time_s=time_s,
            ground_xy_m=positions[indices],
            road_user=tuple(visible[i].road_user for i in indices),
            confidence=confidence[indices],
            camera_id=self.camera.id,
            # Simulation only: lets an evaluation match detections to the truth; trackers ignore it.
            extras={"truth_object_ids": tuple(visible[i].object_id for i in indices)},
        )
