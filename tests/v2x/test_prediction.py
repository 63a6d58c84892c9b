"""Trajectory prediction: constant velocity, constant acceleration, constant turn rate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from v2x.prediction import (
    KinematicState,
    MotionModel,
    deceleration_to_stop,
    deceleration_to_yield,
    heading_difference_deg,
    predict_path,
    predict_paths,
    prediction_times,
    rear_end_drac,
    time_to_travel,
    travelled_distance,
)


def test_prediction_times_cover_the_horizon() -> None:
    times = prediction_times(4.0, 0.1)
    assert len(times) == 41
    assert times[0] == 0.0
    assert times[-1] == pytest.approx(4.0)


def test_constant_velocity_heading_east_and_north() -> None:
    times = np.array([0.0, 1.0, 2.0])
    east = predict_path(KinematicState(0, 0, 10, 90), times, MotionModel.CONSTANT_VELOCITY)
    north = predict_path(KinematicState(5, 5, 2, 0), times, MotionModel.CONSTANT_VELOCITY)
    np.testing.assert_allclose(east, [[0, 0], [10, 0], [20, 0]], atol=1e-9)
    np.testing.assert_allclose(north, [[5, 5], [5, 7], [5, 9]], atol=1e-9)


def test_constant_velocity_ignores_acceleration() -> None:
    path = predict_path(
        KinematicState(0, 0, 10, 0, acceleration_mps2=-5), np.array([2.0]), MotionModel.CONSTANT_VELOCITY
    )
    np.testing.assert_allclose(path, [[0, 20]], atol=1e-9)


def test_constant_acceleration_braking_stops_and_never_reverses() -> None:
    # 10 m/s braking at 5 m/s²: stops after 2 s and 10 m.
    path = predict_path(KinematicState(0, 0, 10, 0, acceleration_mps2=-5), np.array([1.0, 2.0, 4.0]))
    np.testing.assert_allclose(path[:, 1], [7.5, 10.0, 10.0], atol=1e-9)


def test_constant_acceleration_speeding_up() -> None:
    path = predict_path(KinematicState(0, 0, 0, 180, acceleration_mps2=2), np.array([3.0]))
    np.testing.assert_allclose(path, [[0, -9.0]], atol=1e-9)


def test_constant_turn_rate_follows_a_circle() -> None:
    # 10 m/s turning right at 18°/s: a quarter circle of radius v / ω in 5 s.
    yaw_rate = 18.0
    radius = 10.0 / math.radians(yaw_rate)
    times = prediction_times(5.0, 0.05)
    path = predict_path(KinematicState(0, 0, 10, 0, yaw_rate_dps=yaw_rate), times, MotionModel.CONSTANT_TURN_RATE)
    np.testing.assert_allclose(path[-1], [radius, radius], atol=0.01)
    # Every point stays on the circle centred at (radius, 0).
    np.testing.assert_allclose(np.hypot(path[:, 0] - radius, path[:, 1]), radius, atol=0.01)


def test_predict_paths_shape_and_empty() -> None:
    times = prediction_times(2.0)
    states = [KinematicState(0, 0, 1, 0), KinematicState(1, 1, 2, 90), KinematicState(2, 2, 0, 0)]
    assert predict_paths(states, times).shape == (3, len(times), 2)
    assert predict_paths([], times).shape == (0, len(times), 2)


def test_time_to_travel() -> None:
    assert time_to_travel(20.0, 10.0, 0.0) == pytest.approx(2.0)
    assert time_to_travel(9.0, 0.0, 2.0) == pytest.approx(3.0)
    assert time_to_travel(7.5, 10.0, -5.0) == pytest.approx(1.0)
    assert time_to_travel(20.0, 10.0, -5.0) is None  # stops after 10 m
    assert time_to_travel(5.0, 0.0, 0.0) is None
    assert time_to_travel(0.0, 3.0, 0.0) == 0.0


@pytest.mark.parametrize(("a", "b", "difference"), [(10, 350, 20), (0, 180, 180), (90, 90, 0), (359, 1, 2)])
def test_heading_difference_wraps(a: float, b: float, difference: float) -> None:
    assert heading_difference_deg(a, b) == pytest.approx(difference)


def test_paths_end_where_told_to_stop() -> None:
    # 10 m/s towards a stop line 12 m ahead: the path stops there and the speed drops to zero.
    times = np.array([0.0, 1.0, 2.0, 3.0])
    path = predict_path(KinematicState(0, 0, 10, 0, stop_within_m=12.0), times)
    np.testing.assert_allclose(path[:, 1], [0.0, 10.0, 12.0, 12.0])
    _, speed = travelled_distance(np.array([10.0]), np.array([0.0]), times, np.array([12.0]))
    np.testing.assert_allclose(speed[0], [10.0, 10.0, 0.0, 0.0])


def test_turns_end_after_the_allowed_heading_change() -> None:
    # 10 m/s turning right at 45°/s, but only 90° more: straight east after 2 s.
    times = prediction_times(4.0, 0.05)
    path = predict_path(
        KinematicState(0, 0, 10, 0, yaw_rate_dps=45.0, max_turn_deg=90.0), times, MotionModel.CONSTANT_TURN_RATE
    )
    tail = np.diff(path[-10:], axis=0)
    np.testing.assert_allclose(tail[:, 1], 0.0, atol=1e-9)  # heading east: no northing any more
    assert np.all(tail[:, 0] > 0)


def test_rear_end_drac_with_a_leader_at_constant_speed() -> None:
    # SUMO SSM: (v_follower - v_leader)² / (2 gap).
    assert rear_end_drac(28.0, 18.0, 4.0, 0.0) == pytest.approx(14.0**2 / 56.0)
    assert rear_end_drac(10.0, 13.0, 13.0, 0.0) == 0.0  # equal speed
    assert rear_end_drac(10.0, 10.0, 13.0, 2.0) == 0.0  # pulling away
    assert rear_end_drac(0.0, 10.0, 0.0, 0.0) == math.inf


def test_rear_end_drac_follows_a_braking_leader_to_its_stop() -> None:
    # Both at 14 m/s, 10 m apart, leader braking at 8 m/s²: it stops after 12.25 m, so the follower
    # has 22.25 m to stop in: 196 / 44.5 = 4.4 m/s².
    assert rear_end_drac(10.0, 14.0, 14.0, -8.0) == pytest.approx(196.0 / 44.5, rel=1e-4)
    # A stopped leader: v² / (2 gap).
    assert rear_end_drac(20.0, 10.0, 0.0, -1.0) == pytest.approx(2.5, rel=1e-4)


def test_deceleration_to_stop_and_to_yield() -> None:
    assert deceleration_to_stop(25.0, 10.0) == pytest.approx(2.0)
    assert deceleration_to_stop(0.0, 1.0) == math.inf
    assert deceleration_to_stop(5.0, 0.0) == 0.0
    # 10 m/s, 20 m to the area, which clears in 1.5 s: at constant speed it would be there at 2 s.
    assert deceleration_to_yield(20.0, 10.0, 1.5) == 0.0
    # Clears in 3 s: slow down so as to arrive at 3 s, still rolling: 2 (30 - 20) / 9.
    assert deceleration_to_yield(20.0, 10.0, 3.0) == pytest.approx(20.0 / 9.0)
    # Clears in 10 s (or never): stopping short is the way, v² / (2 d).
    assert deceleration_to_yield(20.0, 10.0, 10.0) == pytest.approx(2.5)
    assert deceleration_to_yield(20.0, 10.0, math.inf) == pytest.approx(2.5)
    assert deceleration_to_yield(-1.0, 10.0, 3.0) == math.inf
