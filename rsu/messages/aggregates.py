"""Interval aggregates for the traffic centre.

Privacy by construction: these schemas have no field that can hold a track id, a position, an
image or a time finer than the interval, and extra fields are forbidden.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from rsu.messages.envelope import Message


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LaneAggregate(_Part):
    lane_id: str
    counts_by_class: dict[str, int]
    mean_speed_mps: float | None = Field(default=None, ge=0)
    speed_p85_mps: float | None = Field(default=None, ge=0)
    occupancy_ratio: float = Field(ge=0, le=1, description="share of the interval the stop bar was occupied")
    mean_queue_m: float = Field(ge=0)
    max_queue_m: float = Field(ge=0)
    mean_queue_vehicles: float = Field(ge=0)


class MovementCount(_Part):
    line_id: str
    counts_by_class: dict[str, int]


class PhaseAggregate(_Part):
    signal_group: str
    green_time_s: float = Field(ge=0)
    green_starts: int = Field(ge=0)
    gap_outs: int = Field(ge=0)
    max_outs: int = Field(ge=0)


class Aggregate(Message):
    """One interval. capture_time_s is the interval end; publish_time_s when it was sealed."""

    SCHEMA: ClassVar[str] = "rsu.aggregate"
    interval_start_s: float
    interval_s: float = Field(gt=0)
    lanes: list[LaneAggregate]
    lines: list[MovementCount] = Field(default_factory=list)
    phases: list[PhaseAggregate] = Field(default_factory=list)
    warnings_by_kind: dict[str, int] = Field(default_factory=dict)
    detector_valid_ratio: float = Field(ge=0, le=1, default=1.0)
