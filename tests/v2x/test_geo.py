"""Local east/north metres <-> WGS-84 around the site reference."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rsu_contracts.config.model import GeoReference, SiteConfig
from v2x.geo import ECCENTRICITY_SQUARED, SEMI_MAJOR_AXIS_M, LocalFrame

MUNICH = LocalFrame(48.137154, 11.576124, 520.0)


def _ecef(lat_deg: float, lon_deg: float, alt_m: float) -> tuple[float, float, float]:
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    n = SEMI_MAJOR_AXIS_M / math.sqrt(1 - ECCENTRICITY_SQUARED * math.sin(lat) ** 2)
    return (
        (n + alt_m) * math.cos(lat) * math.cos(lon),
        (n + alt_m) * math.cos(lat) * math.sin(lon),
        (n * (1 - ECCENTRICITY_SQUARED) + alt_m) * math.sin(lat),
    )


def _true_east_north(frame: LocalFrame, lat_deg: float, lon_deg: float) -> tuple[float, float]:
    """Independent reference: ECEF difference rotated into the east-north-up frame."""
    origin = _ecef(frame.latitude_deg, frame.longitude_deg, frame.altitude_m)
    point = _ecef(lat_deg, lon_deg, frame.altitude_m)
    dx, dy, dz = (p - o for p, o in zip(point, origin, strict=True))
    lat, lon = math.radians(frame.latitude_deg), math.radians(frame.longitude_deg)
    east = -math.sin(lon) * dx + math.cos(lon) * dy
    north = -math.sin(lat) * math.cos(lon) * dx - math.sin(lat) * math.sin(lon) * dy + math.cos(lat) * dz
    return east, north


def test_reference_point_is_the_origin() -> None:
    assert MUNICH.to_geodetic(0.0, 0.0) == pytest.approx((48.137154, 11.576124), abs=1e-12)
    assert MUNICH.to_local(48.137154, 11.576124) == pytest.approx((0.0, 0.0), abs=1e-9)


def test_from_site_reference(sample_site: SiteConfig) -> None:
    frame = LocalFrame.from_reference(sample_site.reference)
    assert (frame.latitude_deg, frame.longitude_deg, frame.altitude_m) == (48.137154, 11.576124, 520.0)


@given(
    distance_m=st.floats(0.0, 500.0),
    bearing_deg=st.floats(0.0, 360.0),
    latitude_deg=st.floats(-80.0, 80.0),
    longitude_deg=st.floats(-180.0, 179.999),
)
def test_round_trip_within_1_cm_at_500_m(
    distance_m: float, bearing_deg: float, latitude_deg: float, longitude_deg: float
) -> None:
    frame = LocalFrame(latitude_deg, longitude_deg)
    east = distance_m * math.sin(math.radians(bearing_deg))
    north = distance_m * math.cos(math.radians(bearing_deg))
    back_east, back_north = frame.to_local(*frame.to_geodetic(east, north))
    assert math.hypot(back_east - east, back_north - north) < 0.01


@pytest.mark.parametrize(("east", "north"), [(500, 0), (0, 500), (-353.6, 353.6), (353.6, -353.6), (0, -500)])
def test_close_to_a_true_tangent_plane_at_500_m(east: float, north: float) -> None:
    lat, lon = MUNICH.to_geodetic(east, north)
    true_east, true_north = _true_east_north(MUNICH, lat, lon)
    assert math.hypot(true_east - east, true_north - north) < 0.05


def test_scale_matches_the_length_of_a_degree() -> None:
    # At 48° N one degree of latitude is about 111.2 km and one degree of longitude about 74.5 km.
    east, north = MUNICH.to_local(MUNICH.latitude_deg + 0.001, MUNICH.longitude_deg + 0.001)
    assert north == pytest.approx(111.2, abs=0.2)
    assert east == pytest.approx(74.5, abs=0.3)


def test_longitude_wraps_at_the_antimeridian() -> None:
    frame = LocalFrame.from_reference(GeoReference(latitude_deg=-17.0, longitude_deg=179.9999))
    lat, lon = frame.to_geodetic(100.0, 0.0)
    assert -180.0 <= lon < -179.99
    assert frame.to_local(lat, lon) == pytest.approx((100.0, 0.0), abs=1e-6)
