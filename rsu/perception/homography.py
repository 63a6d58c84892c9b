"""Image pixels <-> ground metres for a fixed camera over a flat road.

A plane-to-plane homography fitted to calibration points (pixel, ground) from the site file.
Only points on the ground plane map correctly, which is why a detector projects the bottom
centre of a box (where the road user touches the road), not its centre.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import cv2
import numpy as np
import numpy.typing as npt

from rsu_contracts.config.model import CalibrationPoint

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

MIN_POINTS = 4
# Three calibration points closer to a line than this share of the spread of the points make the fit degenerate.
COLLINEAR_TOLERANCE = 1e-3


class HomographyError(ValueError):
    """The calibration points cannot define an image-to-ground mapping."""


# eq=False: the fields are numpy arrays, which have no single truth value to compare.
@dataclass(frozen=True, eq=False)
class Homography:
    """A fitted mapping between image pixels (x right, y down) and ground metres (x east, y north)."""

    image_to_ground_matrix: FloatArray  # 3x3
    image_points_px: FloatArray  # (N, 2) calibration points used for the fit
    ground_points_m: FloatArray  # (N, 2)

    @classmethod
    def from_points(cls, points: Sequence[CalibrationPoint]) -> Homography:
        """Least-squares fit over all points (cv2.findHomography without RANSAC: every point is surveyed)."""
        if len(points) < MIN_POINTS:
            raise HomographyError(f"a homography needs at least {MIN_POINTS} calibration points, got {len(points)}")
        image = np.array([p.image_px for p in points], dtype=np.float64)
        ground = np.array([p.ground_m for p in points], dtype=np.float64)
        if not (np.all(np.isfinite(image)) and np.all(np.isfinite(ground))):
            raise HomographyError("calibration points hold non-finite coordinates")
        _require_general_position(image, "image_px")
        _require_general_position(ground, "ground_m")
        matrix, _ = cv2.findHomography(image, ground, method=0)
        if matrix is None or not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-12:
            raise HomographyError("calibration points give no usable homography (degenerate configuration)")
        homography = cls(np.asarray(matrix, dtype=np.float64), image, ground)
        # A fit that puts calibration points on both sides of the horizon folds the plane: no camera sees that.
        signs = np.sign(homography._denominators(image))
        if not np.all(signs == signs[0]):
            raise HomographyError("calibration points are inconsistent: no single ground plane fits them")
        if homography.is_mirrored:
            log.warning(
                "the calibration maps the image mirrored onto the ground; are ground_m x (east) and y (north) "
                "swapped? (only a horizontally flipped video would need this)"
            )
        return homography

    @property
    def is_mirrored(self) -> bool:
        """True if image and ground have the same handedness, as for a flipped video or swapped ground axes.

        Seen from above, a camera's image (x right, y down) is the mirror of the ground (x east, y north):
        the local Jacobian determinant det(H) / w^3 of the image-to-ground map is negative.
        """
        jacobian_signs = np.sign(
            np.linalg.det(self.image_to_ground_matrix) / self._denominators(self.image_points_px) ** 3
        )
        return bool(np.all(jacobian_signs > 0))

    @property
    def ground_to_image_matrix(self) -> FloatArray:
        return np.asarray(np.linalg.inv(self.image_to_ground_matrix), dtype=np.float64)

    def image_to_ground(self, points_px: npt.ArrayLike) -> FloatArray:
        """(N, 2) ground metres of (N, 2) pixels; NaN for pixels at or above the horizon (not on the ground)."""
        pixels = _as_points(points_px)
        ground = _apply(self.image_to_ground_matrix, pixels)
        # Pixels on the far side of the horizon project to points "behind" the camera: the homogeneous
        # denominator changes sign relative to the calibration points.
        reference_sign = np.sign(self._denominators(self.image_points_px[:1]))[0]
        beyond_horizon = np.sign(self._denominators(pixels)) != reference_sign
        ground[beyond_horizon] = np.nan
        return ground

    def ground_to_image(self, points_m: npt.ArrayLike) -> FloatArray:
        """(N, 2) pixels of (N, 2) ground points (may lie outside the frame)."""
        return _apply(self.ground_to_image_matrix, _as_points(points_m))

    def reprojection_error_m(self) -> float:
        """RMS distance in metres between the calibration ground points and their pixels mapped to the ground."""
        mapped = _apply(self.image_to_ground_matrix, self.image_points_px)
        return float(np.sqrt(np.mean(np.sum((mapped - self.ground_points_m) ** 2, axis=1))))

    def _denominators(self, pixels: FloatArray) -> FloatArray:
        return np.asarray(pixels @ self.image_to_ground_matrix[2, :2] + self.image_to_ground_matrix[2, 2])


def _as_points(points: npt.ArrayLike) -> FloatArray:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim == 1 and array.shape == (2,):
        array = array.reshape(1, 2)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"expected points of shape (N, 2), got {array.shape}")
    return array


def _apply(matrix: FloatArray, points: FloatArray) -> FloatArray:
    homogeneous = points @ matrix[:, :2].T + matrix[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(homogeneous[:, :2] / homogeneous[:, 2:3], dtype=np.float64)


def _require_general_position(points: FloatArray, field: str) -> None:
    """At least four points of which no three are collinear; otherwise the fit is not unique."""
    spread = float(np.max(np.ptp(points, axis=0)))
    if spread == 0.0:
        raise HomographyError(f"calibration {field}: all points coincide")
    tolerance = COLLINEAR_TOLERANCE * spread**2
    # Four points in general position exist iff some 4-subset has no collinear triple; sites have few points.
    for quad in combinations(range(len(points)), MIN_POINTS):
        if all(abs(_twice_triangle_area(points[list(triple)])) > tolerance for triple in combinations(quad, 3)):
            return
    raise HomographyError(
        f"calibration {field}: no four points with three of them off a common line "
        "(points repeat or lie on a line); spread them over the road surface"
    )


def _twice_triangle_area(triangle: FloatArray) -> float:
    (ax, ay), (bx, by), (cx, cy) = triangle
    return float((bx - ax) * (cy - ay) - (by - ay) * (cx - ax))
