"""UTM <-> WGS-84 and WGS-84 -> local east/north, for turning the OTC survey into site geometry.

Krüger's series to third order in n (as in Karney 2011 / the usual UTM references), accurate to
about a millimetre within 3000 km of the central meridian; no pyproj needed.
"""

from __future__ import annotations

import math

SEMI_MAJOR_AXIS_M = 6_378_137.0
FLATTENING = 1 / 298.257223563
UTM_SCALE = 0.9996
FALSE_EASTING_M = 500_000.0
FALSE_NORTHING_SOUTH_M = 10_000_000.0

_N = FLATTENING / (2 - FLATTENING)
_RECTIFYING_RADIUS = SEMI_MAJOR_AXIS_M / (1 + _N) * (1 + _N**2 / 4 + _N**4 / 64)
_ALPHA = (_N / 2 - 2 * _N**2 / 3 + 5 * _N**3 / 16, 13 * _N**2 / 48 - 3 * _N**3 / 5, 61 * _N**3 / 240)
_BETA = (_N / 2 - 2 * _N**2 / 3 + 37 * _N**3 / 96, _N**2 / 48 + _N**3 / 15, 17 * _N**3 / 480)
_DELTA = (2 * _N - 2 * _N**2 / 3 - 2 * _N**3, 7 * _N**2 / 3 - 8 * _N**3 / 5, 56 * _N**3 / 15)
_ECCENTRICITY_SQUARED = FLATTENING * (2 - FLATTENING)


def central_meridian_deg(zone: int) -> float:
    return zone * 6.0 - 183.0


def utm_to_geodetic(easting_m: float, northing_m: float, zone: int, northern: bool = True) -> tuple[float, float]:
    """(latitude_deg, longitude_deg) of a UTM coordinate (WGS-84)."""
    false_northing = 0.0 if northern else FALSE_NORTHING_SOUTH_M
    xi = (northing_m - false_northing) / (UTM_SCALE * _RECTIFYING_RADIUS)
    eta = (easting_m - FALSE_EASTING_M) / (UTM_SCALE * _RECTIFYING_RADIUS)
    xi_prime = xi - sum(b * math.sin(2 * j * xi) * math.cosh(2 * j * eta) for j, b in enumerate(_BETA, 1))
    eta_prime = eta - sum(b * math.cos(2 * j * xi) * math.sinh(2 * j * eta) for j, b in enumerate(_BETA, 1))
    chi = math.asin(math.sin(xi_prime) / math.cosh(eta_prime))
    latitude = chi + sum(d * math.sin(2 * j * chi) for j, d in enumerate(_DELTA, 1))
    longitude = math.radians(central_meridian_deg(zone)) + math.atan2(math.sinh(eta_prime), math.cos(xi_prime))
    return math.degrees(latitude), math.degrees(longitude)


def geodetic_to_utm(latitude_deg: float, longitude_deg: float, zone: int) -> tuple[float, float]:
    """(easting_m, northing_m) in the given zone (WGS-84); the inverse of utm_to_geodetic."""
    lat = math.radians(latitude_deg)
    dlon = math.radians(longitude_deg - central_meridian_deg(zone))
    two_sqrt_n = 2 * math.sqrt(_N) / (1 + _N)
    t = math.sinh(math.atanh(math.sin(lat)) - two_sqrt_n * math.atanh(two_sqrt_n * math.sin(lat)))
    xi_prime = math.atan2(t, math.cos(dlon))
    eta_prime = math.atanh(math.sin(dlon) / math.sqrt(1 + t * t))
    xi = xi_prime + sum(a * math.sin(2 * j * xi_prime) * math.cosh(2 * j * eta_prime) for j, a in enumerate(_ALPHA, 1))
    eta = eta_prime + sum(
        a * math.cos(2 * j * xi_prime) * math.sinh(2 * j * eta_prime) for j, a in enumerate(_ALPHA, 1)
    )
    easting = FALSE_EASTING_M + UTM_SCALE * _RECTIFYING_RADIUS * eta
    northing = UTM_SCALE * _RECTIFYING_RADIUS * xi
    if latitude_deg < 0:
        northing += FALSE_NORTHING_SOUTH_M
    return easting, northing


def _ecef(latitude_deg: float, longitude_deg: float, altitude_m: float = 0.0) -> tuple[float, float, float]:
    lat, lon = math.radians(latitude_deg), math.radians(longitude_deg)
    prime_vertical = SEMI_MAJOR_AXIS_M / math.sqrt(1 - _ECCENTRICITY_SQUARED * math.sin(lat) ** 2)
    return (
        (prime_vertical + altitude_m) * math.cos(lat) * math.cos(lon),
        (prime_vertical + altitude_m) * math.cos(lat) * math.sin(lon),
        (prime_vertical * (1 - _ECCENTRICITY_SQUARED) + altitude_m) * math.sin(lat),
    )


def geodetic_to_local(
    latitude_deg: float, longitude_deg: float, reference_lat_deg: float, reference_lon_deg: float
) -> tuple[float, float]:
    """(east_m, north_m) of a point in the east-north-up tangent plane at the reference (both at altitude 0)."""
    x, y, z = _ecef(latitude_deg, longitude_deg)
    x0, y0, z0 = _ecef(reference_lat_deg, reference_lon_deg)
    dx, dy, dz = x - x0, y - y0, z - z0
    lat0, lon0 = math.radians(reference_lat_deg), math.radians(reference_lon_deg)
    east = -math.sin(lon0) * dx + math.cos(lon0) * dy
    north = -math.sin(lat0) * math.cos(lon0) * dx - math.sin(lat0) * math.sin(lon0) * dy + math.cos(lat0) * dz
    return east, north
