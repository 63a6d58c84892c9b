"""Ground truth of the simulated world: what SUMO knows about one road user."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rsu_contracts.enums import RoadUserType


@dataclass(frozen=True)
class TruthObject:
    """One road user as SUMO knows it.

    ``x_m, y_m`` is SUMO's reference point: the centre of the front bumper for vehicles (the
    front of the body for pedestrians); ``ground_center_m`` is the centre of the footprint.
    """

    object_id: str
    road_user: RoadUserType
    x_m: float
    y_m: float
    speed_mps: float
    heading_deg: float  # 0 = north, clockwise (SUMO's convention)
    length_m: float
    width_m: float
    type_id: str = ""
    lane_id: str = ""  # SUMO lane (vehicles) or edge (pedestrians); ":..." inside the junction

    @property
    def ground_center_m(self) -> tuple[float, float]:
        heading = math.radians(self.heading_deg)
        half = self.length_m / 2.0
        return (self.x_m - half * math.sin(heading), self.y_m - half * math.cos(heading))
