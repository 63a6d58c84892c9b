"""Collision and violation warnings for connected vehicles."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, Field

from rsu_contracts.enums import RoadUserType
from rsu_contracts.messages.bounds import (
    MAX_DISTANCE_FROM_ORIGIN_M,
    MAX_SPEED_MPS,
    MAX_WARNING_PARTICIPANTS,
    MESSAGE_MODEL_CONFIG,
)
from rsu_contracts.messages.envelope import Message


class WarningKind(StrEnum):
    REAR_END = "rear_end"
    CROSSING = "crossing"
    VULNERABLE_ROAD_USER = "vulnerable_road_user"
    RED_LIGHT_VIOLATION = "red_light_violation"
    STOPPED_IN_JUNCTION = "stopped_in_junction"


class Severity(StrEnum):
    ADVISORY = "advisory"
    WARNING = "warning"
    CRITICAL = "critical"


class WarningStatus(StrEnum):
    NEW = "new"
    UPDATE = "update"
    ENDED = "ended"


class Participant(BaseModel):
    model_config = MESSAGE_MODEL_CONFIG

    track_id: int
    road_user: RoadUserType
    x_m: float = Field(ge=-MAX_DISTANCE_FROM_ORIGIN_M, le=MAX_DISTANCE_FROM_ORIGIN_M)
    y_m: float = Field(ge=-MAX_DISTANCE_FROM_ORIGIN_M, le=MAX_DISTANCE_FROM_ORIGIN_M)
    speed_mps: float = Field(ge=0, le=MAX_SPEED_MPS)
    heading_deg: float


class CollisionWarning(Message):
    SCHEMA: ClassVar[str] = "rsu.v2x.warning"
    warning_id: str
    kind: WarningKind
    severity: Severity
    status: WarningStatus
    ttc_s: float | None = Field(default=None, ge=0)
    conflict_x_m: float = Field(ge=-MAX_DISTANCE_FROM_ORIGIN_M, le=MAX_DISTANCE_FROM_ORIGIN_M)
    conflict_y_m: float = Field(ge=-MAX_DISTANCE_FROM_ORIGIN_M, le=MAX_DISTANCE_FROM_ORIGIN_M)
    conflict_latitude_deg: float
    conflict_longitude_deg: float
    participants: list[Participant] = Field(min_length=1, max_length=MAX_WARNING_PARTICIPANTS)
