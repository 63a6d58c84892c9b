"""Collision and violation warnings for connected vehicles."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from rsu_contracts.enums import RoadUserType
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
    model_config = ConfigDict(extra="forbid", frozen=True)

    track_id: int
    road_user: RoadUserType
    x_m: float
    y_m: float
    speed_mps: float = Field(ge=0)
    heading_deg: float


class CollisionWarning(Message):
    SCHEMA: ClassVar[str] = "rsu.v2x.warning"
    warning_id: str
    kind: WarningKind
    severity: Severity
    status: WarningStatus
    ttc_s: float | None = Field(default=None, ge=0)
    conflict_x_m: float
    conflict_y_m: float
    conflict_latitude_deg: float
    conflict_longitude_deg: float
    participants: list[Participant] = Field(min_length=1)
