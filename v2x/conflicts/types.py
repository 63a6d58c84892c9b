"""The data the conflict tests exchange: the Conflict they report, the MotionHint a detector adds
to a snapshot, the signal's say per road user, and the named results of the geometric tests.

The result types are NamedTuples so the tests stay cheap per pair; field names carry their units
(_s seconds, _m metres, _deg degrees, _dps degrees per second, _rad radians).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from rsu_contracts.messages.perception import TrackedObject
from rsu_contracts.messages.warnings import Severity, WarningKind
from v2x.prediction import FloatArray


@dataclass(frozen=True)
class Conflict:
    kind: WarningKind
    severity: Severity
    # Time to collision (rear-end, crossing) or to the stop line (red light); None: stopped in junction.
    ttc_s: float | None
    conflict_x_m: float
    conflict_y_m: float
    # Rear-end: (follower, leader); VRU: (vehicle, vulnerable road user); red light / stopped: (vehicle,).
    participants: tuple[TrackedObject, ...]
    # Deceleration the road user who has to act needs to avoid the conflict (math.inf: cannot).
    required_deceleration_mps2: float | None = None
    # Predicted post-encroachment time of a crossing conflict (negative: both in the area together).
    pet_s: float | None = None
    # One of the participants ignores its signal (red-light runner, jaywalker).
    signal_violation: bool = False

    @property
    def key(self) -> tuple[WarningKind, tuple[int, ...]]:
        """Identity of the conflict across snapshots: kind and the sorted participant track ids."""
        return self.kind, tuple(sorted(p.track_id for p in self.participants))


@dataclass(frozen=True)
class MotionHint:
    """What ConflictDetector knows about a track beyond one snapshot."""

    yaw_rate_dps: float = 0.0
    # Heading change left before the current turn ends (degrees).
    max_turn_deg: float = math.inf
    # Crossed its stop line while the lane's signal group showed red.
    entered_on_red: bool = False
    # Direction of travel to predict with instead of the tracked heading (noisy at low speed).
    heading_deg: float | None = None
    # The lane it came from, while it crosses the junction.
    origin_lane_id: str | None = None


# A track without history: straight on at its tracked heading, no signal record.
NO_HINT = MotionHint()


@dataclass(frozen=True)
class SignalContext:
    """How the signal state shapes one road user's prediction in this snapshot."""

    stop_within_m: float = math.inf
    violates_signal: bool = False
    # False for a pedestrian on a footway: expected to stay out of the road.
    in_road: bool = True
    # Direction it travels whatever its noisy tracked heading: along its lane before the stop line,
    # along the crosswalk for a pedestrian on one.
    path_heading_deg: float | None = None


class SignalContexts(NamedTuple):
    """The signal's say over one snapshot."""

    # Per track, indexed like the snapshot's tracks.
    contexts: list[SignalContext]
    # Red-light violations predicted at a yellow.
    red_light_conflicts: list[Conflict]


class ApproachOutcome(NamedTuple):
    """What the signal means for one road user before its stop line."""

    context: SignalContext
    # A predicted red-light violation, if it is one.
    conflict: Conflict | None


class PairIndices(NamedTuple):
    """Pairs of road users as two parallel index arrays (pair n is first[n], second[n])."""

    first: npt.NDArray[np.intp]
    second: npt.NDArray[np.intp]


class RearEndContact(NamedTuple):
    """When and how a follower closes on a leader ahead of it."""

    ttc_s: float
    # Gap the follower closes before contact: the bumper gap now (straight) or the distance along
    # its predicted path to the contact (a turning follower against a standing obstacle).
    gap_m: float
    # Cosine of the angle between their directions of travel: the share of the leader's speed
    # and acceleration along the follower's path (0 against a standing obstacle).
    heading_cosine: float


class ClosestApproach(NamedTuple):
    """The smallest same-time separation of two predicted centres."""

    time_s: float
    distance_m: float
    # Midpoint between the two centres then, (x, y) in metres.
    midpoint_m: FloatArray


class ExtendedPath(NamedTuple):
    """A predicted centre path with a stub behind and ahead for the body."""

    # Path points (n, 2) in metres.
    points_m: FloatArray
    # Distance of each point along the path from the current position (negative behind it).
    along_m: FloatArray


class PathCrossing(NamedTuple):
    """The first point where two extended predicted paths cross."""

    # (x, y) of the crossing in metres.
    point_m: FloatArray
    # Distance along each road user's path from its current position to the crossing.
    along_first_m: float
    along_second_m: float
    # Signed angle from the first path's direction to the second's at the crossing.
    angle_rad: float


class Occupation(NamedTuple):
    """When a body occupies the crossing area, in seconds from now."""

    enter_s: float
    # math.inf when it is still there at the end of the horizon (e.g. stopped on it).
    leave_s: float
    # When its centre passes the crossing point (enter_s if it never gets there).
    centre_s: float


class PredictedTurn(NamedTuple):
    """How a road user is predicted to turn from now on."""

    yaw_rate_dps: float
    # Heading change left before the turn ends (math.inf: no end predicted).
    remaining_turn_deg: float
    # Direction of travel to predict with instead of the tracked heading (None: the tracked one).
    heading_deg: float | None = None


class HeadingSample(NamedTuple):
    """One tracked heading in a track's history."""

    time_s: float
    heading_deg: float
