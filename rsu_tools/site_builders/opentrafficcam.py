"""Regenerate datasets/opentrafficcam/site.yaml from the OpenTrafficCam files.

    python datasets/opentrafficcam/build.py            # rewrite site.yaml
    python datasets/opentrafficcam/build.py --check    # exit 1 if site.yaml differs from a rebuild
    python datasets/opentrafficcam/build.py --overlay /tmp/check.png   # draw the geometry on frame 0

Inputs (in the shared footage folder, never copied into the repository):
- Testvideo_FR20.otrfpts: 5 reference points, pixel -> UTM zone 32N.
- Testvideo.otflow: the four counting sections South/West/North/East, in pixels.

Steps: the UTM points go to WGS-84 (Krüger series) and then to the site's local east/north frame.
Subtracting an origin from UTM alone would not do: UTM grid north is rotated from true north by
the meridian convergence (3.8 degrees here, 4.9 degrees east of the zone's central meridian) and
scaled by 1.001. The origin is the junction centre (mean of the section end points) rounded to
the UTM metre. The homography fitted to the points projects the sections to the ground. Lane
centre lines were read off the image with the ground grid of --overlay (where the vehicles in
the clip drive) and end where they cross their approach's section.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsu.perception.homography import Homography
from rsu.samples import DATASETS_DIR, OPENTRAFFICCAM_SITE
from rsu_contracts.config.model import CalibrationPoint
from rsu_tools.site_builders.geodesy import geodetic_to_local, utm_to_geodetic

SITE_FILE = OPENTRAFFICCAM_SITE
FOOTAGE_SUBDIR = Path("footage") / "opentrafficcam"
REFERENCE_POINTS_FILE = "Testvideo_FR20.otrfpts"
SECTIONS_FILE = "Testvideo.otflow"
CLIP = "Testvideo_FR20_2020-02-20_13-11-00.mp4"
IMAGE_SIZE_PX = (800, 600)

# Lane centre lines in site metres, upstream to junction, read off the frame with a ground grid
# drawn over it. Vehicles drive at about y = -0.8 eastbound and y = 2.6 westbound (their box
# bottoms sit about 1 m nearer the camera, which stands north-east of the junction). The south leg
# runs between kerbs at about x = -10 and x = 5.5 with a dashed line near x = 1; its northbound lane
# is the eastern half. The north leg is outside the picture (north of y = 10, east of x = 6; a car
# turning into it leaves the frame at x = 13): its lane is a plausible guess. Each centre line is
# extended or cut to end on its approach's section.
LANE_SKETCH_M: dict[str, list[tuple[float, float]]] = {
    "west": [(-60.0, -0.8), (-30.0, -0.8), (-20.0, -0.8)],
    "east": [(40.0, 2.6), (20.0, 2.6), (12.0, 2.6)],
    "south": [(3.5, -40.0), (3.0, -20.0), (3.0, -10.0)],
    "north": [(10.0, 40.0), (9.5, 15.0), (9.5, 8.0)],
}
# OTC section name -> counting line id and the approach whose leg it cuts.
SECTION_IDS = {"South": "south", "West": "west", "North": "north", "East": "east"}


@dataclass(frozen=True)
class OtcGeometry:
    origin_utm: tuple[float, float]
    utm_zone: int
    reference_lat_deg: float
    reference_lon_deg: float
    calibration: list[CalibrationPoint]
    counting_lines: dict[str, tuple[tuple[float, float], tuple[float, float]]]
    lane_centerlines: dict[str, list[tuple[float, float]]]
    camera_position_m: tuple[float, float]
    camera_height_m: float
    reprojection_error_m: float


def shared_dir() -> Path:
    """RSU_SHARED_DIR, else ../shared beside the checkout (the layout the tests use)."""
    default = DATASETS_DIR.parents[1] / "shared"
    return Path(os.environ.get("RSU_SHARED_DIR", default))


def build_geometry(footage_dir: Path) -> OtcGeometry:
    points = json.loads((footage_dir / REFERENCE_POINTS_FILE).read_text())
    pixels = np.array([[p["x_px"], p["y_px"]] for p in points.values()], dtype=float)
    utm = np.array([[p["lon_utm"], p["lat_utm"]] for p in points.values()], dtype=float)
    zones = {(p["zone_utm"], p["hemisphere"]) for p in points.values()}
    if len(zones) != 1:
        raise ValueError(f"reference points span several UTM zones: {zones}")
    zone, hemisphere = zones.pop()
    northern = hemisphere == "N"
    sections = _load_sections(footage_dir / SECTIONS_FILE)

    # The junction centre in UTM, from a homography straight to UTM (offset to keep the fit well conditioned).
    utm_mean = utm.mean(axis=0)
    to_utm = Homography.from_points(_calibration(pixels, utm - utm_mean))
    section_ends_px = np.array([end for line in sections.values() for end in line], dtype=float)
    centre = to_utm.image_to_ground(section_ends_px).mean(axis=0) + utm_mean
    origin_e, origin_n = (float(v) for v in np.round(centre))
    latitude, longitude = utm_to_geodetic(origin_e, origin_n, zone, northern)
    latitude, longitude = round(latitude, 7), round(longitude, 7)  # 1e-7 degree is about 1 cm

    local = np.array(
        [geodetic_to_local(*utm_to_geodetic(e, n, zone, northern), latitude, longitude) for e, n in utm]
    ).round(3)
    calibration = _calibration(pixels, local)
    homography = Homography.from_points(calibration)

    counting_lines = {}
    for name, line_px in sections.items():
        a, b = homography.image_to_ground(np.array(line_px, dtype=float)).round(2)
        counting_lines[SECTION_IDS[name]] = ((float(a[0]), float(a[1])), (float(b[0]), float(b[1])))
    lanes = {approach: _end_on_line(sketch, counting_lines[approach]) for approach, sketch in LANE_SKETCH_M.items()}
    camera_xy, camera_height = estimate_camera_position(homography)
    return OtcGeometry(
        origin_utm=(origin_e, origin_n),
        utm_zone=zone,
        reference_lat_deg=latitude,
        reference_lon_deg=longitude,
        calibration=calibration,
        counting_lines=counting_lines,
        lane_centerlines=lanes,
        camera_position_m=camera_xy,
        camera_height_m=camera_height,
        reprojection_error_m=homography.reprojection_error_m(),
    )


def estimate_camera_position(homography: Homography) -> tuple[tuple[float, float], float]:
    """Ground position and height of the camera, assuming square pixels and the principal point at the centre.

    The ground-to-image homography is K [r1 r2 t]; orthogonality of r1 and r2 gives the focal length.
    """
    width, height = IMAGE_SIZE_PX
    shift = np.array([[1.0, 0.0, -width / 2], [0.0, 1.0, -height / 2], [0.0, 0.0, 1.0]])
    g = shift @ homography.ground_to_image_matrix
    h1, h2 = g[:, 0], g[:, 1]
    focal_squared = -(h1[0] * h2[0] + h1[1] * h2[1]) / (h1[2] * h2[2])
    if focal_squared <= 0:
        raise ValueError("the homography is not that of a pinhole camera with square pixels")
    focal = math.sqrt(focal_squared)
    m = np.diag([1 / focal, 1 / focal, 1.0]) @ g
    scale = np.linalg.norm(m[:, 0])
    r1, r2, t = m[:, 0] / scale, m[:, 1] / scale, m[:, 2] / scale
    rotation = np.column_stack((r1, r2, np.cross(r1, r2)))
    centre = -rotation.T @ t
    return (round(float(centre[0]), 1), round(float(centre[1]), 1)), round(abs(float(centre[2])), 1)


def _calibration(pixels: np.ndarray, ground: np.ndarray) -> list[CalibrationPoint]:
    return [
        CalibrationPoint(image_px=(float(p[0]), float(p[1])), ground_m=(float(g[0]), float(g[1])))
        for p, g in zip(pixels, ground, strict=True)
    ]


def _load_sections(path: Path) -> dict[str, list[tuple[int, int]]]:
    sections = json.loads(path.read_text())["sections"]
    return {s["name"]: [(c["x"], c["y"]) for c in s["coordinates"]] for s in sections}


def _end_on_line(
    sketch: list[tuple[float, float]], line: tuple[tuple[float, float], tuple[float, float]]
) -> list[tuple[float, float]]:
    """The centre line with its last point moved to where its last segment (extended) meets the line."""
    (px, py), (qx, qy) = sketch[-2], sketch[-1]
    (ax, ay), (bx, by) = line
    dx, dy, ex, ey = qx - px, qy - py, bx - ax, by - ay
    denominator = dx * ey - dy * ex
    if abs(denominator) < 1e-9:
        raise ValueError("a lane centre line runs parallel to its counting line")
    t = ((ax - px) * ey - (ay - py) * ex) / denominator
    end = (round(px + t * dx, 2), round(py + t * dy, 2))
    return [*sketch[:-1], end]


def render_site_yaml(geometry: OtcGeometry) -> str:
    def point(p: tuple[float, float]) -> str:
        return f"[{_num(p[0])}, {_num(p[1])}]"

    def polyline(points: list[tuple[float, float]]) -> str:
        return "[" + ", ".join(point(p) for p in points) + "]"

    calibration = "\n".join(
        f"      - {{image_px: {point(c.image_px)}, ground_m: {point(c.ground_m)}}}" for c in geometry.calibration
    )
    lines = geometry.counting_lines
    lanes = geometry.lane_centerlines
    origin_e, origin_n = geometry.origin_utm
    return _TEMPLATE.format(
        origin_e=_num(origin_e),
        origin_n=_num(origin_n),
        zone=geometry.utm_zone,
        latitude=f"{geometry.reference_lat_deg:.7f}",
        longitude=f"{geometry.reference_lon_deg:.7f}",
        rms=f"{geometry.reprojection_error_m:.3f}",
        camera_height=_num(geometry.camera_height_m),
        camera_position=point(geometry.camera_position_m),
        calibration=calibration,
        **{f"line_{name}": f"[{point(a)}, {point(b)}]" for name, (a, b) in lines.items()},
        **{f"lane_{name}": polyline(points) for name, points in lanes.items()},
    )


def _num(value: float) -> str:
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


_TEMPLATE = """\
# GENERATED by `python datasets/opentrafficcam/build.py` from the OpenTrafficCam files in
# ${{RSU_SHARED_DIR}}/footage/opentrafficcam/ (GPL-3.0, not part of this repository). Edit build.py, not this file.
#
# A real urban 4-way junction in Germany, filmed from a pole at its north-east corner (camera looks
# west): OTC's test clip Testvideo_FR20_2020-02-20_13-11-00.mp4, 800x600 at 20 fps.
# Local frame: metres east (x) and north (y) of the reference point, the junction centre.
schema_version: 1
unit_id: rsu-otc-001
name: OpenTrafficCam test junction (real footage)
# UTM 32N E {origin_e} N {origin_n} (the junction centre, mean of the OTC section end points, rounded to the
# metre) converted to WGS-84 with the Krüger-series UTM inverse in rsu_tools/site_builders/geodesy.py.
# Altitude unknown.
reference: {{latitude_deg: {latitude}, longitude_deg: {longitude}}}

# Movements and lane positions are read off the video (the clip shows through traffic both ways and a
# left turn from the west into the north leg); widths are plausible, not surveyed.
approaches:
  - id: west
    name: west approach (eastbound traffic)
    lanes:
      - {{id: west_in, movements: [left, through, right], signal_group: "2", width_m: 3.4,
         centerline_m: {lane_west}}}
  - id: east
    name: east approach (westbound traffic)
    lanes:
      - {{id: east_in, movements: [left, through, right], signal_group: "2", width_m: 3.4,
         centerline_m: {lane_east}}}
  - id: south
    name: south approach (northbound traffic from the side street)
    lanes:
      - {{id: south_in, movements: [left, through, right], signal_group: "4", width_m: 3.2,
         centerline_m: {lane_south}}}
  - id: north
    name: north approach (southbound traffic)
    lanes:
      - {{id: north_in, movements: [left, through, right], signal_group: "4", width_m: 3.2,
         centerline_m: {lane_north}}}

# OTC's four sections (Testvideo.otflow; section ids 1 South, 2 West, 3 North, 4 East, as in
# Testvideo.otgtevents.json). Each spans its whole leg, so traffic crosses it entering and leaving.
counting_lines:
  - {{id: south, approach: south, line_m: {line_south}}}
  - {{id: west, approach: west, line_m: {line_west}}}
  - {{id: north, approach: north, line_m: {line_north}}}
  - {{id: east, approach: east, line_m: {line_east}}}

# The real signal plan is unknown (the clip shows no signal heads; it may be unsignalised). A simple
# two-stage plan, main street then side street, so the controller has something to run.
signal_groups:
  - {{id: "2", nema_phase: 2, min_green_s: 10, max_green_s: 40, clearance_width_m: 36}}
  - {{id: "4", nema_phase: 4, min_green_s: 7, max_green_s: 30, clearance_width_m: 18}}
conflicts:
  - ["2", "4"]
controller:
  strategy: actuated
  stages:
    - {{id: main_street, signal_groups: ["2"]}}
    - {{id: side_street, signal_groups: ["4"]}}

cameras:
  - id: otc_pole
    source: video
    uri: ${{RSU_SHARED_DIR:-../../../shared}}/footage/opentrafficcam/Testvideo_FR20_2020-02-20_13-11-00.mp4
    # Estimated from the homography (square pixels, principal point at the image centre); about
    # {camera_height} m above the road.
    position_m: {camera_position}
    # OTC's reference points (Testvideo_FR20.otrfpts), UTM converted to the local frame.
    # RMS reprojection error of the fitted homography: {rms} m.
    calibration:
{calibration}
    detector:
      type: ultralytics
      weights: ${{RSU_SHARED_DIR:-../../../shared}}/models/yolo11n-coco-rebuilt.pt
      imgsz: 640
      confidence: 0.25
      threads: 2
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=None, help="the shared folder (default: RSU_SHARED_DIR)")
    parser.add_argument("--check", action="store_true", help="only compare with site.yaml; exit 1 if it differs")
    parser.add_argument("--overlay", type=Path, default=None, help="also draw the geometry on frame 0 into this PNG")
    args = parser.parse_args(argv)
    footage_dir = (args.shared if args.shared is not None else shared_dir()) / FOOTAGE_SUBDIR
    if not footage_dir.is_dir():
        print(f"OpenTrafficCam files not found in {footage_dir} (set RSU_SHARED_DIR or --shared)", file=sys.stderr)
        return 2
    geometry = build_geometry(footage_dir)
    text = render_site_yaml(geometry)
    if args.overlay is not None:
        draw_overlay(geometry, footage_dir / CLIP, args.overlay)
    if args.check:
        if SITE_FILE.read_text(encoding="utf-8") != text:
            print(f"{SITE_FILE} differs from a rebuild; run python datasets/opentrafficcam/build.py", file=sys.stderr)
            return 1
        print(f"{SITE_FILE} is up to date")
        return 0
    SITE_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {SITE_FILE} (reprojection error {geometry.reprojection_error_m:.3f} m)")
    return 0


def draw_overlay(geometry: OtcGeometry, clip: Path, output: Path) -> None:
    """Frame 0 with a 5 m ground grid, the counting lines, the lane centre lines and the calibration points."""
    import cv2

    capture = cv2.VideoCapture(str(clip))
    ok, image = capture.read()
    capture.release()
    if not ok:
        raise OSError(f"cannot read a frame from {clip}")
    homography = Homography.from_points(geometry.calibration)

    def draw(points_m: list[tuple[float, float]], colour: tuple[int, int, int], thickness: int) -> None:
        dense = np.concatenate([np.linspace(a, b, 50) for a, b in itertools.pairwise(points_m)])
        pixels_f = homography.ground_to_image(dense)
        # Keep points in front of the camera (they map back to the ground) and near the frame.
        visible = np.isfinite(homography.image_to_ground(pixels_f)).all(axis=1) & (np.abs(pixels_f) < 1e4).all(axis=1)
        pixels = pixels_f[visible].round().astype(np.int32)
        if len(pixels) > 1:
            cv2.polylines(image, [pixels], False, colour, thickness, cv2.LINE_AA)

    for value in range(-60, 41, 5):
        draw([(value, -40.0), (value, 40.0)], (90, 90, 90), 1)
        draw([(-60.0, value), (40.0, value)], (90, 90, 90), 1)
    for a, b in geometry.counting_lines.values():
        draw([a, b], (0, 0, 255), 2)
    for centerline in geometry.lane_centerlines.values():
        draw(centerline, (0, 255, 0), 2)
    for point in geometry.calibration:
        cv2.circle(image, (round(point.image_px[0]), round(point.image_px[1])), 4, (255, 0, 0), -1)
    cv2.imwrite(str(output), image)


if __name__ == "__main__":
    sys.exit(main())
