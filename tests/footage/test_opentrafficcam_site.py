"""The OpenTrafficCam site file: it validates, its calibration is good, and it is reproducible
from the OTC files (that check reads the shared footage folder)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from scipy.integrate import quad

from rsu.detectors.ultralytics_backend import resolve_weights
from rsu.perception.homography import Homography
from rsu.sensors.video import expand_uri
from rsu_contracts.config import SiteConfig, load_site_config
from rsu_contracts.enums import CameraSource
from rsu_tools.site_builders import opentrafficcam as build
from rsu_tools.site_builders.geodesy import geodetic_to_local, geodetic_to_utm, utm_to_geodetic

OTC_SITE = build.SITE_FILE


@pytest.fixture(scope="module")
def otc_site() -> SiteConfig:
    return load_site_config(OTC_SITE)


def junction_polygon(site: SiteConfig) -> list[tuple[float, float]]:
    """The junction box bounded by the four OTC sections (each section's first end point)."""
    return [line.line_m[0] for line in site.counting_lines]


def inside(polygon: list[tuple[float, float]], x: float, y: float) -> bool:
    crossings = 0
    for (ax, ay), (bx, by) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if (ay > y) != (by > y) and x < ax + (y - ay) * (bx - ax) / (by - ay):
            crossings += 1
    return crossings % 2 == 1


def test_the_site_file_validates(otc_site: SiteConfig) -> None:
    camera = otc_site.cameras[0]
    assert camera.source is CameraSource.VIDEO
    assert len(camera.calibration) == 5
    assert [line.id for line in otc_site.counting_lines] == ["south", "west", "north", "east"]
    assert not otc_site.is_simulated


def test_the_calibration_reprojects_within_a_few_decimetres(otc_site: SiteConfig) -> None:
    homography = Homography.from_points(otc_site.cameras[0].calibration)
    error = homography.reprojection_error_m()
    print(f"OTC calibration RMS reprojection error: {error:.3f} m")
    assert error < 0.2
    assert not homography.is_mirrored


def test_the_reference_point_is_inside_the_junction_and_lanes_end_on_their_lines(otc_site: SiteConfig) -> None:
    assert inside(junction_polygon(otc_site), 0.0, 0.0)
    lines = {line.approach: line.line_m for line in otc_site.counting_lines}
    for approach in otc_site.approaches:
        (ax, ay), (bx, by) = lines[approach.id]
        for lane in approach.lanes:
            ex, ey = lane.centerline_m[-1]
            # Distance of the stop point from its section line.
            distance = abs((bx - ax) * (ey - ay) - (by - ay) * (ex - ax)) / math.hypot(bx - ax, by - ay)
            assert distance < 0.01, lane.id


def test_utm_inverse_and_forward_agree_to_a_millimetre() -> None:
    for easting, northing in [(844084.0, 5673189.0), (500000.0, 5000000.0), (300000.0, 6500000.0)]:
        latitude, longitude = utm_to_geodetic(easting, northing, 32)
        back = geodetic_to_utm(latitude, longitude, 32)
        assert back == pytest.approx((easting, northing), abs=1e-3)


def test_utm_northing_on_the_central_meridian_is_the_scaled_meridian_arc() -> None:
    """An independent check: integrate the WGS-84 meridian radius of curvature."""
    a, f = 6_378_137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    for latitude in (10.0, 51.0, 70.0):
        arc, _ = quad(lambda phi: a * (1 - e2) / (1 - e2 * math.sin(phi) ** 2) ** 1.5, 0.0, math.radians(latitude))
        easting, northing = geodetic_to_utm(latitude, 9.0, 32)
        assert (easting, northing) == pytest.approx((500_000.0, 0.9996 * arc), abs=1e-3)


def test_the_local_frame_is_true_north_not_utm_grid_north(otc_site: SiteConfig) -> None:
    """At 13.9 degrees E in zone 32 (central meridian 9 E) grid north points 3.8 degrees east of true north."""
    reference = otc_site.reference
    origin_e, origin_n = geodetic_to_utm(reference.latitude_deg, reference.longitude_deg, 32)
    north_lat, north_lon = utm_to_geodetic(origin_e, origin_n + 100.0, 32)  # 100 m up the grid
    east_m, north_m = geodetic_to_local(north_lat, north_lon, reference.latitude_deg, reference.longitude_deg)
    convergence_deg = math.degrees(math.atan2(east_m, north_m))
    expected = math.degrees(
        math.atan(
            math.tan(math.radians(reference.longitude_deg - 9.0)) * math.sin(math.radians(reference.latitude_deg))
        )
    )
    assert convergence_deg == pytest.approx(expected, abs=0.01)
    assert 3.7 < convergence_deg < 3.9


@pytest.mark.footage
def test_the_site_file_is_what_the_build_makes_from_the_otc_files(footage_dir: Path) -> None:
    geometry = build.build_geometry(footage_dir / "opentrafficcam")
    assert build.render_site_yaml(geometry) == OTC_SITE.read_text(encoding="utf-8"), (
        "site.yaml is stale: run python datasets/opentrafficcam/build.py"
    )
    assert geometry.reprojection_error_m == pytest.approx(0.135, abs=0.01)


@pytest.mark.footage
def test_the_clip_and_weights_paths_expand_to_the_shared_files(
    otc_site: SiteConfig, footage_dir: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RSU_SHARED_DIR", str(footage_dir.parent))
    camera = otc_site.cameras[0]
    assert camera.uri is not None
    clip = Path(expand_uri(camera.uri, OTC_SITE.parent))
    assert clip.is_file()
    assert clip.name == "Testvideo_FR20_2020-02-20_13-11-00.mp4"
    weights = Path(resolve_weights(camera.detector.weights, OTC_SITE.parent, online=lambda: False))
    assert weights == (models_dir / "yolo11n-coco-rebuilt.pt").resolve()


def test_junction_polygon_helper_sees_inside_and_outside() -> None:
    square = [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)]
    assert inside(square, 1.0, 1.0)
    assert not inside(square, 3.0, 1.0)
