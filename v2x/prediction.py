"""Short-horizon trajectory prediction for road users.

Headings follow TrackedObject: degrees clockwise from north, so the velocity is
(speed * sin(heading), speed * cos(heading)) in the east/north frame. Three models:

- constant velocity (CV): straight line at the current speed;
- constant acceleration (CA): straight line, speed changing at the current acceleration but
  never below zero (a braking vehicle stops, it does not reverse);
- constant turn rate and acceleration (CTRA): the CA speed profile along an arc turning at a
  given yaw rate. Tracks carry no yaw rate, so callers supply it when they have one.

Everything is vectorised over objects and prediction times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from rsu.messages.perception import TrackedObject

FloatArray = npt.NDArray[np.float64]


class MotionModel(StrEnum):
    CONSTANT_VELOCITY = "constant_velocity"
    CONSTANT_ACCELERATION = "constant_acceleration"
    CONSTANT_TURN_RATE = "constant_turn_rate"


@dataclass(frozen=True)
class KinematicState:
    x_m: float
    y_m: float
    speed_mps: float
    heading_deg: float
    acceleration_mps2: float = 0.0
    yaw_rate_dps: float = 0.0

    @classmethod
    def from_track(cls, track: TrackedObject, yaw_rate_dps: float = 0.0) -> KinematicState:
        return cls(track.x_m, track.y_m, track.speed_mps, track.heading_deg, track.acceleration_mps2, yaw_rate_dps)


def heading_unit_vector(heading_deg: float) -> tuple[float, float]:
    """(east, north) unit vector of a heading measured clockwise from north."""
    radians = np.radians(heading_deg)
    return float(np.sin(radians)), float(np.cos(radians))


def heading_difference_deg(a_deg: float, b_deg: float) -> float:
    """Smallest absolute angle between two headings, in [0, 180]."""
    return abs((a_deg - b_deg + 180.0) % 360.0 - 180.0)


def prediction_times(horizon_s: float, step_s: float = 0.1) -> FloatArray:
    """0, step, 2 step, ... up to and including the horizon."""
    steps = max(1, round(horizon_s / step_s))
    return np.linspace(0.0, horizon_s, steps + 1)


def travelled_distance(
    speed_mps: FloatArray, acceleration_mps2: FloatArray, times_s: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Distance along the path and speed at each time, shape (objects, times).

    The speed is clamped at zero: after a braking object stops it stays put.
    """
    speed = np.asarray(speed_mps, dtype=float)[:, None]
    accel = np.asarray(acceleration_mps2, dtype=float)[:, None]
    t = np.asarray(times_s, dtype=float)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        stop_time = np.where(accel < 0, speed / -accel, np.inf)
    moving_time = np.minimum(t, stop_time)
    distance = speed * moving_time + 0.5 * accel * moving_time**2
    current_speed = np.maximum(0.0, speed + accel * moving_time)
    return distance, current_speed


def predict_paths(
    states: Sequence[KinematicState], times_s: FloatArray, model: MotionModel = MotionModel.CONSTANT_ACCELERATION
) -> FloatArray:
    """Predicted (x, y) of every object at every time: shape (objects, times, 2)."""
    if not states:
        return np.zeros((0, len(times_s), 2))
    x = np.array([s.x_m for s in states])
    y = np.array([s.y_m for s in states])
    speed = np.array([s.speed_mps for s in states])
    heading = np.radians(np.array([s.heading_deg for s in states]))
    if model is MotionModel.CONSTANT_VELOCITY:
        accel = np.zeros_like(speed)
    else:
        accel = np.array([s.acceleration_mps2 for s in states])
    distance, _ = travelled_distance(speed, accel, times_s)

    if model is not MotionModel.CONSTANT_TURN_RATE:
        east = x[:, None] + distance * np.sin(heading)[:, None]
        north = y[:, None] + distance * np.cos(heading)[:, None]
        return np.stack([east, north], axis=-1)

    # CTRA: integrate each step's travelled distance along the heading at the step's midpoint,
    # which is exact for a circular arc up to the chord/arc difference (negligible at 0.1 s).
    yaw_rate = np.radians(np.array([s.yaw_rate_dps for s in states]))
    times = np.asarray(times_s, dtype=float)
    step_distance = np.diff(distance, axis=1)
    mid_times = 0.5 * (times[1:] + times[:-1])
    mid_heading = heading[:, None] + yaw_rate[:, None] * mid_times[None, :]
    east_steps = np.concatenate([x[:, None], step_distance * np.sin(mid_heading)], axis=1)
    north_steps = np.concatenate([y[:, None], step_distance * np.cos(mid_heading)], axis=1)
    return np.stack([np.cumsum(east_steps, axis=1), np.cumsum(north_steps, axis=1)], axis=-1)


def predict_path(
    state: KinematicState, times_s: FloatArray, model: MotionModel = MotionModel.CONSTANT_ACCELERATION
) -> FloatArray:
    """Predicted (x, y) of one object at every time: shape (times, 2)."""
    return predict_paths([state], times_s, model)[0]


def time_to_travel(distance_m: float, speed_mps: float, acceleration_mps2: float) -> float | None:
    """Time to cover distance_m under constant acceleration, or None if the object stops short."""
    if distance_m <= 0:
        return 0.0
    if abs(acceleration_mps2) < 1e-9:
        return distance_m / speed_mps if speed_mps > 0 else None
    discriminant = speed_mps**2 + 2.0 * acceleration_mps2 * distance_m
    if discriminant < 0:
        return None  # braking to a stop before covering the distance
    return float((-speed_mps + np.sqrt(discriminant)) / acceleration_mps2)
