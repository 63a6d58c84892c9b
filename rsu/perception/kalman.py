"""Constant-velocity Kalman filter in the ground plane (state x, y, vx, vy in metres and m/s).

The process noise is white acceleration, the same on both axes, and the position measurement
noise is isotropic. The 4x4 covariance is then block-diagonal with two identical 2x2 blocks
(position/velocity per axis), so the filter keeps one 2x2 block and runs in plain floats: exact,
and about 20x cheaper than numpy on 4x4 matrices for the few dozen tracks of a junction.

Time comes only from timestamps: predict() takes the target time in seconds and uses the real dt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MotionNoise:
    """Noise model of one kind of road user."""

    # Spectral density of the white acceleration (m²/s³): how hard the road user may change velocity.
    acceleration_psd: float
    # Standard deviation of one ground-plane position measurement.
    measurement_std_m: float
    # Standard deviation of the unknown velocity of a new track (its first detection has none).
    initial_speed_std_mps: float


# Cars brake and accelerate at ~2-4 m/s²; a pedestrian changes pace gently. The densities are
# tuned so that a standing road user measured with ~0.3 m noise at 10 Hz reads a speed below the
# queue (1.5 m/s) and waiting (0.5 m/s) thresholds, while a braking car is still followed within
# ~2 m/s. The measurement stds are a little above the simulated camera noise on purpose: the
# homography of a real camera is worse at range.
VEHICLE_NOISE = MotionNoise(acceleration_psd=2.0, measurement_std_m=0.6, initial_speed_std_mps=8.0)
TWO_WHEELER_NOISE = MotionNoise(acceleration_psd=2.0, measurement_std_m=0.5, initial_speed_std_mps=5.0)
PEDESTRIAN_NOISE = MotionNoise(acceleration_psd=0.5, measurement_std_m=0.5, initial_speed_std_mps=2.0)

# Acceleration is the derivative of the filtered speed, smoothed over about this time constant.
ACCELERATION_TIME_CONSTANT_S = 0.8
# A measured acceleration beyond this is noise (or a track swap), not a road user.
MAX_ABS_ACCELERATION_MPS2 = 10.0


class ConstantVelocityKalman:
    """One road user's ground-plane state; positions in metres, velocities in m/s, times in s."""

    __slots__ = (
        "_accel_sample_speed",
        "_accel_sample_time_s",
        "_measurement_var",
        "_psd",
        "acceleration_mps2",
        "p_pos",
        "p_pos_vel",
        "p_vel",
        "time_s",
        "vx",
        "vy",
        "x",
        "y",
    )

    def __init__(self, x_m: float, y_m: float, time_s: float, noise: MotionNoise) -> None:
        self.x = x_m
        self.y = y_m
        self.vx = 0.0
        self.vy = 0.0
        self.time_s = time_s
        self._psd = noise.acceleration_psd
        self._measurement_var = noise.measurement_std_m**2
        # Per-axis covariance block [[p_pos, p_pos_vel], [p_pos_vel, p_vel]].
        self.p_pos = self._measurement_var
        self.p_pos_vel = 0.0
        self.p_vel = noise.initial_speed_std_mps**2
        self.acceleration_mps2 = 0.0
        self._accel_sample_time_s: float | None = None
        self._accel_sample_speed = 0.0

    @property
    def speed_mps(self) -> float:
        return math.hypot(self.vx, self.vy)

    @property
    def measurement_var(self) -> float:
        return self._measurement_var

    def predict(self, time_s: float) -> None:
        """Move the state forward to time_s (no-op for the same time; raises if time runs backwards)."""
        dt = time_s - self.time_s
        if dt < 0:
            raise ValueError(f"cannot predict backwards in time: {self.time_s} -> {time_s}")
        if dt == 0:
            return
        self.x += self.vx * dt
        self.y += self.vy * dt
        q = self._psd
        # F P Fᵀ + Q for F = [[1, dt], [0, 1]] and continuous white-acceleration Q; composing two
        # predictions equals one over the summed dt, so coasting tracks may be predicted frame by frame.
        self.p_pos += 2.0 * dt * self.p_pos_vel + dt * dt * self.p_vel + q * dt**3 / 3.0
        self.p_pos_vel += dt * self.p_vel + q * dt * dt / 2.0
        self.p_vel += q * dt
        self.time_s = time_s

    def update(self, x_m: float, y_m: float) -> None:
        """Correct the state (already predicted to the measurement time) with a position measurement."""
        innovation_var = self.p_pos + self._measurement_var
        gain_pos = self.p_pos / innovation_var
        gain_vel = self.p_pos_vel / innovation_var
        dx = x_m - self.x
        dy = y_m - self.y
        self.x += gain_pos * dx
        self.y += gain_pos * dy
        self.vx += gain_vel * dx
        self.vy += gain_vel * dy
        self.p_vel -= gain_vel * self.p_pos_vel
        self.p_pos_vel *= 1.0 - gain_pos
        self.p_pos *= 1.0 - gain_pos
        self._update_acceleration()

    def start_acceleration_estimate(self) -> None:
        """Begin estimating acceleration from now on (the velocity of a new track is still settling)."""
        self._accel_sample_time_s = self.time_s
        self._accel_sample_speed = self.speed_mps

    def _update_acceleration(self) -> None:
        if self._accel_sample_time_s is None:
            return
        dt = self.time_s - self._accel_sample_time_s
        if dt <= 0:
            return
        speed = self.speed_mps
        raw = (speed - self._accel_sample_speed) / dt
        alpha = 1.0 - math.exp(-dt / ACCELERATION_TIME_CONSTANT_S)
        smoothed = self.acceleration_mps2 + alpha * (raw - self.acceleration_mps2)
        self.acceleration_mps2 = max(-MAX_ABS_ACCELERATION_MPS2, min(MAX_ABS_ACCELERATION_MPS2, smoothed))
        self._accel_sample_time_s = self.time_s
        self._accel_sample_speed = speed
