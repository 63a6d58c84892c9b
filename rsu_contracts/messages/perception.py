"""Perception output: tracked road users and per-lane detector states (local topics only)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from rsu_contracts.enums import Movement, RoadUserType
from rsu_contracts.messages.envelope import Message


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrackedObject(_Part):
    track_id: int = Field(ge=0)
    road_user: RoadUserType
    x_m: float
    y_m: float
    speed_mps: float = Field(ge=0)
    heading_deg: float = Field(ge=0, lt=360, description="direction of travel, 0 = north, clockwise")
    acceleration_mps2: float = 0.0
    length_m: float = Field(default=4.5, gt=0)
    width_m: float = Field(default=1.8, gt=0)
    lane_id: str | None = None
    age_s: float = Field(ge=0)


class TrackList(Message):
    """All confirmed tracks at one capture time."""

    SCHEMA: ClassVar[str] = "rsu.tracks"
    camera_id: str
    objects: list[TrackedObject]


class LaneObservation(_Part):
    lane_id: str
    stop_bar_occupied: bool
    queue_length_m: float = Field(ge=0)
    queued_vehicles: int = Field(ge=0)
    approaching_vehicles: int = Field(ge=0, description="moving vehicles upstream in the lane")
    approaching_speed_mean_mps: float = Field(ge=0, default=0.0)
    # Seconds since the stop bar last changed from occupied to free (gap timer input).
    stop_bar_gap_s: float = Field(ge=0)
    # Longest time any vehicle in the lane has been waiting (speed below the queue threshold).
    max_wait_s: float = Field(ge=0, default=0.0)
    # Camera lookahead: seconds until each moving vehicle upstream reaches the stop line (ascending,
    # within 15 s), which a loop detector cannot see; the adaptive strategy uses it.
    arrival_times_s: list[float] = Field(default_factory=list, max_length=64)


class LineCrossing(_Part):
    line_id: str
    road_user: RoadUserType
    speed_mps: float = Field(ge=0)
    time_s: float
    lane_id: str | None = None


class TurningMovement(_Part):
    """A confirmed road user that crossed an entry line and later an exit line (local topics only)."""

    entry_line_id: str
    exit_line_id: str
    movement: Movement = Field(description="left / through / right / uturn, from the lines' geometry")
    road_user: RoadUserType
    time_s: float = Field(description="when it crossed the exit line")


class CrosswalkObservation(_Part):
    crosswalk_id: str
    pedestrians: int = Field(ge=0)
    waiting_pedestrians: int = Field(ge=0, default=0)


class DetectorStates(Message):
    """What the cameras say about each lane and crosswalk: the controller's only input."""

    SCHEMA: ClassVar[str] = "rsu.detectors"
    camera_id: str
    valid: bool = Field(description="false while the camera is down or stale")
    lanes: list[LaneObservation]
    crosswalks: list[CrosswalkObservation] = Field(default_factory=list)
    crossings: list[LineCrossing] = Field(default_factory=list, description="line crossings since the last message")
    movements: list[TurningMovement] = Field(
        default_factory=list, description="turning movements completed since the last message"
    )


class CameraObject(_Part):
    x_m: float
    y_m: float
    road_user: RoadUserType
    confidence: float = Field(ge=0, le=1)


class CameraDetections(Message):
    """Raw ground-plane detections from a smart (or simulated) camera, before tracking."""

    SCHEMA: ClassVar[str] = "rsu.camera.detections"
    camera_id: str
    objects: list[CameraObject]
