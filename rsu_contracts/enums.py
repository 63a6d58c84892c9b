"""The enumerations every layer shares: road-user types, movements, signal-group kinds, strategies,
camera sources and priority kinds. The site config model and the message models both take them
from here, so a message never depends on the config model for its vocabulary."""

from __future__ import annotations

from enum import StrEnum


class RoadUserType(StrEnum):
    CAR = "car"
    TRUCK = "truck"
    BUS = "bus"
    MOTORCYCLE = "motorcycle"
    BICYCLE = "bicycle"
    PEDESTRIAN = "pedestrian"


VEHICLE_TYPES = frozenset({RoadUserType.CAR, RoadUserType.TRUCK, RoadUserType.BUS, RoadUserType.MOTORCYCLE})


class Movement(StrEnum):
    LEFT = "left"
    THROUGH = "through"
    RIGHT = "right"
    UTURN = "uturn"


class CountingLineRole(StrEnum):
    ENTRY = "entry"  # traffic enters the junction across it (just upstream of the stop line)
    EXIT = "exit"  # traffic leaves the junction across it (on an outbound leg)


class SignalGroupKind(StrEnum):
    VEHICLE = "vehicle"
    PEDESTRIAN = "pedestrian"


class ControllerStrategy(StrEnum):
    FIXED_TIME = "fixed_time"
    ACTUATED = "actuated"
    ADAPTIVE = "adaptive"
    SCHEDULE = "schedule"


class CameraSource(StrEnum):
    SIMULATION = "simulation"
    VIDEO = "video"


class PriorityKind(StrEnum):
    EMERGENCY = "emergency"  # preemption: conflicting greens end, the requested approach gets green
    TRANSIT = "transit"  # transit signal priority: bounded early green or green extension
