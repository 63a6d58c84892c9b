"""Homography: a fit from calibration points, the round trip, the horizon and degenerate input."""

from __future__ import annotations

import numpy as np
import pytest

from rsu.perception.homography import Homography, HomographyError
from rsu_contracts.config.model import CalibrationPoint

# A camera looking north over a flat road: ground (x east, y north) -> pixels of an 800x600 frame.
# Row v = (5 y + 662.5) / (0.05 y + 1): 550 at 5 m, 325 at 30 m, the horizon (y -> infinity) at 100.
GROUND_TO_IMAGE = np.array([[40.0, 20.0, 400.0], [0.0, 5.0, 662.5], [0.0, 0.05, 1.0]])
HORIZON_ROW = 100.0


def camera_pixels(ground: np.ndarray) -> np.ndarray:
    homogeneous = np.column_stack((ground, np.ones(len(ground)))) @ GROUND_TO_IMAGE.T
    return homogeneous[:, :2] / homogeneous[:, 2:]


def calibration(ground: list[tuple[float, float]]) -> list[CalibrationPoint]:
    pixels = camera_pixels(np.array(ground))
    return [
        CalibrationPoint(image_px=(float(u), float(v)), ground_m=g) for (u, v), g in zip(pixels, ground, strict=True)
    ]


SURVEY = [(-8.0, 5.0), (8.0, 5.0), (10.0, 30.0), (-10.0, 30.0), (0.0, 15.0)]


def test_exact_points_give_zero_reprojection_error_and_a_round_trip() -> None:
    homography = Homography.from_points(calibration(SURVEY))
    assert homography.reprojection_error_m() < 1e-6
    ground = np.array([[0.0, 10.0], [-5.0, 40.0], [12.0, 2.0]])
    pixels = homography.ground_to_image(ground)
    np.testing.assert_allclose(pixels, camera_pixels(ground), atol=1e-6)
    np.testing.assert_allclose(homography.image_to_ground(pixels), ground, atol=1e-6)


def test_a_single_point_is_accepted_and_the_result_is_always_n_by_2() -> None:
    homography = Homography.from_points(calibration(SURVEY))
    assert homography.image_to_ground([400.0, 500.0]).shape == (1, 2)
    assert homography.image_to_ground(np.zeros((0, 2))).shape == (0, 2)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        homography.image_to_ground(np.zeros((3, 3)))


def test_reprojection_error_is_the_rms_of_the_ground_residuals_in_metres() -> None:
    points = calibration(SURVEY)
    # Move one surveyed ground point by 0.5 m: a least-squares fit spreads the error over all points.
    moved = CalibrationPoint(image_px=points[4].image_px, ground_m=(0.5, 15.0))
    error = Homography.from_points([*points[:4], moved]).reprojection_error_m()
    assert 0.05 < error < 0.5


def test_pixels_above_the_horizon_have_no_ground_position() -> None:
    homography = Homography.from_points(calibration(SURVEY))
    assert camera_pixels(np.array([[0.0, 1e9]]))[0, 1] == pytest.approx(HORIZON_ROW)
    ground = homography.image_to_ground([[400.0, HORIZON_ROW - 20.0], [400.0, HORIZON_ROW + 20.0]])
    assert np.all(np.isnan(ground[0]))
    assert np.all(np.isfinite(ground[1]))


def test_fewer_than_four_points_is_an_error_that_says_how_many() -> None:
    with pytest.raises(HomographyError, match="at least 4 calibration points, got 3"):
        Homography.from_points(calibration(SURVEY[:3]))


def test_collinear_points_are_rejected() -> None:
    on_a_line = [(0.0, 5.0), (0.0, 10.0), (0.0, 20.0), (0.0, 30.0), (0.0, 40.0)]
    with pytest.raises(HomographyError, match="line"):
        Homography.from_points(calibration(on_a_line))


def test_three_collinear_of_four_points_are_rejected() -> None:
    points = [(-8.0, 5.0), (0.0, 5.0), (8.0, 5.0), (0.0, 30.0)]
    with pytest.raises(HomographyError, match="line"):
        Homography.from_points(calibration(points))


def test_repeated_points_are_rejected() -> None:
    points = calibration(SURVEY[:2]) * 2
    with pytest.raises(HomographyError):
        Homography.from_points(points)


def test_coinciding_points_are_rejected() -> None:
    points = [CalibrationPoint(image_px=(100.0, 100.0), ground_m=(1.0, 1.0))] * 4
    with pytest.raises(HomographyError, match="coincide"):
        Homography.from_points(points)


def test_a_camera_above_the_road_is_not_mirrored_but_swapped_ground_axes_are() -> None:
    points = calibration(SURVEY)
    assert not Homography.from_points(points).is_mirrored
    swapped = [CalibrationPoint(image_px=p.image_px, ground_m=(p.ground_m[1], p.ground_m[0])) for p in points]
    assert Homography.from_points(swapped).is_mirrored
