"""Short-horizon trajectory prediction for road users.

Headings follow TrackedObject: degrees clockwise from north, so the velocity is
(speed * sin(heading), speed * cos(heading)) in the east/north frame. Three models:

- constant velocity (CV): straight line at the current speed;
- constant acceleration (CA): straight line, speed changing at the current acceleration but
  never below zero (a braking vehicle stops, it does not reverse);
- constant turn rate and acceleration (CTRA): the CA speed profile along an arc turning at a
  given yaw rate. Tracks carry no yaw rate, so callers supply it when they have one.

Two optional limits per object keep predictions on the road: ``stop_within_m`` ends the path at
that distance (a vehicle that will stop at its red stop line), ``max_turn_deg`` ends a turn after
that much heading change (a turning vehicle straightens out on its exit leg instead of circling).

Everything is vectorised over objects and prediction times. The deceleration helpers at the end
answer "how hard must this road user brake to avoid that one" (DRAC) in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from rsu_contracts.messages.perception import TrackedObject

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
    # The path ends here (metres along it): e.g. the stop line of a vehicle that will stop at a red.
    stop_within_m: float = math.inf
    # The turn ends after this much heading change (degrees, CTRA only).
    max_turn_deg: float = math.inf

    @classmethod
    def from_track(
        cls,
        track: TrackedObject,
        yaw_rate_dps: float = 0.0,
        stop_within_m: float = math.inf,
        max_turn_deg: float = math.inf,
    ) -> KinematicState:
        return cls(
            track.x_m,
            track.y_m,
            track.speed_mps,
            track.heading_deg,
            track.acceleration_mps2,
            yaw_rate_dps,
            stop_within_m,
            max_turn_deg,
        )


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
    speed_mps: FloatArray,
    acceleration_mps2: FloatArray,
    times_s: FloatArray,
    stop_within_m: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Distance along the path and speed at each time, shape (objects, times).

    The speed is clamped at zero: after a braking object stops it stays put. With stop_within_m an
    object also stays put once it has covered that distance (its speed is then 0).
    """
    speed = np.asarray(speed_mps, dtype=float)[:, None]
    accel = np.asarray(acceleration_mps2, dtype=float)[:, None]
    t = np.asarray(times_s, dtype=float)[None, :]
    # A tiny deceleration overflows to an infinite stopping time: the object never stops, as meant.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        stop_time = np.where(accel < 0, speed / -accel, np.inf)
    moving_time = np.minimum(t, stop_time)
    distance = speed * moving_time + 0.5 * accel * moving_time**2
    current_speed = np.maximum(0.0, speed + accel * moving_time)
    if stop_within_m is not None:
        limit = np.asarray(stop_within_m, dtype=float)[:, None]
        held = distance >= limit
        distance = np.where(held, limit, distance)
        current_speed = np.where(held, 0.0, current_speed)
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
    limits = np.array([s.stop_within_m for s in states])
    distance, _ = travelled_distance(speed, accel, times_s, limits if np.isfinite(limits).any() else None)

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
    max_turn = np.radians(np.array([s.max_turn_deg for s in states]))[:, None]
    mid_heading = heading[:, None] + np.clip(yaw_rate[:, None] * mid_times[None, :], -max_turn, max_turn)
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


# --- deceleration required to avoid a conflict (DRAC) ------------------------------------------
# Closed forms for a road user braking at a constant rate from its current speed. math.inf means
# no braking avoids it (already too close); 0.0 means no braking is needed.

# Bisection bounds for the rear-end case: beyond ~10 m/s² no road vehicle brakes anyway.
_DRAC_SEARCH_MAX_MPS2 = 50.0
_DRAC_SEARCH_STEPS = 24  # 50 / 2**24: far below any meaningful difference


def deceleration_to_stop(distance_m: float, speed_mps: float) -> float:
    """Constant deceleration that stops within distance_m: v² / (2 d)."""
    if speed_mps <= 0:
        return 0.0
    if distance_m <= 0:
        return math.inf
    return speed_mps**2 / (2.0 * distance_m)


def deceleration_to_yield(distance_m: float, speed_mps: float, clear_at_s: float) -> float:
    """Least constant deceleration that keeps a road user from covering distance_m before clear_at_s.

    Either it slows so it arrives just as the conflict area clears, or, if that would need a stop
    first, it stops short: the smaller of the two that works (both use the current speed).
    """
    if speed_mps <= 0 or clear_at_s <= 0 or speed_mps * clear_at_s <= distance_m:
        return 0.0
    if distance_m <= 0:
        return math.inf
    if math.isinf(clear_at_s):
        return deceleration_to_stop(distance_m, speed_mps)  # the area never clears: stop short
    arrive_late = 2.0 * (speed_mps * clear_at_s - distance_m) / clear_at_s**2
    if speed_mps / arrive_late >= clear_at_s:
        return arrive_late  # still rolling when the area clears
    return deceleration_to_stop(distance_m, speed_mps)


def rear_end_drac(
    gap_m: float, follower_speed_mps: float, leader_speed_mps: float, leader_acceleration_mps2: float
) -> float:
    """Deceleration the follower needs so the bumper gap never closes (SUMO SSM's DRAC, generalised).

    With the leader at constant speed this is the textbook (v_f - v_l)² / (2 gap). A braking leader
    (acceleration < 0) is followed to its stop; an accelerating one is taken at constant speed, so
    noise in its acceleration never hides a conflict.
    """
    if gap_m <= 0:
        return math.inf
    leader_braking = max(0.0, -leader_acceleration_mps2)
    closing = follower_speed_mps - leader_speed_mps
    if leader_braking == 0.0:
        return closing**2 / (2.0 * gap_m) if closing > 0 else 0.0
    if _min_rear_end_gap(gap_m, follower_speed_mps, leader_speed_mps, leader_braking, 0.0) >= 0:
        return 0.0
    low, high = 0.0, _DRAC_SEARCH_MAX_MPS2
    if _min_rear_end_gap(gap_m, follower_speed_mps, leader_speed_mps, leader_braking, high) < 0:
        return math.inf
    for _ in range(_DRAC_SEARCH_STEPS):  # the minimum gap grows with the follower's deceleration
        middle = 0.5 * (low + high)
        if _min_rear_end_gap(gap_m, follower_speed_mps, leader_speed_mps, leader_braking, middle) >= 0:
            high = middle
        else:
            low = middle
    return high


def _min_rear_end_gap(
    gap_m: float, follower_mps: float, leader_mps: float, leader_braking: float, braking: float
) -> float:
    """Smallest gap over all future times when the follower brakes at `braking` and the leader at
    `leader_braking` (both > 0 here or braking == 0), each stopping for good at zero speed."""
    follower_stop_s = follower_mps / braking if braking > 0 else math.inf
    leader_stop_s = leader_mps / leader_braking
    if math.isinf(follower_stop_s):
        return -math.inf if follower_mps > 0 else gap_m  # the leader stops, the follower never does

    def gap_at(t: float) -> float:
        tf, tl = min(t, follower_stop_s), min(t, leader_stop_s)
        follower = follower_mps * tf - 0.5 * braking * tf**2
        leader = leader_mps * tl - 0.5 * leader_braking * tl**2
        return gap_m + leader - follower

    candidates = [0.0, follower_stop_s, leader_stop_s]
    if braking != leader_braking:
        equal_speed_s = (follower_mps - leader_mps) / (braking - leader_braking)
        if 0 < equal_speed_s < min(follower_stop_s, leader_stop_s):
            candidates.append(equal_speed_s)
    return min(gap_at(t) for t in candidates)
