"""Road-user classes, signal classes and tolerances that more than one conflict test uses, so each
has one definition."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from rsu_contracts.enums import VEHICLE_TYPES, RoadUserType
from rsu_contracts.messages.perception import TrackedObject
from rsu_contracts.messages.signal import Indication

# Pairs heading the same way within this angle are checked for rear-end, not crossing, conflicts:
# at shallow angles one is behind the other (a vehicle following a turning one) rather than
# crossing its path.
SAME_DIRECTION_MAX_DEG = 35.0
# Below this speed a road user's heading says nothing about where it is going.
STATIONARY_SPEED_MPS = 0.5
# Extra lateral tolerance beyond the half-widths for "same lane" when no lane id is known.
LATERAL_MARGIN_M = 0.2
# Predicted paths are extended by this much beyond the body's half-length (front and back) when
# looking for where two paths cross, so a body reaching over the other's path counts.
PATH_EXTENSION_M = 3.0

RED_INDICATIONS = frozenset({Indication.RED, Indication.RED_YELLOW})
VULNERABLE_TYPES = frozenset({RoadUserType.PEDESTRIAN, RoadUserType.BICYCLE})


def is_vehicle(track: TrackedObject) -> bool:
    return track.road_user in VEHICLE_TYPES


def vehicle_first(a: TrackedObject, b: TrackedObject) -> tuple[TrackedObject, TrackedObject]:
    """The pair ordered as a vulnerable road user conflict reports it: the vehicle first."""
    return (a, b) if is_vehicle(a) else (b, a)


def on_opposite_sides(side_a: tuple[int, int] | None, side_b: tuple[int, int] | None) -> bool:
    """Two road sides (JunctionGeometry.road_sides: road index, side of its axis) on one road leg
    but opposite sides of it: the road keeps the two apart."""
    return side_a is not None and side_b is not None and side_a[0] == side_b[0] and side_a[1] != side_b[1]


def on_opposite_sides_pairs(
    sides: Sequence[tuple[int, int] | None], first: npt.NDArray[np.intp], second: npt.NDArray[np.intp]
) -> npt.NDArray[np.bool_]:
    """on_opposite_sides for every pair (sides[first[n]], sides[second[n]]) at once: no per-pair
    Python on a crowded scene."""
    road = np.array([-1 if side is None else side[0] for side in sides], dtype=np.int64)
    lateral = np.array([0 if side is None else side[1] for side in sides], dtype=np.int64)
    known = (road[first] >= 0) & (road[second] >= 0)
    return known & (road[first] == road[second]) & (lateral[first] != lateral[second])
