"""Calibration points of the JamCam site from an assumed pinhole camera (prints the YAML block).

    python datasets/jamcam/build.py

No surveyed points exist for this TfL camera, so the image-to-ground mapping comes from a camera
model fitted by eye to the 352x288 picture: focal length 338 px (about 55 degrees across), principal
point at the image centre, looking straight up the road, tilted 32 degrees down (the road's
vanishing point lies about 70 px above the picture), 9 m above the road (a car 1.8 m wide near the
bottom is about 56 px wide). Ground frame: metres east (right in the picture) and north (up the
road) of the camera's foot. Distances and speeds are therefore approximate (perhaps 20-30 %); the
clips' ground truth is in pixels, so detection and tracking scores do not depend on it.
"""

from __future__ import annotations

import math

FOCAL_PX = 338.0
PRINCIPAL_POINT_PX = (176.0, 144.0)
TILT_DEG = 32.0
HEIGHT_M = 9.0
# Spread over the road area of the picture.
CALIBRATION_PIXELS = [(60.0, 270.0), (300.0, 270.0), (120.0, 120.0), (240.0, 120.0), (176.0, 60.0)]


def image_to_ground(u: float, v: float) -> tuple[float, float]:
    """Where the ray through pixel (u, v) meets the road (z = 0)."""
    tilt = math.radians(TILT_DEG)
    cx, cy = PRINCIPAL_POINT_PX
    a, b = (u - cx) / FOCAL_PX, (v - cy) / FOCAL_PX
    # Camera axes in the ground frame: right (1, 0, 0); down (0, -sin, -cos); forward (0, cos, -sin).
    ray_x = a
    ray_y = -b * math.sin(tilt) + math.cos(tilt)
    ray_z = -b * math.cos(tilt) - math.sin(tilt)
    if ray_z >= 0:
        raise ValueError(f"pixel ({u}, {v}) lies above the horizon")
    t = HEIGHT_M / -ray_z
    return t * ray_x, t * ray_y


def main() -> None:
    print("    calibration:")
    for u, v in CALIBRATION_PIXELS:
        x, y = image_to_ground(u, v)
        print(f"      - {{image_px: [{u:.1f}, {v:.1f}], ground_m: [{x:.3f}, {y:.3f}]}}")


if __name__ == "__main__":
    main()
