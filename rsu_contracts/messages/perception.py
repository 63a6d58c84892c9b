"""Perception output: tracked road users and per-lane detector states (local topics only)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from rsu_contracts.enums import Movement, RoadUserType
from rsu_contracts.messages.bounds import (
    MAX_ACCELERATION_MPS2,
    MAX_ARRIVALS_PER_LANE,
    MAX_CAMERA_OBJECTS,
    MAX_CROSSWALKS,
    MAX_DISTANCE_FROM_ORIGIN_M,
    MAX_DURATION_S,
    MAX_EVENTS_PER_MESSAGE,
    MAX_IDENTIFIER,
    MAX_IMAGE_COORDINATE_PX,
    MAX_LANES,
    MAX_PEDESTRIANS,
    MAX_QUEUE_LENGTH_M,
    MAX_QUEUED_VEHICLES,
    MAX_ROAD_USER_LENGTH_M,
    MAX_ROAD_USER_WIDTH_M,
    MAX_SPEED_MPS,
    MAX_TRACKED_OBJECTS,
    MESSAGE_MODEL_CONFIG,
)
from rsu_contracts.messages.envelope import Message


def _east_m() -> Any:
    return Field(ge=-MAX_DISTANCE_FROM_ORIGIN_M, le=MAX_DISTANCE_FROM_ORIGIN_M, description="metres east of origin")


def _north_m() -> Any:
    return Field(ge=-MAX_DISTANCE_FROM_ORIGIN_M, le=MAX_DISTANCE_FROM_ORIGIN_M, description="metres north of origin")


class _Part(BaseModel):
    model_config = MESSAGE_MODEL_CONFIG


def _image_px() -> Any:
    return Field(ge=-MAX_IMAGE_COORDINATE_PX, le=MAX_IMAGE_COORDINATE_PX)


class ImageBox(_Part):
    """A track's box in the camera image (the detector's pixels, x right, y down). Local topics only:
    the V2X stage strips it before anything reaches a vehicle."""

    x1_px: float = _image_px()
    y1_px: float = _image_px()
    x2_px: float = _image_px()
    y2_px: float = _image_px()
    predicted: bool = Field(default=False, description="no detection this frame: the tracker's predicted box")


class TrackedObject(_Part):
    track_id: int = Field(ge=0, le=MAX_IDENTIFIER)
    road_user: RoadUserType
    x_m: float = _east_m()
    y_m: float = _north_m()
    speed_mps: float = Field(ge=0, le=MAX_SPEED_MPS)
    heading_deg: float = Field(ge=0, lt=360, description="direction of travel, 0 = north, clockwise")
    acceleration_mps2: float = Field(default=0.0, ge=-MAX_ACCELERATION_MPS2, le=MAX_ACCELERATION_MPS2)
    length_m: float = Field(default=4.5, gt=0, le=MAX_ROAD_USER_LENGTH_M)
    width_m: float = Field(default=1.8, gt=0, le=MAX_ROAD_USER_WIDTH_M)
    lane_id: str | None = None
    age_s: float = Field(ge=0, le=MAX_DURATION_S)
    image_box: ImageBox | None = None


class TrackList(Message):
    """All confirmed tracks at one capture time."""

    SCHEMA: ClassVar[str] = "rsu.tracks"
    camera_id: str
    objects: list[TrackedObject] = Field(max_length=MAX_TRACKED_OBJECTS)


class LaneObservation(_Part):
    lane_id: str
    stop_bar_occupied: bool
    queue_length_m: float = Field(ge=0, le=MAX_QUEUE_LENGTH_M)
    queued_vehicles: int = Field(ge=0, le=MAX_QUEUED_VEHICLES)
    approaching_vehicles: int = Field(ge=0, le=MAX_QUEUED_VEHICLES, description="moving vehicles upstream in the lane")
    approaching_speed_mean_mps: float = Field(ge=0, le=MAX_SPEED_MPS, default=0.0)
    # Seconds since the stop bar last changed from occupied to free (gap timer input).
    stop_bar_gap_s: float = Field(ge=0)
    # Longest time any vehicle in the lane has been waiting (speed below the queue threshold).
    max_wait_s: float = Field(ge=0, default=0.0)
    # Camera lookahead: seconds until each moving vehicle upstream reaches the stop line (ascending,
    # within 15 s), which a loop detector cannot see; the adaptive strategy uses it.
    arrival_times_s: list[float] = Field(default_factory=list, max_length=MAX_ARRIVALS_PER_LANE)


class LineCrossing(_Part):
    line_id: str
    road_user: RoadUserType
    speed_mps: float = Field(ge=0, le=MAX_SPEED_MPS)
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
    pedestrians: int = Field(ge=0, le=MAX_PEDESTRIANS)
    waiting_pedestrians: int = Field(ge=0, le=MAX_PEDESTRIANS, default=0)


class DetectorStates(Message):
    """What the cameras say about each lane and crosswalk: the controller's only input."""

    SCHEMA: ClassVar[str] = "rsu.detectors"
    camera_id: str
    valid: bool = Field(description="false while the camera is down or stale")
    lanes: list[LaneObservation] = Field(max_length=MAX_LANES)
    crosswalks: list[CrosswalkObservation] = Field(default_factory=list, max_length=MAX_CROSSWALKS)
    crossings: list[LineCrossing] = Field(
        default_factory=list, max_length=MAX_EVENTS_PER_MESSAGE, description="line crossings since the last message"
    )
    movements: list[TurningMovement] = Field(
        default_factory=list,
        max_length=MAX_EVENTS_PER_MESSAGE,
        description="turning movements completed since the last message",
    )


class CameraObject(_Part):
    x_m: float = _east_m()
    y_m: float = _north_m()
    road_user: RoadUserType
    confidence: float = Field(ge=0, le=1)


class CameraDetections(Message):
    """Raw ground-plane detections from a smart (or simulated) camera, before tracking."""

    SCHEMA: ClassVar[str] = "rsu.camera.detections"
    camera_id: str
    objects: list[CameraObject] = Field(max_length=MAX_CAMERA_OBJECTS)
