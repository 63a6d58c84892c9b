"""Local east/north metres <-> WGS-84 latitude/longitude around the site's reference point.

A junction spans a few hundred metres, so an equirectangular plane with the WGS-84 radii of
curvature at the reference latitude is enough: at 500 m from the reference it stays within about
3 cm of a true east-north-up tangent plane (the parallels curve away from a straight east line).
The mapping is linear, so the round trip is exact to floating-point precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from rsu_contracts.config.model import GeoReference

# WGS-84 ellipsoid.
SEMI_MAJOR_AXIS_M = 6_378_137.0
FLATTENING = 1 / 298.257223563
ECCENTRICITY_SQUARED = FLATTENING * (2 - FLATTENING)


@dataclass(frozen=True)
class LocalFrame:
    """East-north frame (x east, y north, metres) whose origin is a WGS-84 reference point."""

    latitude_deg: float
    longitude_deg: float
    altitude_m: float = 0.0

    @classmethod
    def from_reference(cls, reference: GeoReference) -> LocalFrame:
        return cls(reference.latitude_deg, reference.longitude_deg, reference.altitude_m)

    @cached_property
    def _metres_per_radian(self) -> tuple[float, float]:
        """(east, north) metres per radian of longitude / latitude at the reference point."""
        lat = math.radians(self.latitude_deg)
        denominator = 1.0 - ECCENTRICITY_SQUARED * math.sin(lat) ** 2
        prime_vertical = SEMI_MAJOR_AXIS_M / math.sqrt(denominator)
        meridian = SEMI_MAJOR_AXIS_M * (1.0 - ECCENTRICITY_SQUARED) / denominator**1.5
        return (prime_vertical + self.altitude_m) * math.cos(lat), meridian + self.altitude_m

    def to_geodetic(self, east_m: float, north_m: float) -> tuple[float, float]:
        """(latitude_deg, longitude_deg) of a local point."""
        per_rad_east, per_rad_north = self._metres_per_radian
        latitude = self.latitude_deg + math.degrees(north_m / per_rad_north)
        longitude = self.longitude_deg + math.degrees(east_m / per_rad_east)
        # Keep longitude in [-180, 180) for sites next to the antimeridian.
        longitude = (longitude + 180.0) % 360.0 - 180.0
        return latitude, longitude

    def to_local(self, latitude_deg: float, longitude_deg: float) -> tuple[float, float]:
        """(east_m, north_m) of a WGS-84 point."""
        per_rad_east, per_rad_north = self._metres_per_radian
        delta_longitude = (longitude_deg - self.longitude_deg + 180.0) % 360.0 - 180.0
        east = math.radians(delta_longitude) * per_rad_east
        north = math.radians(latitude_deg - self.latitude_deg) * per_rad_north
        return east, north
