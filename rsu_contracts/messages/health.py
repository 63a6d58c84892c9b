"""Unit health, published by the supervisor."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, Field

from rsu_contracts.messages.bounds import MESSAGE_MODEL_CONFIG
from rsu_contracts.messages.envelope import Message

# One entry per (stage, topic, reason): a handful of stages, topics and reasons.
MAX_REJECTION_ENTRIES = 256


class UnitStatus(StrEnum):
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


class StageHealth(BaseModel):
    model_config = MESSAGE_MODEL_CONFIG

    name: str
    alive: bool
    restarts: int = Field(ge=0)
    heartbeat_age_s: float | None = Field(default=None, ge=0)
    detail: str = ""


class InputRejection(BaseModel):
    """How many inputs one stage dropped on one topic for one reason (rsu.runtime.input_guard)."""

    model_config = MESSAGE_MODEL_CONFIG

    stage: str
    topic: str
    reason: str = Field(description="invalid, future, stale, superseded, out_of_order, conflicting_greens, ...")
    count: int = Field(ge=0, description="since the stage process started")


class UnitHealth(Message):
    SCHEMA: ClassVar[str] = "rsu.health"
    status: UnitStatus
    stages: list[StageHealth]
    redis_connected: bool
    problems: list[str] = Field(default_factory=list)
    rejections: list[InputRejection] = Field(
        default_factory=list,
        max_length=MAX_REJECTION_ENTRIES,
        description="inputs the stages refused, per stage, topic and reason",
    )
