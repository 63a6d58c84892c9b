"""Constant-velocity Kalman filter: real dt from timestamps, speed and acceleration estimates."""

from __future__ import annotations

import numpy as np
import pytest

from rsu.perception.kalman import PEDESTRIAN_NOISE, VEHICLE_NOISE, ConstantVelocityKalman


def test_converges_to_the_true_velocity_with_noisy_positions() -> None:
    rng = np.random.default_rng(1)
    kalman = ConstantVelocityKalman(0.0, 0.0, 0.0, VEHICLE_NOISE)
    for i in range(1, 60):
        t = i * 0.1
        kalman.predict(t)
        kalman.update(6.0 * t + rng.normal(0, 0.3), -8.0 * t + rng.normal(0, 0.3))
    assert kalman.vx == pytest.approx(6.0, abs=0.8)
    assert kalman.vy == pytest.approx(-8.0, abs=0.8)
    assert kalman.speed_mps == pytest.approx(10.0, abs=0.8)


def test_uneven_frame_intervals_use_the_real_dt() -> None:
    kalman = ConstantVelocityKalman(0.0, 0.0, 0.0, VEHICLE_NOISE)
    times = [0.1, 0.15, 0.4, 0.45, 0.9, 1.0, 1.3, 1.32, 1.6, 2.0, 2.05, 2.5]
    for t in times:
        kalman.predict(t)
        kalman.update(0.0, 10.0 * t)
    assert kalman.vy == pytest.approx(10.0, abs=0.3)
    kalman.predict(3.5)  # one second of coasting moves it 10 m on
    assert kalman.y == pytest.approx(35.0, abs=0.5)


def test_prediction_is_the_same_in_one_step_or_many() -> None:
    one = ConstantVelocityKalman(0.0, 0.0, 0.0, VEHICLE_NOISE)
    many = ConstantVelocityKalman(0.0, 0.0, 0.0, VEHICLE_NOISE)
    for kalman in (one, many):
        kalman.predict(0.1)
        kalman.update(1.0, 0.5)
    one.predict(1.1)
    for t in np.linspace(0.2, 1.1, 10):
        many.predict(float(t))
    assert (one.x, one.y, one.p_pos, one.p_pos_vel, one.p_vel) == pytest.approx(
        (many.x, many.y, many.p_pos, many.p_pos_vel, many.p_vel)
    )


def test_predicting_backwards_raises() -> None:
    kalman = ConstantVelocityKalman(0.0, 0.0, 5.0, VEHICLE_NOISE)
    with pytest.raises(ValueError, match="backwards"):
        kalman.predict(4.9)


def test_acceleration_of_a_braking_vehicle() -> None:
    rng = np.random.default_rng(2)
    kalman = ConstantVelocityKalman(0.0, 0.0, 0.0, VEHICLE_NOISE)
    y, speed = 0.0, 12.0
    for i in range(1, 41):
        t = i * 0.1
        if t > 1.5:
            speed = max(0.0, speed - 3.0 * 0.1)
        y += speed * 0.1
        kalman.predict(t)
        kalman.update(rng.normal(0, 0.2), y + rng.normal(0, 0.2))
        if i == 3:
            kalman.start_acceleration_estimate()
    assert speed > 3.0  # still braking at the end
    assert kalman.acceleration_mps2 == pytest.approx(-3.0, abs=1.0)


def test_a_standing_pedestrian_reads_nearly_zero_speed() -> None:
    rng = np.random.default_rng(3)
    kalman = ConstantVelocityKalman(0.0, 0.0, 0.0, PEDESTRIAN_NOISE)
    speeds = []
    for i in range(1, 300):
        kalman.predict(i * 0.1)
        kalman.update(rng.normal(0, 0.3), rng.normal(0, 0.3))
        speeds.append(kalman.speed_mps)
    assert np.median(speeds[20:]) < 0.3
